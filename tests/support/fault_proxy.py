"""A fault-injecting TCP proxy on 127.0.0.1 for the fault-injection tests (hardening.md §3.7).

``async with FaultProxy(target_port) as proxy:`` listens on ``proxy.port`` and forwards every
connection to ``127.0.0.1:target_port``, both ways, until told otherwise:

- :meth:`FaultProxy.reset_all` aborts every proxied connection with a TCP RST on both sides
  (``SO_LINGER`` 0), as a crashed host or a middlebox would (F1);
- :meth:`FaultProxy.blackhole` stops forwarding in both directions while keeping both TCP
  connections open: a half-open connection, no FIN and no RST (F2);
- ``rechunk=True`` re-writes everything in 1..7-byte pieces with occasional 0..``max_delay``
  pauses (F4), from a seeded ``random.Random`` so runs are repeatable.
"""

from __future__ import annotations

import random
import socket
import struct
from typing import TYPE_CHECKING

import anyio
from anyio.abc import SocketAttribute

if TYPE_CHECKING:
    from types import TracebackType

    from anyio.abc import SocketStream, TaskGroup

__all__ = ("FaultProxy",)


def _abort(stream: SocketStream) -> None:
    sock = stream.extra(SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class FaultProxy:
    """Forwards TCP connections to ``target_port`` and injects faults on demand."""

    def __init__(
        self, target_port: int, *, rechunk: bool = False, max_delay: float = 0.005, seed: int = 7
    ) -> None:
        self.target_port = target_port
        self.rechunk = rechunk
        self.max_delay = max_delay
        self.port = 0
        self.forwarded = 0
        """Bytes forwarded so far, both directions."""
        self._random = random.Random(seed)
        self._pairs: list[tuple[SocketStream, SocketStream]] = []
        self._blackholed = False
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> FaultProxy:
        self._listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = self._listener.extra(SocketAttribute.local_port)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._listener.serve, self._handle)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        result = await self._tg.__aexit__(exc_type, exc, tb)
        for a, b in self._pairs:
            await anyio.aclose_forcefully(a)
            await anyio.aclose_forcefully(b)
        await self._listener.aclose()
        return result

    @property
    def connections(self) -> int:
        return len(self._pairs)

    async def _handle(self, client: SocketStream) -> None:
        server = await anyio.connect_tcp("127.0.0.1", self.target_port)
        self._pairs.append((client, server))
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._pump, client, server)
            tg.start_soon(self._pump, server, client)

    async def _pump(self, source: SocketStream, sink: SocketStream) -> None:
        try:
            while True:
                data = await source.receive(65536)
                if self._blackholed:
                    continue  # swallowed: the far side never hears of it
                if not self.rechunk:
                    await sink.send(data)
                else:
                    pos = 0
                    while pos < len(data):
                        size = self._random.randint(1, 7)
                        await sink.send(data[pos : pos + size])
                        pos += size
                        if self._random.random() < 0.01:
                            await anyio.sleep(self._random.uniform(0, self.max_delay))
                self.forwarded += len(data)
        except anyio.EndOfStream:
            if not self._blackholed:
                try:
                    await sink.send_eof()
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    pass
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            await anyio.aclose_forcefully(sink)

    async def reset_all(self) -> None:
        """Abort every proxied connection with an RST towards both ends."""
        for a, b in self._pairs:
            _abort(a)
            _abort(b)
            await anyio.aclose_forcefully(a)
            await anyio.aclose_forcefully(b)

    def blackhole(self) -> None:
        """Stop forwarding both ways; both TCP connections stay open (half-open)."""
        self._blackholed = True

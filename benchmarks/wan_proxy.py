#!/usr/bin/env python3
"""A user-space WAN emulator: a TCP proxy that adds latency and optionally caps bandwidth.

Used by ``benchmarks/wan.py`` and the WAN tests to measure Yamux window auto-tuning under a
real round-trip time (performance.md §1 "WAN", yamux.md §4 lesson 2: test auto-tuning under
emulated RTT, not only on loopback).

Theory of operation. ``WanProxy`` listens on ``127.0.0.1:0``; every accepted connection is
paired with a fresh connection to the target, and each direction runs as a *delay line*:

* a **reader** task receives up to ``read_size`` bytes at a time, stamps each chunk with its
  delivery time and appends it to a FIFO. Without a bandwidth cap a chunk is delivered at
  ``arrival + one_way_delay``. With a cap the chunk first passes a bottleneck that serves
  ``bandwidth`` bytes per second: it leaves at ``max(arrival, previous departure) +
  len / bandwidth`` and is delivered ``one_way_delay`` later (a token bucket with no burst
  allowance). Delivery times are therefore non-decreasing and byte order is kept.
* a **writer** task sleeps until the head chunk's delivery time (sleeping is the point of
  the proxy) and sends it.
* the FIFO holds at most ``max_buffered`` bytes per direction; when it is full the reader
  stops reading, so TCP flow control pushes back on the sender and memory stays bounded.
  Without a cap it must exceed the bandwidth-delay product of the traffic (64 MiB default,
  enough for 1 GB/s at 50 ms one way); with a cap the default is the bytes "on the wire"
  (``bandwidth × one_way_delay``) plus a 50 ms bottleneck queue.
* **EOF** is queued like data: the writer half-closes the other side (``send_eof``) once
  everything before it was delivered, and the opposite direction keeps flowing. The pair
  is closed when both directions have ended.
* An **error** on either side (reset, broken pipe, failed connect) aborts the pair at once:
  both sockets are closed with ``SO_LINGER`` 0, so the other end sees a reset; queued data
  is dropped.

Reads are large (256 KiB by default) so the proxy is not the bottleneck: on the reference
2-core VM it forwards several hundred MB/s per direction. It runs in the caller's event loop
(asyncio or trio) and can also run alone::

    python benchmarks/wan_proxy.py --target 127.0.0.1:4000 --delay 0.025 [--bandwidth 1e7]
"""

from __future__ import annotations

import argparse
import logging
import socket
import struct
import sys
from collections import deque
from typing import TYPE_CHECKING

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskGroup

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType
    from typing import Self

    from anyio.streams.stapled import MultiListener

__all__ = ("DEFAULT_MAX_BUFFERED", "DEFAULT_READ_SIZE", "WanProxy")

logger = logging.getLogger(__name__)

#: Largest read per direction; large reads keep the proxy off the critical path.
DEFAULT_READ_SIZE = 256 * 1024
#: Bytes a direction may hold without a bandwidth cap (64 MiB: 1 GB/s at 50 ms one way).
DEFAULT_MAX_BUFFERED = 64 * 1024 * 1024
#: With a bandwidth cap, the bottleneck queue holds this many seconds of traffic.
DEFAULT_QUEUE_TIME = 0.05

_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class _Direction:
    """One delay line: bytes read from ``source`` are written to ``sink`` later."""

    def __init__(
        self,
        proxy: WanProxy,
        source: SocketStream,
        sink: SocketStream,
    ) -> None:
        self._proxy = proxy
        self._source = source
        self._sink = sink
        # (delivery time, chunk); None marks EOF
        self._queue: deque[tuple[float, bytes | None]] = deque()
        self._buffered = 0
        self._last_departure = 0.0
        self._ready = anyio.Event()
        self._space = anyio.Event()
        self.bytes_forwarded = 0

    def _deliver_at(self, size: int) -> float:
        now = anyio.current_time()
        bandwidth = self._proxy.bandwidth
        if bandwidth is None:
            return now + self._proxy.one_way_delay
        departure = max(now, self._last_departure) + size / bandwidth
        self._last_departure = departure
        return departure + self._proxy.one_way_delay

    def _push(self, item: bytes | None) -> None:
        size = 0 if item is None else len(item)
        self._queue.append((self._deliver_at(size), item))
        self._buffered += size
        self._ready.set()

    async def read(self) -> None:
        limit = self._proxy.max_buffered
        read_size = self._proxy.read_size
        receive = self._source.receive
        while True:
            while self._buffered + read_size > limit:
                self._space = anyio.Event()
                await self._space.wait()
            try:
                data = await receive(read_size)
            except anyio.EndOfStream:
                self._push(None)
                return
            self._push(data)

    async def write(self) -> None:
        queue = self._queue
        send = self._sink.send
        while True:
            while not queue:
                self._ready = anyio.Event()
                await self._ready.wait()
            deliver, data = queue[0]
            if deliver > anyio.current_time():
                await anyio.sleep_until(deliver)
            queue.popleft()
            if data is None:
                await self._sink.send_eof()
                return
            await send(data)
            self._buffered -= len(data)
            self.bytes_forwarded += len(data)
            self._space.set()


def _abort(stream: SocketStream) -> None:
    """Make the coming close send RST instead of FIN."""
    try:
        sock = stream.extra(SocketAttribute.raw_socket)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except (OSError, anyio.TypedAttributeLookupError):
        pass


class WanProxy:
    """A latency- and bandwidth-shaping TCP proxy to ``target_host:target_port``.

    Use it as an async context manager; connect to ``proxy.port`` on 127.0.0.1.

    :param one_way_delay: seconds added in each direction (RTT grows by twice this).
    :param bandwidth: bytes per second per direction, or ``None`` for no cap.
    :param read_size: largest read from a socket.
    :param max_buffered: bytes a direction may hold before it stops reading; by default
        64 MiB without a cap, ``bandwidth × (one_way_delay + 0.05)`` with one.
    :param listen_host: address to listen on.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        one_way_delay: float = 0.025,
        bandwidth: float | None = None,
        read_size: int = DEFAULT_READ_SIZE,
        max_buffered: int | None = None,
        listen_host: str = "127.0.0.1",
    ) -> None:
        if one_way_delay < 0:
            raise ValueError("one_way_delay must not be negative")
        if bandwidth is not None and bandwidth <= 0:
            raise ValueError("bandwidth must be positive or None")
        if read_size < 1:
            raise ValueError("read_size must be at least 1")
        if bandwidth is not None:
            # keep a chunk's transmission time (the burst granularity) near 1 ms
            read_size = min(read_size, max(16 * 1024, int(bandwidth * 0.001)))
        if max_buffered is None:
            if bandwidth is None:
                max_buffered = DEFAULT_MAX_BUFFERED
            else:
                max_buffered = int(bandwidth * (one_way_delay + DEFAULT_QUEUE_TIME))
        max_buffered = max(max_buffered, read_size)
        self.target_host = target_host
        self.target_port = target_port
        self.one_way_delay = one_way_delay
        self.bandwidth = bandwidth
        self.read_size = read_size
        self.max_buffered = max_buffered
        self.listen_host = listen_host
        #: Connections accepted so far.
        self.connections = 0
        #: Bytes delivered client→target and target→client, over all connections.
        self.bytes_up = 0
        self.bytes_down = 0
        self._listener: MultiListener[SocketStream] | None = None
        self._task_group: TaskGroup | None = None

    @property
    def port(self) -> int:
        """The listening port (valid inside ``async with``)."""
        if self._listener is None:
            raise RuntimeError("the proxy is not running")
        port: int = self._listener.extra(SocketAttribute.local_port)
        return port

    async def __aenter__(self) -> Self:
        self._listener = await anyio.create_tcp_listener(
            local_host=self.listen_host, local_port=0
        )
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._serve)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        assert self._task_group is not None and self._listener is not None
        self._task_group.cancel_scope.cancel()
        try:
            return await self._task_group.__aexit__(exc_type, exc_val, exc_tb)
        finally:
            await self._listener.aclose()

    async def _serve(self) -> None:
        assert self._listener is not None and self._task_group is not None
        await self._listener.serve(self._handle, task_group=self._task_group)

    async def _handle(self, client: SocketStream) -> None:
        self.connections += 1
        target: SocketStream | None = None
        failed = False
        up = down = None
        try:
            try:
                target = await anyio.connect_tcp(self.target_host, self.target_port)
            except OSError as exc:
                logger.debug("wan proxy: connect to target failed: %r", exc)
                failed = True
                return
            up = _Direction(self, client, target)
            down = _Direction(self, target, client)
            async with anyio.create_task_group() as tg:

                async def guarded(step: Callable[[], Awaitable[None]]) -> None:
                    nonlocal failed
                    try:
                        await step()
                    except _ERRORS as exc:
                        logger.debug("wan proxy: aborting a connection: %r", exc)
                        failed = True
                        tg.cancel_scope.cancel()

                for direction in (up, down):
                    tg.start_soon(guarded, direction.read)
                    tg.start_soon(guarded, direction.write)
        finally:
            if up is not None and down is not None:
                self.bytes_up += up.bytes_forwarded
                self.bytes_down += down.bytes_forwarded
            with anyio.CancelScope(shield=True):
                for stream in (client, target):
                    if stream is None:
                        continue
                    if failed:
                        _abort(stream)
                    try:
                        await stream.aclose()
                    except _ERRORS:
                        pass


async def _main(args: argparse.Namespace) -> None:
    host, _, port = args.target.rpartition(":")
    async with WanProxy(
        host or "127.0.0.1", int(port), one_way_delay=args.delay, bandwidth=args.bandwidth
    ) as proxy:
        print(proxy.port, flush=True)
        await anyio.sleep_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="latency/bandwidth shaping TCP proxy")
    parser.add_argument("--target", required=True, help="host:port to forward to")
    parser.add_argument("--delay", type=float, default=0.025, help="one-way delay, seconds")
    parser.add_argument("--bandwidth", type=float, default=None, help="bytes/s per direction")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args(argv)
    try:
        anyio.run(_main, args, backend=args.backend)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

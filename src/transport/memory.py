"""In-process transport: ``memory://NAME`` listeners and dials inside one event loop.

A :class:`MemoryNetwork` *is* the registry: listeners are registered by name on the network
object the caller created and passed around (no module-level state), so independent tests
and embedded nodes never see each other's names. Dialling a name creates a connected pair of
:class:`MemoryStream` objects; the listener side is queued on the listener's bounded backlog
until :meth:`MemoryListener.accept` takes it.

Each direction is a bounded byte pipe of :attr:`MemoryTransportConfig.max_buffer_size`
bytes: ``send`` copies what fits and waits for the reader to make room (so a writer feels
back-pressure as on TCP), ``receive`` returns at most ``max_bytes`` buffered bytes and waits
when there are none. Close semantics follow TCP and anyio:

- ``send_eof()`` half-closes: the peer drains what was sent, then gets ``EndOfStream``;
  further local sends raise ``ClosedResourceError``;
- ``aclose()`` closes both directions: local calls raise ``ClosedResourceError``, the peer
  reads what was already sent and then ``EndOfStream``, and the peer's sends raise
  ``BrokenResourceError`` (nobody will read them);
- two tasks receiving (or sending) at once get ``BusyResourceError``.

A ``send`` cancelled while waiting for room may have delivered a prefix of its data, as with
a real socket; the stream is then unusable for framed protocols and should be closed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
from anyio.abc import ByteStream

from .address import MemoryAddress, parse_address
from .base import Transport, TransportListener
from .errors import DialError, InvalidAddressError, ListenError

if TYPE_CHECKING:
    from .address import TransportAddress

__all__ = (
    "DEFAULT_MEMORY_BACKLOG",
    "DEFAULT_MEMORY_BUFFER_SIZE",
    "MemoryListener",
    "MemoryNetwork",
    "MemoryStream",
    "MemoryTransportConfig",
)

DEFAULT_MEMORY_BUFFER_SIZE = 256 * 1024  # per direction; one Yamux default window
DEFAULT_MEMORY_BACKLOG = 128  # connections dialled but not yet accepted, per listener


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryTransportConfig:
    """Limits of a :class:`MemoryNetwork`."""

    max_buffer_size: int = DEFAULT_MEMORY_BUFFER_SIZE
    """Bytes buffered per direction of a connection before ``send`` waits for the reader."""
    max_backlog: int = DEFAULT_MEMORY_BACKLOG
    """Connections queued per listener before ``dial`` is refused with ``DialError``."""

    def __post_init__(self) -> None:
        if self.max_buffer_size < 1:
            raise ValueError(f"max_buffer_size must be at least 1, got {self.max_buffer_size!r}")
        if self.max_backlog < 1:
            raise ValueError(f"max_backlog must be at least 1, got {self.max_backlog!r}")


class _Pipe:
    """One direction of a connection: a bounded buffer plus wake-up events."""

    __slots__ = ("buffer", "capacity", "readable", "reader_closed", "writable", "writer_closed")

    def __init__(self, capacity: int) -> None:
        self.buffer = bytearray()
        self.capacity = capacity
        self.writer_closed = False  # EOF after the buffer drains
        self.reader_closed = False  # nobody will ever read again
        self.readable = anyio.Event()
        self.writable = anyio.Event()

    def wake_reader(self) -> None:
        self.readable.set()
        self.readable = anyio.Event()

    def wake_writer(self) -> None:
        self.writable.set()
        self.writable = anyio.Event()


class MemoryStream(ByteStream):
    """One end of an in-process connection (see the module docstring for semantics)."""

    def __init__(self, incoming: _Pipe, outgoing: _Pipe, local: str, remote: str) -> None:
        self._incoming = incoming
        self._outgoing = outgoing
        self._closed = False
        self._receive_guard = anyio.ResourceGuard("reading from")
        self._send_guard = anyio.ResourceGuard("writing to")
        self.local_name = local
        """The name of this end (the listener's name, or ``dialer-N``)."""
        self.remote_name = remote
        """The name of the other end."""

    def __repr__(self) -> str:
        return f"<MemoryStream {self.local_name} -> {self.remote_name}>"

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        with self._receive_guard:
            await anyio.lowlevel.checkpoint()
            pipe = self._incoming
            while not pipe.buffer:
                if self._closed:
                    raise anyio.ClosedResourceError
                if pipe.writer_closed:
                    raise anyio.EndOfStream
                await pipe.readable.wait()
            if self._closed:
                raise anyio.ClosedResourceError
            chunk = bytes(pipe.buffer[:max_bytes])
            del pipe.buffer[:max_bytes]
            pipe.wake_writer()
            return chunk

    async def send(self, item: bytes) -> None:
        with self._send_guard:
            await anyio.lowlevel.checkpoint()
            pipe = self._outgoing
            offset = 0
            while True:
                if self._closed or pipe.writer_closed:
                    raise anyio.ClosedResourceError
                if pipe.reader_closed:
                    raise anyio.BrokenResourceError
                room = pipe.capacity - len(pipe.buffer)
                if room > 0:
                    pipe.buffer += item[offset : offset + room]
                    offset += room
                    pipe.wake_reader()
                if offset >= len(item):
                    return
                await pipe.writable.wait()

    async def send_eof(self) -> None:
        await anyio.lowlevel.checkpoint()
        if self._closed:
            raise anyio.ClosedResourceError
        self._outgoing.writer_closed = True
        self._outgoing.wake_reader()

    def close_now(self) -> None:
        """Close without waiting (what :meth:`aclose` does, minus the checkpoint)."""
        if self._closed:
            return
        self._closed = True
        self._outgoing.writer_closed = True
        self._outgoing.wake_reader()
        self._outgoing.wake_writer()  # our own blocked sender sees the close
        self._incoming.reader_closed = True
        self._incoming.buffer.clear()
        self._incoming.wake_writer()  # the peer's blocked sender sees the broken pipe
        self._incoming.wake_reader()  # our own blocked receiver sees the close

    async def aclose(self) -> None:
        self.close_now()
        await anyio.lowlevel.checkpoint()


class MemoryListener(TransportListener):
    """A named listener on a :class:`MemoryNetwork`."""

    def __init__(self, network: MemoryNetwork, address: MemoryAddress) -> None:
        self._network = network
        self._address = address
        self._pending: deque[MemoryStream] = deque()
        self._arrived = anyio.Event()
        self._closed = False

    def __repr__(self) -> str:
        return f"<MemoryListener {self._address} pending={len(self._pending)}>"

    @property
    def address(self) -> MemoryAddress:
        return self._address

    def _enqueue(self, stream: MemoryStream) -> None:
        if len(self._pending) >= self._network.config.max_backlog:
            raise DialError(f"{self._address} refused the connection (backlog full)")
        self._pending.append(stream)
        self._arrived.set()
        self._arrived = anyio.Event()

    async def accept(self) -> ByteStream:
        await anyio.lowlevel.checkpoint()
        while not self._pending:
            if self._closed:
                raise anyio.ClosedResourceError
            await self._arrived.wait()
        if self._closed:
            raise anyio.ClosedResourceError
        return self._pending.popleft()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._network._unregister(self)
            while self._pending:
                self._pending.popleft().close_now()
            self._arrived.set()  # wake blocked accept() calls
        await anyio.lowlevel.checkpoint()


class MemoryNetwork(Transport):
    """An in-process network of ``memory://NAME`` listeners: create one and share it.

    :param config: buffer and backlog limits for every connection on this network.
    """

    scheme = "memory"

    def __init__(self, config: MemoryTransportConfig | None = None) -> None:
        self.config = config if config is not None else MemoryTransportConfig()
        self._listeners: dict[str, MemoryListener] = {}
        self._dial_count = 0

    def __repr__(self) -> str:
        return f"<MemoryNetwork listeners={sorted(self._listeners)}>"

    @staticmethod
    def _memory_address(address: str | TransportAddress) -> MemoryAddress:
        parsed = parse_address(address)
        if not isinstance(parsed, MemoryAddress):
            raise InvalidAddressError(f"not a memory:// address: {parsed}")
        return parsed

    async def listen(self, address: str | TransportAddress) -> MemoryListener:
        target = self._memory_address(address)
        await anyio.lowlevel.checkpoint()
        if target.name in self._listeners:
            raise ListenError(f"{target} is already in use")
        listener = MemoryListener(self, target)
        self._listeners[target.name] = listener
        return listener

    async def dial(self, address: str | TransportAddress) -> MemoryStream:
        target = self._memory_address(address)
        await anyio.lowlevel.checkpoint()
        listener = self._listeners.get(target.name)
        if listener is None:
            raise DialError(f"nothing listens on {target}")
        self._dial_count += 1
        dialer_name = f"dialer-{self._dial_count}"
        to_listener = _Pipe(self.config.max_buffer_size)
        to_dialer = _Pipe(self.config.max_buffer_size)
        client = MemoryStream(to_dialer, to_listener, dialer_name, target.name)
        server = MemoryStream(to_listener, to_dialer, target.name, dialer_name)
        listener._enqueue(server)
        return client

    def _unregister(self, listener: MemoryListener) -> None:
        if self._listeners.get(listener.address.name) is listener:
            del self._listeners[listener.address.name]

"""Writing to a TCP socket from the calling task, without a trip through the event loop.

Theory of operation (performance.md §4): an ``await stream.send(data)`` on one of anyio's
socket streams costs at least one turn of the event loop, and a hand-off to a writer task
costs another, so a 100-byte reply would wait two loop turns before it reached the
kernel. When nothing else is being written on the connection, the bytes go to the socket
synchronously instead, in order, from whichever task produced them:

* on asyncio, ``transport.write`` is synchronous: it writes what the socket takes and
  buffers the rest in order; anyio sets the write-buffer limit to 0, so a non-empty buffer
  pauses writing and :meth:`NowaitWriter.ready` turns false until it drains;
* on trio, a non-blocking ``socket.send`` writes what the kernel takes; the rest is kept
  here (:attr:`NowaitWriter.pending`) and written first by the next ``send``.

A synchronous write cannot be cancelled half-way, which is what makes it safe to do from
an application task: there is no await between sealing a Noise message and handing it to
the socket. Streams this module does not know (memory streams, test proxies, TLS) get no
writer, and their users keep the plain ``await send`` path. Reads have the same kind of
shortcut on asyncio: :class:`PushReader`.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.abc import ByteStream

__all__ = ("PUSH_READ_SIZE", "NowaitWriter", "PushReader", "nowait_writer", "push_reader")

PUSH_READ_SIZE = 256 * 1024
"""Default bytes asked of the socket per pushed read (``NoiseConfig.receive_size``'s
default, and asyncio's own read size)."""


class NowaitWriter:
    """Synchronous writes to one anyio socket stream. Use only while no ``send`` of that
    stream is in progress (the owner serialises its writers)."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        #: Bytes taken by :meth:`write` that the socket has not accepted yet; the owner
        #: must send them before anything else.
        self.pending: memoryview | None = None

    def ready(self) -> bool:
        """True if :meth:`write` may be called now (no backlog, no known failure)."""
        raise NotImplementedError

    def write(self, data: bytes | bytearray) -> None:
        """Write ``data`` now; what the socket does not take is kept in :attr:`pending`.

        :raises anyio.BrokenResourceError: the socket failed.
        """
        raise NotImplementedError

    async def drain(self) -> None:
        """Wait until the socket took what :meth:`write` handed over (nothing is left in
        the transport's buffer). The owner calls it with no ``send`` in progress."""

    def take_pending(self) -> memoryview | None:
        """Return and forget the bytes still to be written."""
        pending = self.pending
        self.pending = None
        return pending


class _AsyncioWriter(NowaitWriter):
    __slots__ = ("_protocol", "_stream", "_transport")

    def __init__(self, stream: Any) -> None:
        super().__init__()
        self._stream = stream
        self._transport: asyncio.Transport = stream._transport
        self._protocol: Any = stream._protocol

    def ready(self) -> bool:
        protocol = self._protocol
        return (
            protocol.write_event.is_set()
            and protocol.exception is None
            and not self._stream._closed
            and not self._transport.is_closing()
        )

    def write(self, data: bytes | bytearray) -> None:
        try:
            self._transport.write(data)
        except RuntimeError as exc:  # the transport closed meanwhile
            raise anyio.BrokenResourceError from exc

    async def drain(self) -> None:
        # anyio makes a new write_event each time writing pauses; connection_lost sets it
        while not self._protocol.write_event.is_set() and not self._transport.is_closing():
            await self._protocol.write_event.wait()


class _TrioWriter(NowaitWriter):
    __slots__ = ("_socket", "_stream")

    def __init__(self, stream: Any, sock: socket.socket) -> None:
        super().__init__()
        self._stream = stream
        self._socket = sock

    def ready(self) -> bool:
        return self.pending is None and not self._stream._closed

    def write(self, data: bytes | bytearray) -> None:
        sock = self._socket
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            raise anyio.BrokenResourceError from exc
        if sent < len(data):
            self.pending = memoryview(data)[sent:]


def nowait_writer(stream: ByteStream) -> NowaitWriter | None:
    """A synchronous writer for ``stream`` if it is one of anyio's TCP/UNIX socket streams
    on asyncio (the standard library's event loop: on uvloop, whose transports write
    differently, measured slower with many sessions, the tasks' paths stay) or trio, else
    ``None``."""
    module = type(stream).__module__
    if module == "anyio._backends._asyncio":
        if (
            isinstance(getattr(stream, "_transport", None), asyncio.Transport)
            and hasattr(getattr(stream, "_protocol", None), "write_event")
            and hasattr(stream, "_closed")
        ):
            return _AsyncioWriter(stream)
    elif module == "anyio._backends._trio":
        try:
            sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        except anyio.TypedAttributeLookupError:
            return None
        if isinstance(sock, socket.socket) and hasattr(stream, "_closed"):
            return _TrioWriter(stream, sock)
    return None


class PushReader:
    """Bytes handed over by the socket as they arrive (asyncio only).

    Theory of operation: anyio's asyncio socket stream keeps what the socket read in a
    queue and wakes the task blocked in ``receive``; a reader task then passes the bytes
    on. Pushing instead swaps the transport's protocol for one that calls ``on_data`` from
    the event loop's read callback, so bytes reach their consumer (the Noise and Yamux
    cores, then the waiting stream's task) without a task of their own in between. The
    swapped-in protocol forwards everything else (flow control for writes, end of stream,
    errors) to anyio's, so ``send`` and ``aclose`` of the anyio stream keep working.
    """

    __slots__ = ("_paused", "_protocol", "_transport")

    def __init__(self, stream: Any) -> None:
        self._transport: asyncio.Transport = stream._transport
        self._protocol: Any = stream._protocol
        self._paused = False

    def start(
        self,
        on_data: Callable[[bytes | memoryview], None],
        on_end: Callable[[BaseException | None], None],
        read_size: int = PUSH_READ_SIZE,
    ) -> None:
        """Deliver what anyio already read, then every later read, to ``on_data``;
        ``on_end(None)`` at the peer's end of stream, ``on_end(error)`` on a failure.
        The callbacks run in the event loop's callback context and must not raise, and
        ``on_data`` must not keep the buffer it is given (it is reused for the next read).
        """
        inner = self._protocol
        queue = inner.read_queue
        while queue:
            on_data(queue.popleft())
        inner.read_event.clear()
        if inner.exception is not None:
            on_end(inner.exception)
            return
        if inner.is_at_eof:
            on_end(None)
            return
        transport = self._transport
        if transport.is_closing():
            on_end(anyio.ClosedResourceError("the socket was closed"))
            return
        transport.set_protocol(_PushProtocol(inner, on_data, on_end, read_size))
        if not self._paused:  # the bytes delivered above may have paused reading
            transport.resume_reading()

    def pause(self) -> None:
        """Stop reading from the socket (back-pressure reaches the peer through TCP)."""
        self._paused = True
        if not self._transport.is_closing():
            self._transport.pause_reading()

    def resume(self) -> None:
        """Read again after :meth:`pause`."""
        self._paused = False
        if not self._transport.is_closing():
            self._transport.resume_reading()

    def abort(self) -> None:
        """Close the socket at once (the peer broke the protocol)."""
        self._transport.abort()


_read_buffers = threading.local()


def _read_buffer(size: int) -> memoryview:
    """``size`` bytes of this thread's read buffer. One buffer serves every connection of
    the thread's event loop: each read is copied out (into the Noise core) before the
    callback returns. It grows to the largest size asked for."""
    view: memoryview | None = getattr(_read_buffers, "view", None)
    if view is None or len(view) < size:
        view = _read_buffers.view = memoryview(bytearray(max(size, PUSH_READ_SIZE)))
    return view[:size]


class _PushProtocol(asyncio.BufferedProtocol):
    """Reads into the thread's buffer (``recv_into``): a read allocates nothing. With
    asyncio's plain protocols each read allocates a 256 KiB ``bytes``, above glibc's
    default mmap threshold, and depending on the heap's state that allocation alone can
    cost more than the rest of a small message's round trip."""

    __slots__ = ("_buffer", "_inner", "_on_data", "_on_end")

    def __init__(
        self,
        inner: Any,
        on_data: Callable[[bytes | memoryview], None],
        on_end: Callable[[BaseException | None], None],
        read_size: int,
    ) -> None:
        self._inner = inner
        self._on_data = on_data
        self._on_end = on_end
        self._buffer = _read_buffer(read_size)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self._on_data(self._buffer[:nbytes])

    def eof_received(self) -> bool | None:
        self._inner.eof_received()
        self._on_end(None)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)
        self._on_end(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def push_reader(stream: ByteStream) -> PushReader | None:
    """A :class:`PushReader` for one of anyio's asyncio socket streams, else ``None``."""
    if type(stream).__module__ == "anyio._backends._asyncio":
        protocol = getattr(stream, "_protocol", None)
        if isinstance(getattr(stream, "_transport", None), asyncio.Transport) and all(
            hasattr(protocol, name) for name in ("read_queue", "read_event", "is_at_eof")
        ):
            return PushReader(stream)
    return None

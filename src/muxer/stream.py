"""``MuxedStream``: one Yamux stream as an anyio ``ByteStream`` (style.md §5).

Theory of operation: the stream's receive buffer lives here, as a deque of the ``bytes``
bodies the core delivered; the connection's reader (a task, or the socket's read callback)
appends to it and never waits for the application (performance.md §4 rule 4). ``receive``
hands out buffered bytes and
reports them to the core, which returns credit to the peer once half the window was read
(``_window.py``). ``send`` queues as many frames as the send window allows in one call to
the core, gets them written (``MuxedConnection._wake_writer``), and waits on a one-shot
signal when the window (or the connection's write queue) is full — never a sleep loop.
``send_nowait`` queues a whole message or nothing, never waiting, so a caller that must not
lose part of a message to a cancellation needs no shielded scope when there is room.

Exceptions, in anyio's vocabulary: ``EndOfStream`` once the peer's FIN has been drained;
:class:`StreamResetError` (an ``anyio.BrokenResourceError``) after the peer's RST;
``ClosedResourceError`` after a local ``aclose``/``reset`` (and ``send`` after
``send_eof``); ``BrokenResourceError`` chained from the cause when the connection dies
(buffered bytes can still be read first); ``BusyResourceError`` for concurrent receives or
concurrent sends. A ``send`` cancelled after part of its data was queued resets the stream,
so the peer never mistakes a truncated message for a complete one (hardening.md §1.6).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import anyio
from anyio import TypedAttributeSet, typed_attribute
from anyio.abc import ByteStream

from ._stream_state import HalfState

if TYPE_CHECKING:
    from .._loop import Signal

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .session import MuxedConnection

__all__ = ("MuxedStream", "MuxerAttribute", "StreamResetError")

_OPEN = HalfState.OPEN


class StreamResetError(anyio.BrokenResourceError):
    """The peer reset (RST) the stream; unread data was discarded."""


class MuxerAttribute(TypedAttributeSet):
    """Typed attributes of a :class:`MuxedStream`."""

    #: The Yamux stream id.
    stream_id: int = typed_attribute()
    #: True when this side opened the stream.
    is_outbound: bool = typed_attribute()


class MuxedStream(ByteStream):
    """A bidirectional byte stream multiplexed over a :class:`MuxedConnection`.

    Made by :meth:`MuxedConnection.open_stream` and :meth:`MuxedConnection.accept_stream`;
    not constructed directly.
    """

    def __init__(self, connection: MuxedConnection, stream_id: int, *, outbound: bool) -> None:
        self._conn = connection
        self._core = connection._core
        self.stream_id = stream_id
        self.is_outbound = outbound
        self._chunks: deque[bytes | memoryview] = deque()
        self._buffered = 0
        # read: OPEN, CLOSED (peer FIN), RESET (peer RST), DISCARDING (closed locally)
        self._read_state = HalfState.OPEN
        # write: OPEN, CLOSED (FIN sent or closed locally), RESET (peer RST)
        self._write_state = HalfState.OPEN
        self._receive_event: Signal | None = None
        self._send_event: Signal | None = None
        # concurrent receives (or sends) raise BusyResourceError, like anyio's
        # ResourceGuard, with a plain flag (no guard object per stream and operation)
        self._receiving = False
        self._sending = False
        self._receive_deadline: float | None = None
        self._deadline_queued: float | None = None  # when the timer looks at it next

    # ------------------------------------------------------------------ called by the reader

    def _feed(self, data: bytes | memoryview) -> None:
        if self._read_state is _OPEN:
            self._chunks.append(data)
            self._buffered += len(data)
            event = self._receive_event
            if event is not None:
                event.set()

    def _wake_receiver(self) -> None:
        event = self._receive_event
        if event is not None:
            event.set()

    def _wake_sender(self) -> None:
        event = self._send_event
        if event is not None:
            event.set()

    def _on_eof(self) -> None:
        if self._read_state is _OPEN:
            self._read_state = HalfState.CLOSED
        self._wake_all()
        self._conn._forget_if_done(self)

    def _writable_here(self) -> bool:
        return self._write_state is _OPEN

    def _on_reset(self) -> None:
        if self._read_state in (_OPEN, HalfState.CLOSED):
            self._read_state = HalfState.RESET
            self._chunks.clear()
            self._buffered = 0
        if self._write_state is _OPEN:
            self._write_state = HalfState.RESET
        self._wake_all()

    def _wake_all(self) -> None:
        for event in (self._receive_event, self._send_event):
            if event is not None:
                event.set()

    # ------------------------------------------------------------------ anyio ByteStream

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return {
            **self._conn.transport_stream.extra_attributes,
            MuxerAttribute.stream_id: lambda: self.stream_id,
            MuxerAttribute.is_outbound: lambda: self.is_outbound,
        }

    @property
    def receive_deadline(self) -> float | None:
        """When a :meth:`receive` that is still waiting gives up (``anyio.current_time()``
        clock), or ``None`` (the default: it waits as long as it takes).

        Past this time, :meth:`receive` raises ``TimeoutError`` instead of waiting, and a
        waiting one wakes with it; data that has arrived is still returned first. Unlike a
        cancel scope with a deadline, setting it costs nothing and it may be moved at any
        time: the connection's timer looks at it only when it comes due.
        """
        return self._receive_deadline

    @receive_deadline.setter
    def receive_deadline(self, value: float | None) -> None:
        self._receive_deadline = value
        if value is not None and self._receive_event is not None:
            # a receive is waiting: make sure the timer looks at the stream in time
            queued = self._deadline_queued
            if queued is None or value < queued:
                self._conn._schedule_deadline(self, value)

    @property
    def buffered_size(self) -> int:
        """Received bytes waiting to be read."""
        return self._buffered

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Return up to ``max_bytes`` buffered bytes, waiting for data if there is none.

        :raises anyio.EndOfStream: the peer half-closed and everything was read.
        :raises StreamResetError: the peer reset the stream.
        :raises anyio.ClosedResourceError: the stream was closed or reset locally.
        :raises anyio.BrokenResourceError: the connection died.
        :raises anyio.BusyResourceError: another task is already receiving.
        :raises TimeoutError: nothing arrived before :attr:`receive_deadline`.
        """
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        if self._receiving:
            raise anyio.BusyResourceError("reading from")
        self._receiving = True
        waited = False
        try:
            while True:
                chunks = self._chunks
                if chunks:
                    first = chunks[0]
                    size = len(first)
                    # chunks are mostly memoryviews into the reader's input: this is the
                    # one copy a received byte takes (bytes() of a bytes object is free)
                    if size >= max_bytes:
                        if size == max_bytes:
                            chunks.popleft()
                            out = bytes(first)
                        else:
                            out = bytes(first[:max_bytes])
                            chunks[0] = first[max_bytes:]
                    else:
                        chunks.popleft()
                        parts = [first]
                        while chunks and size + len(chunks[0]) <= max_bytes:
                            nxt = chunks.popleft()
                            parts.append(nxt)
                            size += len(nxt)
                        out = bytes(first) if len(parts) == 1 else b"".join(parts)
                    n = len(out)
                    self._buffered -= n
                    core = self._core
                    core.acknowledge_received_data(self.stream_id, n)
                    if core.has_data_to_send:
                        self._conn._wake_writer()
                    return out
                state = self._read_state
                if state is not _OPEN:
                    if state is HalfState.CLOSED:
                        raise anyio.EndOfStream
                    if state is HalfState.RESET:
                        raise StreamResetError(f"stream {self.stream_id} was reset by the peer")
                    raise anyio.ClosedResourceError
                conn = self._conn
                conn._raise_if_dead()
                deadline = self._receive_deadline
                if deadline is not None:
                    # a deadline that already passed is found by the timer at once, so the
                    # clock is read only after a wake-up that brought no data
                    if waited and conn._clock() >= deadline:
                        raise TimeoutError(f"no data on stream {self.stream_id} in time")
                    queued = self._deadline_queued
                    if queued is None or deadline < queued:
                        conn._schedule_deadline(self, deadline)
                waited = True
                conn._flush_before_waiting()
                event = self._receive_event = conn._event()
                await event.wait()
                self._receive_event = None
        finally:
            self._receiving = False
            self._receive_event = None

    async def send(self, item: bytes) -> None:
        """Queue ``item`` for sending; returns once every byte is queued (window permitting),
        not necessarily written.

        :raises anyio.ClosedResourceError: after ``send_eof``, ``aclose`` or ``reset``.
        :raises StreamResetError: the peer reset the stream.
        :raises anyio.BrokenResourceError: the connection died.
        :raises anyio.BusyResourceError: another task is already sending.
        """
        if self._sending:
            raise anyio.BusyResourceError("writing to")
        self._sending = True
        try:
            view = memoryview(item)
            if not view.readonly:  # a bytearray could change after send() returns: copy it
                item = bytes(view)
                view = memoryview(item)
            total = len(item)
            offset = 0
            conn = self._conn
            core = self._core
            limit = core.config.max_write_queue_size
            try:
                while True:
                    self._check_writable()
                    conn._raise_if_dead()
                    if core.queued_data_size >= limit:
                        conn._flush_before_waiting()
                        await conn._wait_for_queue_space()
                        continue
                    if offset < total:
                        n = core.send_data(self.stream_id, view[offset:] if offset else item)
                        if n:
                            offset += n
                            conn._wake_writer()
                    if offset >= total:
                        if core.queued_data_size <= conn._space_low:
                            conn._pass_queue_space()
                        return
                    event = self._send_event = conn._event()
                    if core.outbound_window(self.stream_id) == 0:
                        conn._zero_window_waits += 1
                        conn._pass_queue_space()
                        conn._flush_before_waiting()
                        await event.wait()
                    self._send_event = None
            except BaseException:
                if 0 < offset < total and self._write_state is _OPEN:
                    await self._abort()
                conn._pass_queue_space()
                raise
        finally:
            self._sending = False

    def send_nowait(self, item: bytes) -> bool:
        """Queue all of ``item`` at once if the send window and the connection's write
        queue have room for it, else queue nothing.

        Unlike :meth:`send`, this never waits, so it cannot be cancelled half-way: a
        caller that must not lose part of a message to a cancellation tries it first.

        :return: True if every byte was queued; False (nothing queued) if :meth:`send`
            would have to wait, or would raise.
        """
        if self._sending or self._write_state is not _OPEN or type(item) is not bytes:
            return False
        conn = self._conn
        core = self._core
        if (
            conn._error is not None
            or core.queued_data_size >= core.config.max_write_queue_size
            or core.outbound_window(self.stream_id) < len(item)
        ):
            return False
        if item:
            core.send_data(self.stream_id, item)
            conn._wake_writer()
        return True

    def _check_writable(self) -> None:
        state = self._write_state
        if state is not _OPEN:
            if state is HalfState.RESET:
                raise StreamResetError(f"stream {self.stream_id} was reset by the peer")
            raise anyio.ClosedResourceError

    async def send_eof(self) -> None:
        """Half-close: send FIN. Reading stays possible. Idempotent."""
        if self._write_state is _OPEN:
            self._write_state = HalfState.CLOSED
            if not self._conn._is_dead():
                self._core.end_stream(self.stream_id)
                self._conn._wake_writer()
                self._conn._forget_if_done(self)

    async def aclose(self) -> None:
        """Close the stream: send FIN if not sent yet and stop reading (unread and later
        bytes are discarded, with credit returned so the peer is never stuck)."""
        if self._read_state is HalfState.DISCARDING:
            return
        write_open = self._write_state is _OPEN
        self._write_state = HalfState.CLOSED
        self._read_state = HalfState.DISCARDING
        self._chunks.clear()
        self._buffered = 0
        conn = self._conn
        if not conn._is_dead():
            core = self._core
            if write_open:
                core.end_stream(self.stream_id)
            core.stop_reading(self.stream_id)
            if core.has_data_to_send:
                conn._wake_writer()
        self._wake_all()
        conn._forget_if_done(self)

    async def reset(self) -> None:
        """Abort the stream with RST; later operations raise ``ClosedResourceError``."""
        await self._abort()

    async def _abort(self) -> None:
        if (
            self._read_state is HalfState.DISCARDING
            and self._write_state is not _OPEN
            and (self._core.stream_state(self.stream_id) is None)
        ):
            return
        self._read_state = HalfState.DISCARDING
        self._write_state = HalfState.CLOSED
        self._chunks.clear()
        self._buffered = 0
        if not self._conn._is_dead():
            self._core.reset_stream(self.stream_id)
            self._conn._wake_writer()
        self._wake_all()
        self._conn._forget_if_done(self)

    def __repr__(self) -> str:
        return (
            f"<MuxedStream {self.stream_id} read={self._read_state.name} "
            f"write={self._write_state.name} buffered={self._buffered}>"
        )

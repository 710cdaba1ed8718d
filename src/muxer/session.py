"""``MuxedConnection``: the Yamux core run over any anyio ``ByteStream`` (style.md §5).

Theory of operation (performance.md §4, yamux.md §7):

* **Reading.** Over a transport that pushes (``NoiseStream`` on asyncio TCP, see
  ``_nowait.py``), the bytes are fed to the core in the event loop's read callback and the
  events routed there and then: a waiting stream's task is the next to run, with no task
  in between. Otherwise **one reader task** calls ``transport.receive(config.receive_size)``
  and does the same for each chunk. Either way bytes go into the stream's own buffer,
  window updates and EOF/RST wake that stream's waiter, new streams go to a deque for
  ``accept_stream``, and nothing ever waits for an application consumer, so a slow reader
  of one stream cannot stall the others (its buffer is bounded by its window). When a ping
  flood fills the pong queue the core pauses; reading stops (pushes are paused at the
  socket) until the writer has flushed, so back-pressure reaches TCP.
* **Writing.** Whoever queues frames in the core calls ``_wake_writer``. When the writer
  task is asleep and the transport can write synchronously (``send_nowait``: the socket
  takes the bytes or buffers them in order, with no await), the frames are written from
  the calling task at once, one such write per burst: until the reader or the writer runs
  again, later frames wait for the writer, which joins them. Otherwise the **writer task**
  is woken; it sleeps on a one-shot signal made only when it goes to sleep. Each wake-up
  drains the core into one joined batch of at most ``write_batch_size`` bytes (control
  frames first) and makes one ``transport.send``. Senders that find the write queue full
  wait in FIFO order and are handed the room one at a time (``_wait_for_queue_space``).
* **Lazy ACK.** ``accept_stream`` owes the ACK without waking the writer: the handler's
  first frame on the stream carries it, so accept + reply is one frame and one write; it
  goes out as soon as any task waits on the connection (``_flush_before_waiting``), and
  at the latest after ``max_ack_delay`` (the timer).
* **One timer task** sleeps until ``core.get_timer()`` and calls ``handle_timer``:
  keep-alive pings, and closing a connection whose pong is overdue; it also flushes an
  ACK still owed after ``max_ack_delay``, and keeps the streams' receive deadlines
  (``MuxedStream.receive_deadline``) lazily: a stream is in its heap once, and when the
  entry comes up the stream's current deadline decides (wake the receive, look again
  later, or drop it), so moving a deadline costs an assignment.
* **Failure**: a protocol violation, GO_AWAY, EOF, a transport error or a keep-alive
  timeout marks the connection dead: every waiter wakes, stream operations raise
  ``BrokenResourceError`` chained from the cause (buffered bytes stay readable), a queued
  GO_AWAY is flushed (bounded by ``close_timeout``) and the transport is closed. The
  background tasks end through their own cancel scopes, never the task group's, so the
  application's ``async with`` body is not cancelled, and an error raised by that body
  propagates as itself. A task that starts after the shutdown began (the peer closed
  before ``__aenter__`` finished) cancels itself at once.
* ``aclose`` queues GO_AWAY(0) behind the queued data, flushes under a shielded scope
  bounded by ``close_timeout``, then closes the transport.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections import deque
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, Protocol, runtime_checkable

import anyio
from anyio.abc import AsyncResource, ByteStream, TaskGroup, TaskStatus

from .._loop import Signal, running_clock, signal_factory
from ..errors import PlaitError
from .config import YamuxConfig
from .connection import YamuxConnection
from .errors import GoAwayError, MuxerProtocolViolation, StreamLimitError
from .events import (
    ConnectionTerminated,
    PingAcknowledged,
    StreamDataReceived,
    StreamEnded,
    StreamOpened,
    StreamReset,
    WindowUpdated,
)
from .stream import MuxedStream

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import TracebackType
    from typing import Self

    from .events import MuxerEvent

__all__ = ("MuxedConnection", "MuxerStatistics")

logger = logging.getLogger(__name__)

#: Longest wait the timer makes as a plain (not wakeable) sleep, for a lazily flushed ACK.
_PLAIN_SLEEP = 0.05

_TRANSPORT_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, PlaitError)


@runtime_checkable
class _NowaitTransport(Protocol):
    """A transport that can also write synchronously (``NoiseStream`` over TCP)."""

    def can_send_nowait(self) -> bool: ...
    def send_nowait(self, item: bytes | bytearray) -> None: ...
    @property
    def has_pending_send(self) -> bool: ...
    async def flush(self) -> None: ...


@runtime_checkable
class _PushTransport(_NowaitTransport, Protocol):
    """A transport that can also push what it reads (``NoiseStream`` over asyncio TCP)."""

    def start_push(
        self,
        on_data: Callable[[bytes], None],
        on_end: Callable[[BaseException | None], None],
    ) -> bool: ...
    def pause_push(self) -> None: ...
    def resume_push(self) -> None: ...


class MuxerStatistics(NamedTuple):
    """A snapshot of one connection's counters (:meth:`MuxedConnection.statistics`)."""

    streams: int
    """Live streams in the core (both directions)."""
    accept_queue: int
    """Inbound streams waiting for ``accept_stream``."""
    ack_backlog: int
    """Outbound streams the peer has not acknowledged yet."""
    zero_window_waits: int
    """Times a ``MuxedStream.send`` waited for the peer to grant window."""
    batches_written: int
    """``transport.send`` calls made by the writer."""
    bytes_written: int
    """Bytes handed to the transport."""
    reads: int
    """``transport.receive`` calls that returned."""
    bytes_read: int
    """Bytes received from the transport."""


class MuxedConnection(AsyncResource):
    """A Yamux session over ``transport``; use it as an async context manager.

    :param transport: any anyio ``ByteStream`` (TCP, ``NoiseStream``, ...). It is closed
        when the connection ends.
    :param is_client: True on the dialing side (odd stream ids), False on the listener.
    :param config: limits and behaviour.
    """

    def __init__(
        self, transport: ByteStream, *, is_client: bool, config: YamuxConfig | None = None
    ) -> None:
        self.transport_stream = transport
        self.config = config if config is not None else YamuxConfig()
        self.is_client = is_client
        self._core = YamuxConnection(is_client=is_client, config=self.config)
        self._streams: dict[int, MuxedStream] = {}
        self._accept_queue: deque[MuxedStream] = deque()
        self._accept_event: Signal | None = None
        self._open_event: Signal | None = None
        self._space_waiters: deque[Signal] = deque()
        self._space_high = self.config.max_write_queue_size
        self._space_low = self.config.max_write_queue_size >> 1
        self._space_handoff = False  # a sender woken for queue space has not run yet
        self._writer_waiting: Signal | None = None  # set while the writer sleeps
        self._idle_event: Signal | None = None
        self._timer_event: Signal | None = None
        self._ping_waiters: dict[int, Signal] = {}
        self._ping_results: dict[int, float] = {}
        self._task_group: TaskGroup | None = None
        self._scopes: list[anyio.CancelScope] = []
        self._tasks_cancelled = False
        self._error: BaseException | None = None
        self._closed_locally = False
        self._started = False
        self._shutdown_done = anyio.Event()
        # anyio.Event() looks up the running backend on every call; the hot paths make
        # their one-shot signals with the factory found once on entry (_loop.py)
        self._event: Callable[[], Signal] = anyio.Event
        self._shared_event: Callable[[], Signal] = anyio.Event  # for several waiters
        self._writer_done = False
        self._zero_window_waits = 0
        self._batches_written = 0
        self._bytes_written = 0
        self._reads = 0
        self._bytes_read = 0
        self._flush_at: float | None = None  # when frames left unflushed must go out
        # a transport that can write from the calling task (NoiseStream over TCP)
        self._nowait: _NowaitTransport | None = (
            transport if isinstance(transport, _NowaitTransport) else None
        )
        self._nowait_spent = False
        # receive deadlines of streams, looked at by the timer (_schedule_deadline)
        self._deadlines: list[tuple[float, int, MuxedStream]] = []
        self._deadline_ids = itertools.count()
        self._timer_due: float | None = -math.inf  # when the timer task wakes next
        self._pushing: _PushTransport | None = None  # the transport pushes what it reads
        self._push_paused: Signal | None = None
        self._clock: Callable[[], float] = anyio.current_time

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self._started:
            raise RuntimeError("a MuxedConnection can be entered only once")
        self._started = True
        self._event = signal_factory()
        self._shared_event = type(anyio.Event())
        self._clock = running_clock()
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        try:
            self._core.start(self._clock())
            await self._task_group.start(self._reader)
            await self._task_group.start(self._writer)
            await self._task_group.start(self._timer)
        except BaseException:
            self._cancel_tasks()
            await self._task_group.__aexit__(None, None, None)
            raise
        self._wake_writer()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        try:
            await self.aclose()
        finally:
            assert self._task_group is not None
            if isinstance(exc_val, Exception):
                # An error of the ``async with`` body propagates as itself, as from anyio's
                # own streams: the background tasks were stopped through their own scopes
                # by aclose(), so the task group has nothing to cancel and the error is not
                # handed to it (which would wrap it in an ExceptionGroup).
                await self._task_group.__aexit__(None, None, None)
            else:
                # no error, or a cancellation / BaseException the task group must see
                await self._task_group.__aexit__(exc_type, exc_val, exc_tb)

    async def aclose(self) -> None:
        """Send GO_AWAY(0) after the queued data, flush (at most ``close_timeout`` seconds),
        close the transport. Every stream then raises ``ClosedResourceError``. Idempotent."""
        if self._task_group is None:  # never entered: just release the transport
            self._closed_locally = True
            self._error = anyio.ClosedResourceError("the connection was closed locally")
            await self.transport_stream.aclose()
            return
        if self._error is None:
            self._closed_locally = True
            self._core.close()
            self._fail(anyio.ClosedResourceError("the connection was closed locally"))
        with anyio.CancelScope(shield=True):
            await self._shutdown_done.wait()

    @property
    def rtt(self) -> float | None:
        """Latest round-trip time from pings, in seconds (``None`` before the first)."""
        return self._core.rtt

    @property
    def is_closed(self) -> bool:
        """True once the connection is closing or closed."""
        return self._error is not None

    @property
    def core(self) -> YamuxConnection:
        """The sans-IO core (read-only inspection: windows, stream counts, state)."""
        return self._core

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self.transport_stream.extra_attributes

    def statistics(self) -> MuxerStatistics:
        """Counters for tuning and tests (performance.md §4 rule 6)."""
        core = self._core
        return MuxerStatistics(
            streams=core.stream_count,
            accept_queue=len(self._accept_queue),
            ack_backlog=core.ack_backlog,
            zero_window_waits=self._zero_window_waits,
            batches_written=self._batches_written,
            bytes_written=self._bytes_written,
            reads=self._reads,
            bytes_read=self._bytes_read,
        )

    # ------------------------------------------------------------------ public operations

    async def open_stream(self) -> MuxedStream:
        """Open an outbound stream (WINDOW_UPDATE+SYN is queued at once).

        Waits while ``max_ack_backlog`` streams are unacknowledged.

        :raises StreamLimitError: ``max_streams`` live streams or ids exhausted.
        :raises anyio.BrokenResourceError: the connection died.
        :raises anyio.ClosedResourceError: the connection was closed locally.
        """
        core = self._core
        while not core.can_open_stream:
            self._raise_if_dead()
            if core.stream_count >= self.config.max_streams:
                raise StreamLimitError("too many streams")
            if core.ack_backlog < self.config.max_ack_backlog:
                raise StreamLimitError("stream ids exhausted")
            self._flush_before_waiting()
            event = self._open_event
            if event is None:
                event = self._open_event = self._shared_event()
            await event.wait()
        stream_id = core.open_stream()
        stream = MuxedStream(self, stream_id, outbound=True)
        self._streams[stream_id] = stream
        self._wake_writer()
        return stream

    async def accept_stream(self) -> MuxedStream:
        """Wait for the next inbound stream and acknowledge it (WINDOW_UPDATE+ACK).

        :raises anyio.EndOfStream: the peer closed the connection cleanly (EOF, GO_AWAY(0)).
        :raises anyio.BrokenResourceError: the connection died otherwise.
        :raises anyio.ClosedResourceError: the connection was closed locally.
        """
        while True:
            if self._accept_queue:
                stream = self._accept_queue.popleft()
                self._core.accept_stream(stream.stream_id)
                if self._writer_waiting is not None and self._flush_at is None:
                    # The ACK waits for a frame to ride with (the handler's first write, or
                    # the moment a task waits on the connection), at most max_ack_delay.
                    self._flush_at = self._clock() + self.config.max_ack_delay
                    if self._timer_event is not None:
                        self._timer_event.set()
                return stream
            error = self._error
            if error is not None:
                if not self._closed_locally and (
                    isinstance(error, anyio.EndOfStream)
                    or (isinstance(error, GoAwayError) and error.code == 0)
                ):
                    raise anyio.EndOfStream from error
                self._raise_if_dead()
            self._flush_before_waiting()
            event = self._accept_event
            if event is None:
                event = self._accept_event = self._shared_event()
            await event.wait()

    async def ping(self) -> float:
        """Send a ping and wait for its answer.

        :return: the round-trip time in seconds.
        :raises anyio.BrokenResourceError: the connection died first.
        """
        self._raise_if_dead()
        opaque = self._core.send_ping(now=self._clock())
        event = self._ping_waiters[opaque] = self._event()
        self._wake_writer()
        if self._timer_event is not None:
            self._timer_event.set()
        try:
            await event.wait()
        finally:
            self._ping_waiters.pop(opaque, None)
        if opaque in self._ping_results:
            return self._ping_results.pop(opaque)
        self._raise_if_dead()
        raise AssertionError("ping woken without an answer")  # pragma: no cover

    # ------------------------------------------------------------------ helpers for streams

    def _wake_writer(self) -> None:
        """Get the frames queued in the core written: from this task, synchronously, when
        the writer is asleep and the transport can take bytes at once (``send_nowait``),
        else by waking the writer."""
        event = self._writer_waiting
        if event is not None:
            transport = self._nowait
            if transport is not None and not self._nowait_spent and transport.can_send_nowait():
                # one synchronous write per burst: until the reader or the writer runs
                # again (a loop turn), later frames wait for the writer, which joins them
                self._nowait_spent = True
                core = self._core
                data = core.data_to_send(self.config.write_batch_size)
                if data:
                    self._batches_written += 1
                    self._bytes_written += len(data)
                    try:
                        transport.send_nowait(data)
                    except _TRANSPORT_ERRORS as exc:
                        self._fail(exc)
                if not core.has_data_to_send and not transport.has_pending_send:
                    if self._space_waiters and core.queued_data_size <= self._space_low:
                        self._pass_queue_space()
                    return
            self._writer_waiting = None
            event.set()

    def _flush_before_waiting(self) -> None:
        """A task is about to wait on this connection: frames queued without waking the
        writer (the ACKs of accepted streams) go out now."""
        if self._core.has_data_to_send:
            self._wake_writer()

    def _is_dead(self) -> bool:
        return self._error is not None

    def _raise_if_dead(self) -> None:
        error = self._error
        if error is not None:
            self._raise_dead(error)

    def _raise_dead(self, error: BaseException) -> NoReturn:
        if self._closed_locally:
            raise anyio.ClosedResourceError("the connection was closed locally")
        raise anyio.BrokenResourceError("the Yamux connection is gone") from error

    async def _wait_for_queue_space(self) -> None:
        """Wait, in FIFO order, until the writer drained the queue below half its cap.

        Waiters are woken one at a time, and the next only once the woken one has run:
        it may fill the room with several ``send`` calls, as a lone sender does, and then
        passes the turn on (``_pass_queue_space``) only if it leaves more than half the
        queue free, or when it stops to wait for window. With many streams, waking the
        next sender while the woken one was still queueing cost a wake-up per waiter that
        found the queue full again.
        """
        # an anyio event, not a one-shot signal: the writer may hand this waiter the room
        # in the same loop turn as it is cancelled, and is_set() must then say so
        event = self._shared_event()
        self._space_waiters.append(event)
        try:
            await event.wait()
        finally:
            if event.is_set():
                self._space_handoff = False
            else:
                self._space_waiters.remove(event)

    def _pass_queue_space(self) -> None:
        """Wake the next sender waiting for queue space, if there is room for it and no
        sender woken earlier is still to run."""
        waiters = self._space_waiters
        if waiters and not self._space_handoff and (self._core.queued_data_size < self._space_high):
            self._space_handoff = True
            waiters.popleft().set()

    async def _wait_idle(self) -> None:
        """Wake the writer and wait until it has written everything queued."""
        if self._writer_done:
            return
        self._wake_writer()
        if self._writer_waiting is not None:
            return  # still asleep: everything was written from this task
        event = self._idle_event
        if event is None:
            event = self._idle_event = self._shared_event()
        await event.wait()

    def _forget_if_done(self, stream: MuxedStream) -> None:
        """Drop a stream the core released, once its write side is closed here too.

        A stream whose write side is still open here was released by a reset whose event
        is still to be routed (FIN and RST read together): it must stay reachable for it.
        """
        if not stream._writable_here() and self._core.stream_state(stream.stream_id) is None:
            self._streams.pop(stream.stream_id, None)

    # ------------------------------------------------------------------ background tasks

    async def _reader(self, *, task_status: TaskStatus[None]) -> None:
        with self._task_scope():
            transport = self._nowait
            if transport is not None and isinstance(transport, _PushTransport):
                # set first: start_push hands over what is already buffered at once, and
                # those bytes may pause reading
                self._pushing = transport
                if transport.start_push(self._on_input, self._on_push_end):
                    task_status.started()
                    await self._resume_pushes()
                    return
                self._pushing = None
            task_status.started()
            receive = self.transport_stream.receive
            size = self.config.receive_size
            while True:
                try:
                    data = await receive(size)
                except anyio.EndOfStream:
                    data = b""
                except _TRANSPORT_ERRORS as exc:
                    self._fail(exc)
                    return
                self._on_input(data)
                if self._core.is_reading_paused:
                    await self._resume_reading()
                # once the connection is ending, keep draining (and discarding) input
                # until the shutdown closes the transport, so a peer blocked writing to
                # us can finish and read our GO_AWAY
                if not data:
                    return

    def _on_input(self, data: bytes | memoryview) -> None:
        """One read of the transport (``b""``: its end), from the reader task or pushed
        from the event loop's read callback: into the core, events routed, replies written
        at once. A ping flood that pauses the core also pauses pushed reads."""
        self._reads += 1
        self._bytes_read += len(data)
        self._nowait_spent = False
        if self._error is not None:
            return
        core = self._core
        try:
            self._dispatch(core.receive_data(data, now=self._clock()))
        except MuxerProtocolViolation as exc:
            logger.warning("yamux peer violated the protocol: %s", exc)
            self._fail(exc)
        else:
            if core.is_reading_paused and self._pushing is not None:
                self._pushing.pause_push()
                if self._push_paused is not None:
                    self._push_paused.set()
        if core.has_data_to_send:
            self._wake_writer()

    async def _resume_reading(self) -> None:
        """While the core is paused by unwritten pongs: wait for the writer to flush them,
        then parse the input the core parked."""
        core = self._core
        try:
            while core.is_reading_paused and self._error is None:
                await self._wait_idle()
                self._dispatch(core.resume_reading())
        except MuxerProtocolViolation as exc:
            logger.warning("yamux peer violated the protocol: %s", exc)
            self._fail(exc)
        if core.has_data_to_send:
            self._wake_writer()

    def _on_push_end(self, error: BaseException | None) -> None:
        if error is None:
            self._on_input(b"")  # the core reports the end of the connection
        else:
            self._fail(error)

    async def _resume_pushes(self) -> None:
        """The reader task while bytes are pushed: resume reading once the writer has
        flushed the pongs that paused it."""
        assert self._pushing is not None
        while True:
            if not self._core.is_reading_paused:
                event = self._push_paused = self._event()
                await event.wait()
                self._push_paused = None
            await self._resume_reading()
            if self._error is not None:
                return
            self._pushing.resume_push()

    async def _writer(self, *, task_status: TaskStatus[None]) -> None:
        with self._task_scope():
            task_status.started()
            core = self._core
            send = self.transport_stream.send
            batch = self.config.write_batch_size
            low = self._space_low
            nowait = self._nowait
            try:
                while True:
                    if core.has_data_to_send or (nowait is not None and nowait.has_pending_send):
                        data = core.data_to_send(batch)
                        self._batches_written += 1
                        self._bytes_written += len(data)
                        await send(data)
                        self._nowait_spent = False
                        if self._space_waiters and core.queued_data_size <= low:
                            self._pass_queue_space()
                        continue
                    idle = self._idle_event
                    if idle is not None:
                        self._idle_event = None
                        idle.set()
                    # sleep until woken; a wake-up while busy needs no event (the loop
                    # looks at the core again before sleeping)
                    event = self._writer_waiting = self._event()
                    await event.wait()
            except _TRANSPORT_ERRORS as exc:
                self._fail(exc)
            finally:
                self._writer_done = True
                idle = self._idle_event  # nobody may wait for a writer that is gone
                if idle is not None:
                    self._idle_event = None
                    idle.set()

    async def _timer(self, *, task_status: TaskStatus[None]) -> None:
        with self._task_scope():
            task_status.started()
            core = self._core
            clock = self._clock
            deadlines = self._deadlines
            while True:
                deadline = core.get_timer()
                flush_at = self._flush_at
                if flush_at is not None and (deadline is None or flush_at < deadline):
                    deadline = flush_at
                if deadlines and (deadline is None or deadlines[0][0] < deadline):
                    deadline = deadlines[0][0]
                self._timer_due = deadline
                if deadline is None:
                    event = self._timer_event = self._event()
                    await event.wait()
                    self._timer_due = -math.inf  # running: it looks again before sleeping
                    continue
                delay = max(deadline - clock(), 0)
                if flush_at is not None and delay <= _PLAIN_SLEEP:
                    # the owed ACK is due soon: a plain sleep, as a cancel scope with a
                    # deadline costs far more; a wake-up meanwhile (a new ping) is seen
                    # when it ends
                    await anyio.sleep(delay)
                else:
                    event = self._timer_event = self._event()
                    with anyio.move_on_after(delay):
                        await event.wait()
                self._timer_due = -math.inf
                now = clock()
                if deadlines and deadlines[0][0] <= now:
                    self._expire_deadlines(now)
                if flush_at is not None and now >= flush_at:
                    self._flush_at = None
                    if core.has_data_to_send:
                        self._wake_writer()
                timer = core.get_timer()
                if timer is not None and now >= timer:
                    self._dispatch(core.handle_timer(now))
                    if core.has_data_to_send:
                        self._wake_writer()

    def _schedule_deadline(self, stream: MuxedStream, when: float) -> None:
        """Have the timer look at ``stream``'s receive deadline at ``when``.

        Deadlines are lazy: a stream is in the heap at most once per time it asked for, and
        when its entry comes up, the timer reads the stream's *current* deadline — later
        (the next call's): queued again; passed: the waiting receive is woken; none:
        dropped. A session that makes a call per millisecond thus costs the timer one
        wake-up per deadline period, not one per call, and no cancel scope at all.
        """
        stream._deadline_queued = when
        heapq.heappush(self._deadlines, (when, next(self._deadline_ids), stream))
        due = self._timer_due
        if (due is None or when < due) and self._timer_event is not None:
            self._timer_event.set()

    def _expire_deadlines(self, now: float) -> None:
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            when, _, stream = heapq.heappop(deadlines)
            if stream._deadline_queued != when:
                continue  # superseded by an earlier entry
            stream._deadline_queued = None
            deadline = stream._receive_deadline
            if deadline is None:
                continue
            if deadline > now:
                stream._deadline_queued = deadline
                heapq.heappush(deadlines, (deadline, next(self._deadline_ids), stream))
            else:
                stream._wake_receiver()

    async def _shutdown(self) -> None:
        """Flush what the core still has (GO_AWAY), close the transport, stop the tasks."""
        try:
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(self.config.close_timeout):
                    while self._core.has_data_to_send and not self._writer_done:
                        await self._wait_idle()
                    if self._nowait is not None and not self._writer_done:
                        # frames written from a task may still sit in the socket's
                        # buffer (GO_AWAY, say): let them leave before the socket closes
                        await self._nowait.flush()
                self._cancel_tasks()
                with anyio.move_on_after(self.config.close_timeout):
                    await self.transport_stream.aclose()
        finally:
            self._shutdown_done.set()

    def _task_scope(self) -> anyio.CancelScope:
        """A cancel scope for one background task, registered for :meth:`_cancel_tasks`.

        A task that starts after the shutdown already cancelled the others (the peer
        closed before ``__aenter__`` had started every task) is cancelled at once.
        """
        scope = anyio.CancelScope()
        self._scopes.append(scope)
        if self._tasks_cancelled:
            scope.cancel()
        return scope

    def _cancel_tasks(self) -> None:
        self._tasks_cancelled = True
        for scope in self._scopes:
            scope.cancel()

    # ------------------------------------------------------------------ event routing

    def _dispatch(self, events: list[MuxerEvent]) -> None:
        streams = self._streams
        for event in events:
            if isinstance(event, StreamDataReceived):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream._feed(event.data)
            elif isinstance(event, WindowUpdated):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream._wake_sender()
            elif isinstance(event, StreamOpened):
                stream = MuxedStream(self, event.stream_id, outbound=False)
                streams[event.stream_id] = stream
                self._accept_queue.append(stream)
                if self._accept_event is not None:
                    self._accept_event.set()
                    self._accept_event = None
            elif isinstance(event, StreamEnded):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream._on_eof()
            elif isinstance(event, StreamReset):
                stream = streams.pop(event.stream_id, None)
                if stream is not None:
                    stream._on_reset()
                    if not stream.is_outbound and stream in self._accept_queue:
                        self._accept_queue.remove(stream)
            elif isinstance(event, PingAcknowledged):
                waiter = self._ping_waiters.get(event.opaque)
                if waiter is not None:
                    self._ping_results[event.opaque] = event.rtt
                    waiter.set()
            elif isinstance(event, ConnectionTerminated):
                error: BaseException | None = event.error
                if error is None:
                    error = anyio.EndOfStream("the peer closed the connection")
                self._fail(error)
        if self._open_event is not None and self._core.can_open_stream:
            self._open_event.set()
            self._open_event = None

    def _fail(self, error: BaseException) -> None:
        """Mark the connection dead, wake every waiter, start the shutdown."""
        if self._error is not None:
            return
        self._error = error
        if not self._closed_locally:
            logger.debug("yamux connection ended: %r", error)
        if not self._core.is_closed:
            # transport failure or EOF: the core has not seen it yet
            self._core.receive_data(b"")
        for stream in list(self._streams.values()):
            stream._wake_all()
        for event in (self._accept_event, self._open_event):
            if event is not None:
                event.set()
        while self._space_waiters:
            self._space_waiters.popleft().set()
        for waiter in self._ping_waiters.values():
            waiter.set()
        if self._timer_event is not None:
            self._timer_event.set()
        if self._push_paused is not None:
            self._push_paused.set()
        assert self._task_group is not None
        self._task_group.start_soon(self._shutdown)

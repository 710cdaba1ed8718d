"""anyio adapter: one RPC client session over an already-negotiated byte stream (wire.md §3.12).

:class:`RpcClient` drives a :class:`~plait.rpc.ClientSessionState` over any
``anyio.abc.ByteStream`` (a Yamux substream in a node; TCP or memory streams in tests). There
is no background task: one call at a time owns the session (a FIFO gate, like tari's request
queue of capacity 1), sends its request and reads the frames it needs, under the core's timer
(``deadline + grace`` per frame). Concurrent callers queue.

A call whose caller goes away (cancellation, or a stream closed early) interrupts its request
with FIN, given at most :data:`INTERRUPT_SEND_TIMEOUT` seconds (tari: 2 s); its late frames
are then skipped by the core. A :class:`ResponseStream` that is dropped without being closed
releases the session from its finaliser, and the next call interrupts the abandoned request
before sending its own. Reply timeouts raise :class:`~plait.rpc.RpcDeadlineExceeded` and keep
the session; protocol violations, the server's end of stream and transport failures close it.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Generic, TypeVar

import anyio
import anyio.lowlevel

from .._loop import running_clock
from ..muxer.stream import MuxedStream
from ._session import ClientSessionState
from .errors import (
    RpcDeadlineExceeded,
    RpcHandshakeRejected,
    RpcHandshakeTimeoutError,
    RpcProtocolViolation,
    RpcStatusError,
    SessionClosedError,
)
from .events import (
    ClientEvent,
    HandshakeTimedOut,
    PongReceived,
    ResponseReceived,
    ResponseTimedOut,
    SessionAccepted,
    SessionEnded,
    SessionRejected,
)
from .status import StatusCode

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Self

    from anyio.abc import ByteStream

    from .config import RpcClientConfig

__all__ = ("INTERRUPT_SEND_TIMEOUT", "RECEIVE_SIZE", "ResponseStream", "RpcClient")

logger = logging.getLogger(__name__)

INTERRUPT_SEND_TIMEOUT = 2.0  # tari client/mod.rs: the FIN interrupt gets at most 2 s to send
RECEIVE_SIZE = 65536  # bytes asked of the stream per read

T = TypeVar("T")


class _CallGate:
    """FIFO ownership of the session by one call. :meth:`release` is synchronous, so an
    abandoned :class:`ResponseStream` can give the session back from its finaliser."""

    __slots__ = ("_busy", "_waiters")

    def __init__(self) -> None:
        self._busy = False
        self._waiters: deque[anyio.Event] = deque()

    async def acquire(self) -> None:
        # Deliver a pending cancellation *before* taking the gate. The uncontended path does
        # not yield (the call blocks on its reply right after): a cancellation between
        # taking the gate and returning would leave it taken with no owner to release it,
        # and a loop turn here is one more hand-off on every round trip.
        await anyio.lowlevel.checkpoint_if_cancelled()
        if not self._busy and not self._waiters:
            self._busy = True
            return
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():  # ownership was handed to us just as we were cancelled
                self.release()
            else:
                self._waiters.remove(event)
            raise

    def release(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()  # hand over; the gate stays busy
        else:
            self._busy = False


class RpcClient:
    """One client RPC session. Create it with :meth:`connect`.

    Use it as an async context manager, or call :meth:`aclose`, to close the substream.
    """

    def __init__(
        self, stream: ByteStream, core: ClientSessionState, *, protocol: bytes = b""
    ) -> None:
        self._stream = stream
        self._core = core
        self._protocol = protocol
        self._gate = _CallGate()
        self._events: deque[ClientEvent] = deque()
        self._closed = False
        send_nowait = getattr(stream, "send_nowait", None)
        self._send_nowait: Callable[[bytes], bool] | None = (
            send_nowait if callable(send_nowait) else None
        )
        self._clock: Callable[[], float] = anyio.current_time
        self._deadline_stream = stream if isinstance(stream, MuxedStream) else None

    @classmethod
    async def connect(
        cls,
        stream: ByteStream,
        *,
        config: RpcClientConfig | None = None,
        protocol: bytes = b"",
    ) -> RpcClient:
        """Perform the session handshake on ``stream`` and return the client.

        :param stream: a byte stream already negotiated for the RPC protocol.
        :param config: deadlines and limits.
        :param protocol: the negotiated protocol id (informational, for logs).
        :raises RpcHandshakeRejected: the server refused the session (the stream is closed).
        :raises RpcHandshakeTimeoutError: no reply within ``handshake_timeout``.
        :raises SessionClosedError: the server closed the stream first.
        :raises RpcProtocolViolation: the reply was malformed.
        """
        client = cls(stream, ClientSessionState(config), protocol=protocol)
        client._clock = running_clock()
        try:
            await client._handshake()
        except BaseException:
            await client._shutdown()
            raise
        return client

    def __repr__(self) -> str:
        return f"<RpcClient {self._protocol!r} {self._core!r}>"

    # -- properties -----------------------------------------------------------------------

    @property
    def config(self) -> RpcClientConfig:
        """The session's deadlines and limits."""
        return self._core.config

    @property
    def protocol(self) -> bytes:
        """The negotiated protocol id the session runs on (informational)."""
        return self._protocol

    @property
    def stream(self) -> ByteStream:
        """The underlying byte stream."""
        return self._stream

    @property
    def is_connected(self) -> bool:
        """``False`` once the session was closed, ended by the server, or failed."""
        return not self._closed and not self._core.is_closed

    @property
    def last_request_latency(self) -> float | None:
        """Seconds: the handshake round trip, then the wait for the latest response frame."""
        return self._core.last_request_latency

    # -- calls ----------------------------------------------------------------------------

    async def request(self, method: int, payload: bytes) -> bytes:
        """Make a unary call and return the reply payload.

        :raises RpcStatusError: the server answered with an error status.
        :raises RpcDeadlineExceeded: no reply within ``deadline + grace`` (session kept).
        :raises RequestTooLargeError: the request exceeds the frame limit (session kept).
        :raises SessionClosedError: the session is or became closed.
        """
        await self._gate.acquire()
        try:
            await self._begin(method, payload, streaming=False)
            return (await self._wait_response()).payload
        except BaseException:
            await self._interrupt_in_flight()
            raise
        finally:
            self._gate.release()

    def stream_request(
        self, method: int, payload: bytes, decode: Callable[[bytes], T]
    ) -> ResponseStream[T]:
        """Make a server-streaming call; iterate the result (or ``async with`` it).

        The request is sent on entering the ``async with`` block or on the first iteration.

        :param decode: turns each item's payload into the caller's type.
        """
        return ResponseStream(self, method, payload, decode)

    async def ping(self) -> float:
        """Ping the server (``flags ACK``) and return the round trip in seconds.

        :raises RpcDeadlineExceeded: no pong within ``deadline + grace`` (session kept).
        """
        await self._gate.acquire()
        try:
            self._check_open()
            self._prepare()
            self._core.ping(now=self._clock())
            await self._flush()
            while True:
                event = await self._next_event()
                if isinstance(event, PongReceived):
                    return event.latency
                self._raise_for(event)
        except BaseException:
            await self._interrupt_in_flight()
            raise
        finally:
            self._gate.release()

    async def aclose(self) -> None:
        """Close the session and its stream (idempotent); a stream in progress is abandoned
        without FIN, as tari does on ``close()``."""
        await self._shutdown()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- internals used by ResponseStream -------------------------------------------------

    async def _begin(self, method: int, payload: bytes, *, streaming: bool) -> None:
        self._check_open()
        self._prepare()
        self._core.send_request(method, payload, streaming=streaming, now=self._clock())
        await self._flush()

    def _prepare(self) -> None:
        """Make the core idle for a new call: interrupt a request abandoned by a dropped
        stream and forget events that belonged to earlier calls."""
        if self._core.request_in_flight is not None:
            self._core.interrupt()
        self._events.clear()

    async def _wait_response(self) -> ResponseReceived:
        while True:
            event = await self._next_event()
            if isinstance(event, ResponseReceived):
                if event.status is not StatusCode.OK:
                    raise RpcStatusError(event.status, event.payload.decode("utf-8", "replace"))
                return event
            self._raise_for(event)

    def _raise_for(self, event: ClientEvent) -> None:
        if isinstance(event, ResponseTimedOut):
            raise RpcDeadlineExceeded()
        if isinstance(event, SessionEnded):
            raise SessionClosedError("the server closed the RPC session")

    async def _interrupt_in_flight(self) -> None:
        """The caller went away mid-call: tell the server with FIN (bounded, shielded)."""
        if self._closed or self._core.is_closed or not self._core.interrupt():
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(INTERRUPT_SEND_TIMEOUT):
            try:
                await self._flush()
            except SessionClosedError:
                pass

    def _abandon(self) -> None:
        """A ResponseStream was dropped while owning the session."""
        self._gate.release()

    # -- I/O ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if not self.is_connected:
            raise SessionClosedError("the RPC session is closed")

    async def _handshake(self) -> None:
        self._core.initiate(self._clock())
        await self._flush()
        while True:
            event = await self._next_event()
            if isinstance(event, SessionAccepted):
                logger.debug("RPC session %r accepted, version %d", self._protocol, event.version)
                return
            if isinstance(event, SessionRejected):
                raise RpcHandshakeRejected(event.reason)
            if isinstance(event, HandshakeTimedOut):
                raise RpcHandshakeTimeoutError("no RPC handshake reply in time")
            if isinstance(event, SessionEnded):
                raise SessionClosedError("the server closed the stream during the handshake")

    async def _next_event(self) -> ClientEvent:
        while not self._events:
            await self._fill()
        return self._events.popleft()

    async def _fill(self) -> None:
        timer = self._core.get_timer()
        data: bytes | None = None
        deadline_stream = self._deadline_stream
        if timer is None:
            data = await self._receive()
        elif deadline_stream is not None:
            # a Yamux stream times its receive without a cancel scope
            deadline_stream.receive_deadline = timer
            try:
                data = await self._receive()
            except TimeoutError:
                data = None
            finally:
                deadline_stream.receive_deadline = None
        else:
            with anyio.CancelScope(deadline=timer):  # a deadline passed: cancelled at once
                data = await self._receive()
        now = self._clock()
        try:
            if data is None:
                events = self._core.handle_timer(now)
            else:
                events = self._core.receive_data(data, now=now)
        except RpcProtocolViolation:
            logger.warning("RPC session %r: server broke the protocol", self._protocol)
            await self._shutdown()
            raise
        self._events.extend(events)
        if self._core.is_closed:
            await self._shutdown()
        elif self._core.has_data_to_send:
            await self._flush()  # e.g. the interrupt a unary call queues

    async def _receive(self) -> bytes:
        self._check_open()
        try:
            return await self._stream.receive(RECEIVE_SIZE)
        except anyio.EndOfStream:
            return b""
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            await self._shutdown()
            raise SessionClosedError("the RPC session's stream failed") from exc

    async def _flush(self) -> None:
        data = self._core.data_to_send()
        if not data:
            return
        send_nowait = self._send_nowait
        if send_nowait is not None and send_nowait(data):
            return
        try:
            await self._stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            await self._shutdown()
            raise SessionClosedError("the RPC session's stream failed") from exc

    async def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._core.close()
        with anyio.CancelScope(shield=True):
            await self._stream.aclose()


class ResponseStream(Generic[T]):
    """The items of one server-streaming call: an async iterator and async context manager.

    Leaving the ``async with`` block (or :meth:`aclose`) before the end interrupts the call
    with FIN and frees the session for the next call.
    """

    def __init__(
        self, client: RpcClient, method: int, payload: bytes, decode: Callable[[bytes], T]
    ) -> None:
        self._client = client
        self._method = method
        self._payload = payload
        self._decode = decode
        self._holding = False
        self._started = False
        self._done = False

    async def start(self) -> None:
        """Send the request now (idempotent)."""
        if self._started:
            return
        await self._client._gate.acquire()
        self._started = self._holding = True
        try:
            await self._client._begin(self._method, self._payload, streaming=True)
        except BaseException:
            self._finish()
            raise

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        if self._done:
            raise StopAsyncIteration
        await self.start()
        try:
            event = await self._client._wait_response()
        except BaseException:
            if self._holding:
                await self._client._interrupt_in_flight()
            self._finish()
            raise
        if event.final:  # the terminator's payload is ignored (wire.md §3.8)
            self._finish()
            raise StopAsyncIteration
        return self._decode(event.payload)

    async def aclose(self) -> None:
        """Stop the call: interrupt it if it is still running (idempotent)."""
        if self._holding:
            try:
                await self._client._interrupt_in_flight()
            finally:
                self._finish()
        self._done = True

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _finish(self) -> None:
        self._done = True
        if self._holding:
            self._holding = False
            self._client._gate.release()

    def __del__(self) -> None:
        # Dropped without being closed: give the session back; the next call interrupts
        # the abandoned request before sending its own.
        if self._holding:
            self._holding = False
            self._client._abandon()

"""anyio adapter: serving RPC sessions on already-negotiated byte streams (wire.md §3.3, §3.11).

:class:`RpcServer` holds the services (routed by exact protocol id), the admission limits
(:class:`~plait.rpc.SessionLimits`) and a semaphore bounding concurrent handshakes. The node
calls :meth:`RpcServer.serve_session` in a task of its own for every inbound substream
negotiated for one of :attr:`RpcServer.protocols`; it returns when the session is over.

Per session, in order: admission (global cap → route → per-peer cap; a refusal is sent
before reading anything, then the stream is closed); the handshake under
``handshake_timeout`` and the semaphore; then two workers that take turns reading
(feeding the core) and handling the request just read. The slot is held in a ``with``
block around all of it, so it is released on every path, cancellation included (tari
bug 1). Each handshake runs in the caller's own task, so a silent client delays nobody else
(tari bug 2).

The other worker reads while a handler waits: a FIN interrupt cancels the handler (its
``finally`` blocks run, an async generator is closed), the client's end of stream or a broken
stream cancels it and ends the session. Writes are serialised by a lock and shielded from
cancellation, so an interrupt that arrives while a write is blocked finishes that frame,
stops the stream and keeps the session (tari bug 3). The service call runs under its
deadline (clamped to ``max_deadline``) and then each stream item under a fresh one; on
expiry nothing is sent. Exceptions other than :class:`~plait.rpc.RpcStatusError` become
``GENERAL`` with a fixed text and are logged once. A client that ends its session (end of
stream) or whose stream breaks while a reply is on its way is normal, not a failure of the
service: the call ends quietly (logged at DEBUG) and, for a broken stream, so does the
session.
"""

from __future__ import annotations

import logging
import math
import types
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, final

import anyio
from google.protobuf.message import DecodeError

from .._loop import running_clock
from ..muxer.stream import MuxedStream
from ._limits import Refused, SessionLimits
from ._session import ServerSessionState
from .config import RpcServerConfig
from .errors import (
    RpcHandshakeTimeoutError,
    RpcProtocolViolation,
    RpcStatusError,
    SessionClosedError,
)
from .events import (
    InterruptReceived,
    RequestReceived,
    SessionAccepted,
    SessionEnded,
    SessionRejected,
)
from .service import RequestContext
from .status import RejectReason, RpcStatus

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Mapping

    from anyio.abc import ByteStream, TaskGroup

    from .service import Service

__all__ = (
    "INTERNAL_ERROR_DETAILS",
    "REJECT_LINGER_MAX_BYTES",
    "REJECT_LINGER_TIMEOUT",
    "RpcServer",
    "RpcServerSessionCounts",
)

logger = logging.getLogger(__name__)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RpcServerSessionCounts:
    """Inbound RPC sessions of one protocol id, as an :class:`RpcServer` admitted them."""

    active: int
    """Sessions holding a server slot now (handshake included)."""
    admitted_total: int
    """Sessions admitted past both session caps so far."""
    rejected_total: Mapping[RejectReason, int]
    """Sessions refused at admission so far, by reason (``NO_SERVER_SESSIONS_AVAILABLE``,
    ``NO_CLIENT_SESSIONS_AVAILABLE``, ``PROTOCOL_NOT_SUPPORTED``); only reasons seen are
    keys. A handshake rejected later (``UNSUPPORTED_VERSION``) counts as admitted."""
    violations_total: int
    """Sessions ended by a client's protocol violation so far."""


class _Counts:
    """The mutable counters behind :class:`RpcServerSessionCounts`."""

    __slots__ = ("active", "admitted", "rejected", "violations")

    def __init__(self) -> None:
        self.active = 0
        self.admitted = 0
        self.rejected: dict[RejectReason, int] = {}
        self.violations = 0


INTERNAL_ERROR_DETAILS = "Internal server error"  # sent for unexpected handler exceptions
REJECT_LINGER_TIMEOUT = 1.0  # seconds a refused client gets to close after the reply
REJECT_LINGER_MAX_BYTES = 65536  # bytes read (and dropped) from a refused client at most
_RECEIVE_SIZE = 65536


class _StreamGone(anyio.BrokenResourceError):
    """A write of the session failed: the client's stream broke or was closed. Raised by
    :meth:`_ServerSession._flush` so that it is never taken for a failure of the service."""


class RpcServer:
    """Routes RPC sessions to services and enforces the session limits.

    :param config: caps, timeouts and limits shared by every service of this server.
    """

    def __init__(self, config: RpcServerConfig | None = None) -> None:
        self._config = config or RpcServerConfig()
        self._routes: dict[bytes, Service] = {}
        self._limits = SessionLimits.from_config(self._config)
        self._handshakes = anyio.Semaphore(self._config.max_concurrent_handshakes)
        self._counts: dict[bytes, _Counts] = {}

    def __repr__(self) -> str:
        return f"<RpcServer protocols={list(self._routes)} {self._limits!r}>"

    @property
    def config(self) -> RpcServerConfig:
        """The caps, timeouts and limits every service of this server shares."""
        return self._config

    @property
    def protocols(self) -> tuple[bytes, ...]:
        """The protocol ids with a service, in registration order."""
        return tuple(self._routes)

    def add_service(self, service: Service) -> None:
        """Serve ``service`` on its protocol id.

        :raises ValueError: the protocol id is empty or already taken.
        """
        protocol = service.protocol
        if not protocol:
            raise ValueError(f"{type(service).__qualname__} has no protocol id")
        if protocol in self._routes:
            raise ValueError(f"a service is already registered for {protocol!r}")
        self._routes[protocol] = service

    @property
    def num_active_sessions(self) -> int:
        """Sessions holding a slot now (handshakes included)."""
        return self._limits.active_sessions

    def num_active_sessions_for(self, peer_key: bytes) -> int:
        """Sessions holding a slot now for one peer."""
        return self._limits.active_sessions_for(peer_key)

    def session_counts(self, protocol: bytes) -> RpcServerSessionCounts:
        """What this server has done with sessions negotiated for ``protocol`` (all zero for
        a protocol it never saw)."""
        counts = self._counts.get(protocol) or _Counts()
        return RpcServerSessionCounts(
            active=counts.active,
            admitted_total=counts.admitted,
            rejected_total=MappingProxyType(dict(counts.rejected)),
            violations_total=counts.violations,
        )

    async def serve_session(self, stream: ByteStream, peer_key: bytes, protocol: bytes) -> None:
        """Run one RPC session on ``stream`` until it ends, then close the stream.

        :param stream: an inbound substream already negotiated for ``protocol``.
        :param peer_key: the authenticated public key of the peer (the per-peer cap's key).
        :param protocol: the negotiated protocol id.
        :raises RpcProtocolViolation: the client broke the protocol (after cleanup), so the
            caller can count it against the peer.
        """
        service = self._routes.get(protocol)
        decision = self._limits.admit(peer_key, has_route=service is not None)
        counts = self._counts.get(protocol)
        if counts is None:
            counts = self._counts[protocol] = _Counts()
        core = ServerSessionState(self._config)
        if isinstance(decision, Refused):
            counts.rejected[decision.reason] = counts.rejected.get(decision.reason, 0) + 1
            logger.debug(
                "RPC session %r from %s refused: %s",
                protocol,
                peer_key.hex()[:16],
                decision.reason.name,
            )
            core.reject(decision.reason)
            await _send_and_close(stream, core.data_to_send())
            return
        assert service is not None
        session = _ServerSession(stream, core, service, peer_key, protocol)
        counts.admitted += 1
        counts.active += 1
        with decision.slot:
            try:
                if await session.handshake(self._handshakes):
                    await session.run()
            except RpcProtocolViolation as exc:
                counts.violations += 1
                logger.info("RPC session %r from %s: %s", protocol, peer_key.hex()[:16], exc)
                raise
            except RpcHandshakeTimeoutError:
                logger.debug(
                    "RPC session %r from %s: handshake timed out", protocol, peer_key.hex()[:16]
                )
            finally:
                counts.active -= 1
                with anyio.CancelScope(shield=True):
                    await stream.aclose()


async def _send_and_close(stream: ByteStream, data: bytes) -> None:
    """Send a final frame, half-close, and drain briefly before closing.

    The client sent its ``RpcSession`` right away; closing with it unread would make TCP
    answer with a reset that can destroy the reply in flight. Reading until the client's end
    of stream (bounded by :data:`REJECT_LINGER_TIMEOUT`) avoids that. A peer that already
    left is not an error.
    """
    try:
        with anyio.move_on_after(REJECT_LINGER_TIMEOUT):
            if data:
                await stream.send(data)
            await stream.send_eof()
            received = 0
            while received < REJECT_LINGER_MAX_BYTES:
                received += len(await stream.receive(_RECEIVE_SIZE))
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass
    finally:
        with anyio.CancelScope(shield=True):
            await stream.aclose()


@types.coroutine
def _inline(
    coro: Coroutine[Any, Any, None], on_wait: Callable[[], None]
) -> Generator[Any, Any, None]:
    """Await ``coro``, calling ``on_wait`` once, just before it first waits (yields to the
    event loop). A handler that answers without waiting thus keeps the reader's role and
    the other worker is never woken; one that waits hands the role over first."""
    try:
        yielded = coro.send(None)
    except StopIteration:
        return
    on_wait()
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                yielded = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration:
                return


class _ServerSession:
    """The I/O of one accepted session.

    Two workers serve it, each alternately the reader and the handler: the worker holding
    the reader's role reads until a request arrives, hands the role to the other worker and
    runs the handler itself. No task is started per request and the request reaches its
    handler without a hand-off, while the other worker keeps reading (interrupts, pings,
    end of stream) whenever the handler waits.
    """

    def __init__(
        self,
        stream: ByteStream,
        core: ServerSessionState,
        service: Service,
        peer_key: bytes,
        protocol: bytes,
    ) -> None:
        self._stream = stream
        self._core = core
        self._service = service
        self._peer_key = peer_key
        self._protocol = protocol
        self._handler_scope: anyio.CancelScope | None = None
        # the request being handled (a handler cancelled earlier may still be finishing)
        self._handling: RequestReceived | None = None
        self._interrupted: RequestReceived | None = None  # its handler got an interrupt
        # the request whose handler the worker's scope cancelled, and whether an interrupt did
        self._cancelled: tuple[RequestReceived, bool] | None = None
        self._cancelled_class = anyio.get_cancelled_exc_class()
        send_nowait = getattr(stream, "send_nowait", None)
        self._send_nowait: Callable[[bytes], bool] | None = (
            send_nowait if callable(send_nowait) else None
        )
        self._clock = running_clock()
        # a Yamux stream: the worker reading while a handler waits enforces the handler's
        # deadline through the stream's receive deadline, without a timed cancel scope
        self._deadline_stream = stream if isinstance(stream, MuxedStream) else None
        self._reader: int | None = None  # the worker holding the reader's role
        self._reader_free: anyio.Event | None = None
        self._sending = False
        self._send_free: anyio.Event | None = None
        self._violation: RpcProtocolViolation | None = None

    async def handshake(self, semaphore: anyio.Semaphore) -> bool:
        """Read the client's ``RpcSession`` and answer; ``True`` when accepted."""
        config = self._core.config
        try:
            with anyio.fail_after(config.handshake_timeout):
                async with semaphore:
                    while True:
                        events = self._core.receive_data(await self._receive())
                        await self._flush()
                        for event in events:
                            if isinstance(event, SessionAccepted):
                                return True
                            if isinstance(event, SessionRejected | SessionEnded):
                                return False
        except TimeoutError as exc:
            raise RpcHandshakeTimeoutError("no RPC handshake from the client in time") from exc
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False

    async def run(self) -> None:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(self._worker, task_group, 2)
            await self._worker(task_group, 1)
        if self._violation is not None:
            raise self._violation

    async def _worker(self, task_group: TaskGroup, ident: int) -> None:
        """Serve requests under one cancel scope until a handler is cancelled through it
        (an interrupt or its deadline); then go on under a fresh one.

        Entering and leaving a cancel scope costs as much as a tenth of a unary round
        trip, so requests do not get one each. The scope is cancelled only while one of
        this worker's handlers runs (``_handler_scope``); a handler that swallows the
        cancellation finishes, and the next wait of this worker (reading, which loses
        nothing) ends the scope instead.
        """
        while True:
            scope = anyio.CancelScope()
            with scope:
                if await self._serve(task_group, ident, scope):
                    return
            cancelled = self._cancelled
            self._cancelled = None
            if scope.cancelled_caught and cancelled is not None:
                request, interrupted = cancelled
                if interrupted:
                    logger.debug("RPC request %d interrupted", request.request_id)
                else:
                    self._abandon(request)

    async def _serve(self, task_group: TaskGroup, ident: int, scope: anyio.CancelScope) -> bool:
        """Read and handle requests; True when the session is over."""
        while True:
            if self._reader != ident:  # still ours when the last handler never waited
                while self._reader is not None:
                    event = self._reader_free = anyio.Event()
                    await event.wait()
                self._reader = ident
            try:
                request = await self._read()
            except BaseException:
                self._release_reader()
                raise
            if request is None:  # the session is over
                self._release_reader()
                task_group.cancel_scope.cancel()
                return True
            await self._handle(request, task_group, scope)
            if scope.cancel_called:
                # the handler was cancelled but finished anyway (it turned the cancellation
                # into an error reply): leave the scope before reading on
                return False

    def _release_reader(self) -> None:
        """Give the reader's role to the other worker (it reads while the handler waits)."""
        self._reader = None
        waiter = self._reader_free
        if waiter is not None:
            self._reader_free = None
            waiter.set()

    async def _read(self) -> RequestReceived | None:
        core = self._core
        receive = self._stream.receive
        while not core.is_closed:
            try:
                data = await receive(_RECEIVE_SIZE)
            except anyio.EndOfStream:
                data = b""
            except TimeoutError:
                self._deadline_passed()
                continue
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return None
            request: RequestReceived | None = None
            try:
                events = core.receive_data(data)
            except RpcProtocolViolation as exc:
                self._violation = exc
                return None
            for event in events:
                if isinstance(event, RequestReceived):
                    request = event
                elif isinstance(event, InterruptReceived):
                    if self._handler_scope is not None:
                        self._interrupted = self._handling
                        self._handler_scope.cancel()
                elif isinstance(event, SessionEnded):
                    return None
            if core.has_data_to_send:
                try:
                    await self._flush()  # pongs and BAD_REQUEST replies
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return None
            if request is not None:
                return request
        return None  # the other worker already read the end of the session

    async def _receive(self) -> bytes:
        try:
            return await self._stream.receive(_RECEIVE_SIZE)
        except anyio.EndOfStream:
            return b""

    def _deadline_passed(self) -> None:
        """The stream's receive deadline, which is the deadline of the handler running
        meanwhile, passed: stop the handler (nothing is sent for it); reading goes on."""
        assert self._deadline_stream is not None
        self._deadline_stream.receive_deadline = None
        scope = self._handler_scope
        if scope is not None:
            scope.cancel()

    async def _flush(self) -> None:
        while self._sending:  # writes are serialised; uncontended, this does not yield
            event = self._send_free = anyio.Event()
            await event.wait()
        data = self._core.data_to_send()
        if not data:
            return
        send_nowait = self._send_nowait
        if send_nowait is not None and send_nowait(data):
            return  # all queued without waiting: nothing a cancellation could cut short
        self._sending = True
        try:
            with anyio.CancelScope(shield=True):
                try:
                    await self._stream.send(data)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                    raise _StreamGone("the client's stream is gone") from exc
        finally:
            self._sending = False
            waiter = self._send_free
            if waiter is not None:
                self._send_free = None
                waiter.set()

    async def _handle(
        self, request: RequestReceived, task_group: TaskGroup, scope: anyio.CancelScope
    ) -> None:
        """Run one request under the worker's ``scope``: an interrupt cancels it, and so
        does the request's deadline (moved on per stream item, lifted while a reply is
        sent)."""
        deadline = self._clock() + request.deadline
        deadline_stream = self._deadline_stream
        if deadline_stream is not None:
            deadline_stream.receive_deadline = deadline
        else:
            scope.deadline = deadline
        self._handler_scope = scope
        self._handling = request
        try:
            await _inline(self._dispatch(request), self._release_reader)
        except SessionClosedError:
            if not self._core.is_closed:  # pragma: no cover - only a closed core raises it
                raise
            logger.debug("RPC request %d: the client closed the session", request.request_id)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            logger.debug("RPC request %d: the client's stream is gone", request.request_id)
            task_group.cancel_scope.cancel()  # end the session
        except self._cancelled_class:
            if scope.cancel_called:  # ours, not the session's end
                self._cancelled = (request, self._interrupted is request)
            raise
        finally:
            # A cancelled handler may finish (shielded clean-up) after the next request's
            # handler started in the other worker: clear only what is still this one's.
            if self._handling is request:
                self._handling = None
                self._handler_scope = None
                if deadline_stream is not None:
                    deadline_stream.receive_deadline = None
            if deadline_stream is None:
                scope.deadline = math.inf
            if self._interrupted is request:
                self._interrupted = None

    @staticmethod
    async def _raise_if_cancelled(scope: anyio.CancelScope | None) -> None:
        """A handler that swallowed its cancellation (interrupt or deadline) and answered
        anyway, or failed: nothing is sent for it; the cancellation is delivered here."""
        if scope is not None and scope.cancel_called:
            await anyio.lowlevel.checkpoint()

    def _set_deadline(self, request: RequestReceived, deadline: float | None) -> None:
        """Move the deadline of ``request``'s handler (``None``: lift it while a reply is
        sent); nothing if another request's handler runs by now."""
        if self._handling is not request:
            return
        if self._deadline_stream is not None:
            self._deadline_stream.receive_deadline = deadline
        elif self._handler_scope is not None:
            self._handler_scope.deadline = math.inf if deadline is None else deadline

    async def _dispatch(self, request: RequestReceived) -> None:
        core, request_id = self._core, request.request_id
        scope = self._handler_scope  # the worker's, cancelled for this request only
        found = self._service.method(request.method)
        if found is None:
            core.send_error(
                request_id,
                RpcStatus.unsupported_method(
                    f"Method identifier `{request.method}` is not recognised or supported"
                ),
            )
            await self._flush()
            return
        info, implementation = found
        try:
            message = info.request_type.FromString(request.payload)
        except DecodeError:
            core.send_error(request_id, RpcStatus.bad_request("Failed to decode request"))
            await self._flush()
            return
        ctx = RequestContext(
            request_id=request_id,
            method=request.method,
            peer_key=self._peer_key,
            protocol=self._protocol,
            deadline=request.deadline,
        )
        try:
            if info.streaming:
                await self._stream_items(request, implementation(message, ctx))
            else:
                reply = await implementation(message, ctx)
                await self._raise_if_cancelled(scope)
                self._set_deadline(request, None)  # answered in time: the reply goes out
                core.send_response(request_id, reply.SerializeToString())
                del reply  # not kept alive while the reply is being sent
        except _StreamGone:
            raise  # the client is gone: _handle ends the session
        except RpcStatusError as exc:
            status = exc.status
        except Exception as exc:
            if isinstance(exc, SessionClosedError) and core.is_closed:
                # The client ended the session while we answered (e.g. closed it mid-stream):
                # normal, and there is no one left to answer.
                logger.debug("RPC request %d: the client closed the session", request_id)
                return
            logger.exception(
                "RPC method %d of %r failed", request.method, type(self._service).__qualname__
            )
            status = RpcStatus.general(INTERNAL_ERROR_DETAILS)
        else:
            await self._flush()
            return
        if not core.is_closed:
            await self._raise_if_cancelled(scope)
            core.send_error(request_id, status)
            await self._flush()

    async def _stream_items(self, request: RequestReceived, items: AsyncIterator[Any]) -> None:
        """Send each item as it comes; each item is timed from the moment the previous
        one was sent."""
        core, request_id = self._core, request.request_id
        scope = self._handler_scope
        clock, deadline = self._clock, request.deadline
        try:
            while True:
                try:
                    item = await items.__anext__()
                except StopAsyncIteration:
                    await self._raise_if_cancelled(scope)
                    self._set_deadline(request, None)
                    core.end_stream(request_id)
                    return
                await self._raise_if_cancelled(scope)
                self._set_deadline(request, None)
                payload = item.SerializeToString()
                del item  # neither the item nor its encoding outlives the wait for the send
                if not core.send_item(request_id, payload):
                    return  # interrupted, or the item was too big (MALFORMED_RESPONSE)
                del payload
                await self._flush()
                self._set_deadline(request, clock() + deadline)
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()

    def _abandon(self, request: RequestReceived) -> None:
        logger.debug(
            "RPC method %d exceeded its deadline of %ss; nothing sent",
            request.method,
            request.deadline,
        )
        self._core.abandon_request(request.request_id)

"""Sans-IO RPC session state machines: :class:`ClientSessionState`, :class:`ServerSessionState`.

Theory of operation (wire.md §3.3–§3.10). One RPC *session* lives on one negotiated
substream, framed as ``u32 BE length ‖ protobuf`` (``_framing.py``). Both cores follow the
verbs of style.md §4: ``receive_data(data)`` feeds bytes (``b""`` = the peer's end of stream)
and returns events, ``data_to_send()`` drains the queued bytes, commands queue bytes and
change state. No clock is read: the client's commands and ``receive_data`` take ``now`` and
the client exposes ``get_timer()`` / ``handle_timer(now)`` for its reply deadlines; the
server hands each request's (clamped) deadline to its adapter, which runs the service call
under a cancel scope.

Rules, in the order the cores apply them:

*Handshake* (§3.3). The client sends ``RpcSession{supported_versions}`` and waits for one
``RpcSessionReply`` within ``handshake_timeout``: ``accepted_version`` (the oneof is written
even when 0: ``08 00``) opens the session; ``rejected`` closes it with the reason (unknown or
missing values read as ``UNKNOWN``). The server may be told to :meth:`ServerSessionState.reject`
before reading anything (caps and routing, reasons 2, 3 and 4); otherwise it reads the
client's message, accepts the first of its own versions the client lists, or rejects with
``UNSUPPORTED_VERSION``.

*Requests* (§3.4–§3.6). One request at a time in both directions. The client numbers requests
1, 2, …, 65535, 1, … (0 is never used; pings use 0) and sends its deadline in whole seconds.
The server checks, in this order: the deadline against its minimum (below → ``BAD_REQUEST``
with FIN, the session goes on); the flags (anything outside FIN|ACK or above 255 → violation);
FIN while idle → ignored; ACK → pong queued at once; otherwise the request is dispatched with
its deadline clamped to the server's maximum.

*Replies* (§3.7, §3.8, §3.10). Unary: one frame with FIN. Streaming: items with flags 0, then
an empty FIN terminator. Errors: non-zero status, FIN, UTF-8 details, and nothing after. A
response payload above ``max_frame_size - 24`` is replaced by ``MALFORMED_RESPONSE`` and ends
the request; the session survives. Commands name the request they answer: once a request was
interrupted or abandoned, late commands for it are dropped and return ``False``.

*Interrupts and pings* (§3.9). While the server handles or streams a request, a FIN request
with the same id interrupts it (:class:`~plait.rpc.events.InterruptReceived`); any other
request is a violation (plait's reader runs continuously, so the rule tari applies between
stream items covers the whole request); a FIN with another id is a harmless leftover and is
ignored. The client interrupts by sending FIN with the current id and the method, then
treats the rest of that reply as stale. A ping is ``request_id 0, flags ACK``; the pong
echoes ACK.

*Client checks on each response frame* (§3.4): ``request_id`` must fit in u16 and ``flags``
in FIN|ACK, else violation. Frames of an interrupted request (the client sent FIN) are
skipped without counting until that request's last frame (FIN or a non-OK status): the
server keeps the session after an interrupt, and whatever it wrote before reading the FIN is
still on its way; the ids of the last ``MAX_INTERRUPTED_REQUESTS`` interrupted requests are
remembered. Frames of the previous request when it timed out (no FIN is sent then) and late
pongs are skipped at most ``max_stale_responses`` in a row; the next one is a violation. ACK
outside a ping, any other id mismatch (an id neither in flight nor interrupted, or an
interrupted request's frame after its last one), a status of 11 or more, a pong without ACK
or with a non-OK status: violation. Skipped frames do not restart the reply timer: the
request in flight times out ``deadline + grace`` after the request was sent or after its
last frame (:class:`~plait.rpc.events.ResponseTimedOut`); the session stays usable.
Differences from tari, which skips late frames of the previous request only, at most 20 in a
row, and so fails a session after two interrupted calls in a row or one interrupted stream
with more than 20 frames in flight: interrupted requests are tracked by id as above; the
stale id is the previous request's actual id (tari's ``id + 1 == expected`` misses the
previous request at the 65535 → 1 wrap); frames of an interrupted request are also skipped
while a ping is in flight; and a late pong after an abandoned ping is skipped instead of
ending the session.

*Errors* (style.md §4). A peer violation moves the core to ``FAILED`` and raises
:class:`~plait.rpc.errors.RpcProtocolViolation`; every later call raises
:class:`~plait.rpc.errors.SessionClosedError`. Misuse raises
:class:`~plait.rpc.errors.RpcStateError` and leaves the state unchanged.

Phase changes are listed once, in ``_CLIENT_TRANSITIONS`` and ``_SERVER_TRANSITIONS``.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import TYPE_CHECKING, TypeVar

from google.protobuf.message import DecodeError, Message

from ._framing import FrameDecoder, frame_header
from .config import (
    MAX_INTERRUPTED_REQUESTS,
    RpcClientConfig,
    RpcServerConfig,
    max_response_payload_size,
)
from .errors import (
    RequestTooLargeError,
    RpcProtocolViolation,
    RpcStateError,
    SessionClosedError,
)
from .events import (
    ClientEvent,
    HandshakeTimedOut,
    InterruptReceived,
    PingReceived,
    PongReceived,
    RequestReceived,
    ResponseReceived,
    ResponseTimedOut,
    ServerEvent,
    SessionAccepted,
    SessionEnded,
    SessionRejected,
)
from .proto.rpc_pb2 import RpcRequest, RpcResponse, RpcSession, RpcSessionReply
from .status import RejectReason, RpcFlags, RpcStatus, StatusCode

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = (
    "ClientInput",
    "ClientSessionPhase",
    "ClientSessionState",
    "ServerInput",
    "ServerSessionPhase",
    "ServerSessionState",
)

_M = TypeVar("_M", bound=Message)

_MAX_REQUEST_ID = 0xFFFF  # the client's counter is a u16 (tari client/mod.rs)
_FIN = int(RpcFlags.FIN)
_ACK = int(RpcFlags.ACK)
_NOT_FLAGS = ~(_FIN | _ACK)
_STATUS_CODES = {int(code): code for code in StatusCode}
"""Status codes by wire value: what ``StatusCode.is_valid`` and ``StatusCode(value)`` give,
without an enum call per frame."""


def _flags_valid(flags: int) -> bool:
    """``RpcFlags.is_valid``, inlined for the per-frame checks."""
    return flags >= 0 and not flags & _NOT_FLAGS


def _decode(message_type: type[_M], body: bytes, what: str) -> _M:
    message = message_type()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise RpcProtocolViolation(f"undecodable {what}", seen=body[:64]) from exc
    return message


def _frame(message: Message, max_frame_size: int) -> tuple[bytes, bytes]:
    body = message.SerializeToString()
    return frame_header(len(body), max_frame_size), body


def _varint(value: int) -> tuple[int, ...]:
    """The bytes of the protobuf varint of ``value`` (not negative)."""
    if value < 0x80:
        return (value,)
    if value < 0x4000:
        return (value & 0x7F | 0x80, value >> 7)
    out = []
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return tuple(out)


def _encode_head(fields: tuple[tuple[int, int], ...], payload_size: int) -> bytes:
    """What ``SerializeToString()`` writes before the payload: the varint ``fields`` as
    ``(key, value)`` in field-number order, zero values left out (proto3), then the key and
    length of the payload (field 10, length-delimited, key ``0x52``) unless it is empty."""
    out: list[int] = []
    for key, value in fields:
        if value:
            out.append(key)
            out += _varint(value)
    if payload_size:
        out.append(0x52)
        out += _varint(payload_size)
    return bytes(out)


def _request_head(
    request_id: int, method: int, flags: int, deadline: int, payload_size: int
) -> bytes:
    """The bytes of ``RpcRequest.SerializeToString()`` before the payload (request_id 1,
    method 2, flags 3, deadline 4)."""
    return _encode_head(
        ((0x08, request_id), (0x10, method), (0x18, flags), (0x20, deadline)), payload_size
    )


def _response_frame(
    request_id: int, payload: bytes, max_frame_size: int, *, status: int = 0, flags: int = 0
) -> tuple[bytes, bytes]:
    """A framed ``RpcResponse`` (request_id 1, status 2, flags 3) as the frame's head and
    the payload itself, so that a large payload is not copied into a message and out again
    (a stream of 1 MiB items would hold several copies of each)."""
    size = len(payload)
    head = _encode_head(((0x08, request_id), (0x10, status), (0x18, flags)), size)
    return frame_header(len(head) + size, max_frame_size) + head, payload


# ---------------------------------------------------------------------------------------------
# Client


class _FastHashEnum(enum.Enum):
    """An enum hashed by identity (members compare by identity anyway): the transition
    tables are looked up on every frame, and ``Enum.__hash__`` is a Python call."""

    __hash__ = object.__hash__


class ClientSessionPhase(_FastHashEnum):
    """Where a client session is (style.md §4)."""

    INITIAL = enum.auto()
    """Nothing sent yet; call :meth:`ClientSessionState.initiate`."""
    HANDSHAKING = enum.auto()
    """``RpcSession`` sent, waiting for the ``RpcSessionReply``."""
    IDLE = enum.auto()
    """Ready for a request or ping."""
    AWAITING_RESPONSE = enum.auto()
    """A unary request is in flight."""
    STREAMING = enum.auto()
    """A streaming request is in flight (items may have arrived)."""
    AWAITING_PONG = enum.auto()
    """A ping is in flight."""
    CLOSED = enum.auto()
    """Rejected, timed out in the handshake, ended by the server, or closed locally."""
    FAILED = enum.auto()
    """The server broke the protocol."""


class ClientInput(_FastHashEnum):
    """What can happen to a client session; ``SEND_`` = local command, ``RECV_`` = from the
    server, ``TIMER_`` = a deadline passed."""

    SEND_HANDSHAKE = enum.auto()
    RECV_ACCEPT = enum.auto()
    RECV_REJECT = enum.auto()
    SEND_REQUEST = enum.auto()
    SEND_STREAMING_REQUEST = enum.auto()
    SEND_PING = enum.auto()
    SEND_INTERRUPT = enum.auto()
    RECV_ITEM = enum.auto()
    RECV_FINAL = enum.auto()
    RECV_PONG = enum.auto()
    TIMER_EXPIRED = enum.auto()
    RECV_EOF = enum.auto()
    CLOSE = enum.auto()


_C = ClientSessionPhase
_CI = ClientInput
_OPEN_CLIENT_PHASES = (
    _C.HANDSHAKING,
    _C.IDLE,
    _C.AWAITING_RESPONSE,
    _C.STREAMING,
    _C.AWAITING_PONG,
)
_CLIENT_TRANSITIONS: dict[tuple[ClientSessionPhase, ClientInput], ClientSessionPhase] = {
    (_C.INITIAL, _CI.SEND_HANDSHAKE): _C.HANDSHAKING,
    (_C.HANDSHAKING, _CI.RECV_ACCEPT): _C.IDLE,
    (_C.HANDSHAKING, _CI.RECV_REJECT): _C.CLOSED,
    (_C.HANDSHAKING, _CI.TIMER_EXPIRED): _C.CLOSED,
    (_C.IDLE, _CI.SEND_REQUEST): _C.AWAITING_RESPONSE,
    (_C.IDLE, _CI.SEND_STREAMING_REQUEST): _C.STREAMING,
    (_C.IDLE, _CI.SEND_PING): _C.AWAITING_PONG,
    # A unary call takes its first frame as the answer; a non-final one is interrupted.
    (_C.AWAITING_RESPONSE, _CI.RECV_ITEM): _C.IDLE,
    (_C.AWAITING_RESPONSE, _CI.RECV_FINAL): _C.IDLE,
    (_C.AWAITING_RESPONSE, _CI.SEND_INTERRUPT): _C.IDLE,
    (_C.AWAITING_RESPONSE, _CI.TIMER_EXPIRED): _C.IDLE,
    (_C.STREAMING, _CI.RECV_ITEM): _C.STREAMING,
    (_C.STREAMING, _CI.RECV_FINAL): _C.IDLE,
    (_C.STREAMING, _CI.SEND_INTERRUPT): _C.IDLE,
    (_C.STREAMING, _CI.TIMER_EXPIRED): _C.IDLE,
    (_C.AWAITING_PONG, _CI.RECV_PONG): _C.IDLE,
    (_C.AWAITING_PONG, _CI.SEND_INTERRUPT): _C.IDLE,
    (_C.AWAITING_PONG, _CI.TIMER_EXPIRED): _C.IDLE,
    **{(phase, _CI.RECV_EOF): _C.CLOSED for phase in _OPEN_CLIENT_PHASES},
    **{(phase, _CI.CLOSE): _C.CLOSED for phase in (_C.INITIAL, *_OPEN_CLIENT_PHASES, _C.CLOSED)},
}


class ClientSessionState:
    """The client side of one RPC session, without I/O.

    :param config: deadlines, frame limit, stale-frame tolerance and offered versions.
    """

    def __init__(self, config: RpcClientConfig | None = None) -> None:
        self._config = config or RpcClientConfig()
        self._phase = ClientSessionPhase.INITIAL
        self._decoder = FrameDecoder(self._config.max_frame_size)
        self._outbound: list[bytes] = []
        self._timer: float | None = None
        self._last_id = 0
        """Id of the most recent request (0 before the first)."""
        self._previous_id = 0
        """Id of the request before it: its late frames are stale while ``_last_id`` is in
        flight."""
        self._method = 0
        self._interrupted: deque[int] = deque(maxlen=MAX_INTERRUPTED_REQUESTS)
        """Ids of requests interrupted with FIN, oldest first: the server may still send
        frames it wrote before reading the FIN. They are skipped, uncounted, until the
        request's last frame (FIN or an error status); the oldest id is forgotten first."""
        self._stale_count = 0
        self._late_pongs = 0
        """Pongs still owed by abandoned pings; each may arrive late and is skipped."""
        self._wait_started = 0.0
        self._accepted_version: int | None = None
        self._last_latency: float | None = None

    def __repr__(self) -> str:
        return (
            f"<ClientSessionState {self._phase.name} last_id={self._last_id} timer={self._timer}>"
        )

    # -- read-only state ------------------------------------------------------------------

    @property
    def config(self) -> RpcClientConfig:
        """The limits this core enforces."""
        return self._config

    @property
    def phase(self) -> ClientSessionPhase:
        """Where the session is in its life cycle."""
        return self._phase

    @property
    def is_idle(self) -> bool:
        """Whether a request or ping may be sent now."""
        return self._phase is ClientSessionPhase.IDLE

    @property
    def is_closed(self) -> bool:
        """Whether the session is over (closed or failed)."""
        return self._phase in (ClientSessionPhase.CLOSED, ClientSessionPhase.FAILED)

    @property
    def request_in_flight(self) -> int | None:
        """The id of the request awaiting frames (0 for a ping), or ``None``."""
        if self._phase in (ClientSessionPhase.AWAITING_RESPONSE, ClientSessionPhase.STREAMING):
            return self._last_id
        if self._phase is ClientSessionPhase.AWAITING_PONG:
            return 0
        return None

    @property
    def accepted_version(self) -> int | None:
        """The RPC version the server accepted, once the handshake succeeded."""
        return self._accepted_version

    @property
    def last_request_latency(self) -> float | None:
        """Seconds of the last wait that a frame ended: the handshake round trip at first,
        then, per response frame, the time since the request was sent (first frame) or
        since the previous frame (stream items); pongs too."""
        return self._last_latency

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must be called next (adapter's clock), or ``None``."""
        return self._timer

    @property
    def has_data_to_send(self) -> bool:
        """Whether :meth:`data_to_send` has bytes to return."""
        return bool(self._outbound)

    def data_to_send(self) -> bytes:
        """Drain and return every queued byte."""
        data = b"".join(self._outbound)
        self._outbound.clear()
        return data

    # -- commands -------------------------------------------------------------------------

    def initiate(self, now: float) -> None:
        """Queue the ``RpcSession`` handshake frame and start the handshake timer."""
        self._advance(ClientInput.SEND_HANDSHAKE)
        self._queue(RpcSession(supported_versions=self._config.supported_versions))
        self._timer = now + self._config.handshake_timeout
        self._wait_started = now

    def send_request(
        self, method: int, payload: Buffer, *, streaming: bool = False, now: float
    ) -> int:
        """Queue a request and return its id.

        :param method: the service method number (u32; 0 is allowed on the wire).
        :param payload: the encoded request message.
        :param streaming: whether the reply is a stream (items until an empty FIN); a unary
            call takes the first frame as the answer and interrupts the rest.
        :param now: the adapter's clock, to time the reply.
        :raises RequestTooLargeError: the encoded request exceeds the frame limit; nothing
            was queued and the session is unchanged.
        :raises RpcStateError: not idle.
        """
        self._check_open()
        if not 0 <= method <= 0xFFFFFFFF:
            raise ValueError("method must fit in a u32")
        next_input = ClientInput.SEND_STREAMING_REQUEST if streaming else ClientInput.SEND_REQUEST
        self._check_transition(next_input)
        request_id = self._last_id % _MAX_REQUEST_ID + 1
        data = payload if isinstance(payload, bytes) else bytes(payload)
        head = _request_head(request_id, method, 0, self._config.wire_deadline, len(data))
        size = len(head) + len(data)
        max_frame_size = self._config.max_frame_size
        if size > max_frame_size:
            raise RequestTooLargeError(
                f"encoded request of {size} bytes exceeds the maximum of {max_frame_size}"
            )
        self._advance(next_input)
        # the payload is queued as it is: not copied into a message and out again
        self._outbound.append(frame_header(size, max_frame_size) + head)
        if data:
            self._outbound.append(data)
        if request_id in self._interrupted:  # the id came round again (wrap at 65535)
            self._interrupted.remove(request_id)
        self._previous_id, self._last_id, self._method = self._last_id, request_id, method
        self._start_wait(now)
        return request_id

    def ping(self, *, now: float) -> None:
        """Queue a ping (``request_id 0``, ``method 0``, ``flags ACK``).

        :raises RpcStateError: not idle.
        """
        self._check_open()
        self._advance(ClientInput.SEND_PING)
        self._queue(RpcRequest(flags=_ACK, deadline=self._config.wire_deadline))
        self._start_wait(now)

    def interrupt(self) -> bool:
        """Give up on the request in flight, e.g. because its caller went away.

        For a request, queues ``RpcRequest{request_id, method, flags FIN, deadline}`` so the
        server stops streaming (wire.md §3.9); for a ping nothing is sent. Later frames of
        that request, up to its last one, are skipped (for a ping: its late pong).

        :return: whether something was in flight.
        """
        if self._phase is ClientSessionPhase.AWAITING_PONG:
            self._advance(ClientInput.SEND_INTERRUPT)
            self._late_pongs += 1
            self._timer = None
            return True
        if self._phase not in (ClientSessionPhase.AWAITING_RESPONSE, ClientSessionPhase.STREAMING):
            return False
        self._advance(ClientInput.SEND_INTERRUPT)
        self._queue_interrupt()
        self._timer = None
        return True

    def close(self) -> None:
        """Mark the session closed locally (idempotent); the adapter closes the substream."""
        if self._phase is not ClientSessionPhase.FAILED:
            self._advance(ClientInput.CLOSE)
        self._timer = None

    # -- input ----------------------------------------------------------------------------

    def receive_data(self, data: Buffer, *, now: float) -> list[ClientEvent]:
        """Feed bytes from the server; ``b""`` means it closed its side.

        :raises RpcProtocolViolation: the server broke the protocol (the session is failed).
        :raises SessionClosedError: the session had already failed.
        """
        if self._phase is ClientSessionPhase.FAILED:
            raise SessionClosedError("the RPC session failed")
        if self._phase in (ClientSessionPhase.CLOSED, ClientSessionPhase.INITIAL):
            return []
        events: list[ClientEvent] = []
        try:
            if not memoryview(data).nbytes:
                if not self._decoder.at_boundary:
                    raise RpcProtocolViolation("the server closed the stream inside a frame")
                self._advance(ClientInput.RECV_EOF)
                self._timer = None
                events.append(SessionEnded())
                return events
            for body in self._decoder.feed(data):
                if self.is_closed:  # rejected: ignore whatever follows
                    break
                event = self._on_frame(body, now)
                if event is not None:
                    events.append(event)
        except RpcProtocolViolation:
            self._phase = ClientSessionPhase.FAILED
            self._timer = None
            raise
        return events

    def handle_timer(self, now: float) -> list[ClientEvent]:
        """Process an expired deadline: the handshake or the reply in flight."""
        if self._timer is None or now < self._timer:
            return []
        self._timer = None
        if self._phase is ClientSessionPhase.HANDSHAKING:
            self._advance(ClientInput.TIMER_EXPIRED)
            return [HandshakeTimedOut()]
        request_id = self.request_in_flight
        if request_id is None:  # pragma: no cover - the timer only runs while waiting
            return []
        if self._phase is ClientSessionPhase.AWAITING_PONG:
            self._late_pongs += 1
        self._advance(ClientInput.TIMER_EXPIRED)
        return [ResponseTimedOut(request_id=request_id)]

    # -- internals ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.is_closed:
            raise SessionClosedError("the RPC session is closed")

    def _check_transition(self, event: ClientInput) -> None:
        if (self._phase, event) not in _CLIENT_TRANSITIONS:
            raise RpcStateError(f"cannot {event.name} while {self._phase.name}")

    def _advance(self, event: ClientInput) -> None:
        self._check_transition(event)
        self._phase = _CLIENT_TRANSITIONS[(self._phase, event)]

    def _queue(self, message: Message) -> None:
        self._outbound.extend(_frame(message, self._config.max_frame_size))

    def _queue_interrupt(self) -> None:
        self._queue(
            RpcRequest(
                request_id=self._last_id,
                method=self._method,
                flags=_FIN,
                deadline=self._config.wire_deadline,
            )
        )
        self._interrupted.append(self._last_id)

    def _start_wait(self, now: float) -> None:
        self._wait_started = now
        timeout = self._config.response_timeout
        self._timer = None if timeout is None else now + timeout

    def _frame_arrived(self, now: float) -> None:
        self._last_latency = now - self._wait_started
        self._stale_count = 0

    def _on_frame(self, body: bytes, now: float) -> ClientEvent | None:
        if self._phase is ClientSessionPhase.HANDSHAKING:
            return self._on_session_reply(body, now)
        response = _decode(RpcResponse, body, "RpcResponse")
        request_id, flags, status = response.request_id, response.flags, response.status
        if request_id > _MAX_REQUEST_ID:
            raise RpcProtocolViolation(
                f"response request_id {request_id} does not fit in u16", seen=request_id
            )
        if not _flags_valid(flags):
            raise RpcProtocolViolation(f"invalid response flags {flags:#x}", seen=flags)
        if self._phase is ClientSessionPhase.AWAITING_PONG:
            return self._on_pong(request_id, flags, status, now)
        if flags & _ACK:
            if self._late_pongs and self._skip_stale(request_id):
                self._late_pongs -= 1
                return None
            raise RpcProtocolViolation("unexpected ACK response", seen=flags)
        in_flight = self.request_in_flight
        if request_id != in_flight:
            if request_id in self._interrupted:
                self._skip_interrupted(request_id, flags, status)
                return None
            stale_id = self._previous_id if in_flight is not None else self._last_id
            if request_id == stale_id and request_id != 0 and self._skip_stale(request_id):
                return None
            raise RpcProtocolViolation(
                f"response id {request_id} does not match request {in_flight}", seen=request_id
            )
        code = _STATUS_CODES.get(status)
        if code is None:
            raise RpcProtocolViolation(f"invalid status code {status}", seen=status)
        self._frame_arrived(now)
        payload = response.payload
        if code is not StatusCode.OK or flags & _FIN:
            self._advance(ClientInput.RECV_FINAL)
            self._timer = None
            return ResponseReceived(request_id=request_id, status=code, payload=payload, final=True)
        if self._phase is ClientSessionPhase.AWAITING_RESPONSE:
            # A unary call got a stream item: take it as the answer, interrupt the rest.
            self._queue_interrupt()
            self._advance(ClientInput.RECV_ITEM)
            self._timer = None
            return ResponseReceived(request_id=request_id, status=code, payload=payload, final=True)
        self._advance(ClientInput.RECV_ITEM)
        self._start_wait(now)
        return ResponseReceived(request_id=request_id, status=code, payload=payload, final=False)

    def _on_pong(self, request_id: int, flags: int, status: int, now: float) -> PongReceived | None:
        # Any next frame is the pong (tari reads it without an id check), except leftovers of
        # an interrupted or timed-out request, which are skipped like any stale frame.
        if not flags & _ACK and request_id in self._interrupted:
            self._skip_interrupted(request_id, flags, status)
            return None
        if not flags & _ACK and request_id == self._last_id != 0 and self._skip_stale(request_id):
            return None
        if status != StatusCode.OK:
            raise RpcProtocolViolation(f"ping answered with status {status}", seen=status)
        if not flags & _ACK:
            raise RpcProtocolViolation("ping answered without ACK", seen=flags)
        self._frame_arrived(now)
        self._advance(ClientInput.RECV_PONG)
        self._timer = None
        assert self._last_latency is not None
        return PongReceived(latency=self._last_latency)

    def _skip_interrupted(self, request_id: int, flags: int, status: int) -> None:
        if flags & _FIN or status != StatusCode.OK:  # its last frame: nothing more will come
            self._interrupted.remove(request_id)

    def _skip_stale(self, request_id: int) -> bool:
        self._stale_count += 1
        if self._stale_count > self._config.max_stale_responses:
            raise RpcProtocolViolation(
                f"more than {self._config.max_stale_responses} stale responses in a row",
                seen=request_id,
            )
        return True

    def _on_session_reply(self, body: bytes, now: float) -> ClientEvent:
        reply = _decode(RpcSessionReply, body, "RpcSessionReply")
        self._timer = None
        self._last_latency = now - self._wait_started
        if reply.WhichOneof("session_result") == "accepted_version":
            self._advance(ClientInput.RECV_ACCEPT)
            self._accepted_version = reply.accepted_version
            return SessionAccepted(version=reply.accepted_version)
        self._advance(ClientInput.RECV_REJECT)
        if reply.WhichOneof("session_result") is None:
            return SessionRejected(reason=RejectReason.UNKNOWN)
        return SessionRejected(reason=RejectReason.from_wire(reply.reject_reason))


# ---------------------------------------------------------------------------------------------
# Server


class ServerSessionPhase(_FastHashEnum):
    """Where a server session is (style.md §4)."""

    AWAITING_HANDSHAKE = enum.auto()
    """Waiting for the client's ``RpcSession`` (or for the adapter to reject)."""
    AWAITING_REQUEST = enum.auto()
    """Idle between requests."""
    HANDLING = enum.auto()
    """A request was dispatched; no reply frame sent yet."""
    STREAMING = enum.auto()
    """At least one stream item was sent; the terminator or an error ends it."""
    CLOSED = enum.auto()
    """Rejected, ended by the client, or closed locally."""
    FAILED = enum.auto()
    """The client broke the protocol."""


class ServerInput(_FastHashEnum):
    """What can happen to a server session (``SEND_`` local, ``RECV_`` from the client)."""

    SEND_REJECT = enum.auto()
    RECV_SUPPORTED_HANDSHAKE = enum.auto()
    RECV_UNSUPPORTED_HANDSHAKE = enum.auto()
    RECV_REQUEST = enum.auto()
    RECV_INTERRUPT = enum.auto()
    SEND_ITEM = enum.auto()
    SEND_FINAL = enum.auto()
    ABANDON = enum.auto()
    RECV_EOF = enum.auto()
    CLOSE = enum.auto()


_S = ServerSessionPhase
_SI = ServerInput
_OPEN_SERVER_PHASES = (_S.AWAITING_HANDSHAKE, _S.AWAITING_REQUEST, _S.HANDLING, _S.STREAMING)
_SERVER_TRANSITIONS: dict[tuple[ServerSessionPhase, ServerInput], ServerSessionPhase] = {
    (_S.AWAITING_HANDSHAKE, _SI.SEND_REJECT): _S.CLOSED,
    (_S.AWAITING_HANDSHAKE, _SI.RECV_SUPPORTED_HANDSHAKE): _S.AWAITING_REQUEST,
    (_S.AWAITING_HANDSHAKE, _SI.RECV_UNSUPPORTED_HANDSHAKE): _S.CLOSED,
    (_S.AWAITING_REQUEST, _SI.RECV_REQUEST): _S.HANDLING,
    (_S.HANDLING, _SI.SEND_ITEM): _S.STREAMING,
    (_S.STREAMING, _SI.SEND_ITEM): _S.STREAMING,
    (_S.HANDLING, _SI.SEND_FINAL): _S.AWAITING_REQUEST,
    (_S.STREAMING, _SI.SEND_FINAL): _S.AWAITING_REQUEST,
    (_S.HANDLING, _SI.RECV_INTERRUPT): _S.AWAITING_REQUEST,
    (_S.STREAMING, _SI.RECV_INTERRUPT): _S.AWAITING_REQUEST,
    (_S.HANDLING, _SI.ABANDON): _S.AWAITING_REQUEST,
    (_S.STREAMING, _SI.ABANDON): _S.AWAITING_REQUEST,
    **{(phase, _SI.RECV_EOF): _S.CLOSED for phase in _OPEN_SERVER_PHASES},
    **{(phase, _SI.CLOSE): _S.CLOSED for phase in (*_OPEN_SERVER_PHASES, _S.CLOSED)},
}


class ServerSessionState:
    """The server side of one RPC session, without I/O.

    :param config: the minimum and maximum deadline, frame limit and accepted versions.
    """

    def __init__(self, config: RpcServerConfig | None = None) -> None:
        self._config = config or RpcServerConfig()
        self._phase = ServerSessionPhase.AWAITING_HANDSHAKE
        self._decoder = FrameDecoder(self._config.max_frame_size)
        self._outbound: list[bytes] = []
        self._active_id: int | None = None
        self._max_payload = max_response_payload_size(self._config.max_frame_size)

    def __repr__(self) -> str:
        return f"<ServerSessionState {self._phase.name} active={self._active_id}>"

    # -- read-only state ------------------------------------------------------------------

    @property
    def config(self) -> RpcServerConfig:
        """The limits this core enforces."""
        return self._config

    @property
    def phase(self) -> ServerSessionPhase:
        """Where the session is in its life cycle."""
        return self._phase

    @property
    def is_closed(self) -> bool:
        """Whether the session has ended (no more input is processed)."""
        return self._phase in (ServerSessionPhase.CLOSED, ServerSessionPhase.FAILED)

    @property
    def active_request(self) -> int | None:
        """The id of the request being handled or streamed, or ``None``."""
        return self._active_id

    @property
    def max_response_payload_size(self) -> int:
        """The largest payload a reply or item may carry (``max_frame_size - 24``)."""
        return self._max_payload

    @property
    def has_data_to_send(self) -> bool:
        """Whether bytes are queued for :meth:`data_to_send`."""
        return bool(self._outbound)

    def data_to_send(self) -> bytes:
        """Drain and return every queued byte."""
        data = b"".join(self._outbound)  # one copy of a large payload, dropped just after
        self._outbound.clear()
        return data

    # -- commands -------------------------------------------------------------------------

    def reject(self, reason: RejectReason) -> None:
        """Refuse the session before reading the client's handshake (caps, routing) and
        close it; the adapter flushes, then closes the substream.

        :raises RpcStateError: the handshake is already over.
        """
        self._check_open()
        self._advance(ServerInput.SEND_REJECT)
        self._queue(RpcSessionReply(rejected=True, reject_reason=int(reason)))  # type: ignore[arg-type]

    def send_response(self, request_id: int, payload: Buffer) -> bool:
        """Answer a unary request: one frame with FIN (``MALFORMED_RESPONSE`` if too big).

        :return: ``False`` when the request is no longer active (interrupted or abandoned)
            and nothing was queued.
        :raises RpcStateError: the request already started streaming.
        """
        if not self._is_active(request_id):
            return False
        if self._phase is ServerSessionPhase.STREAMING:
            raise RpcStateError("a streaming reply ends with end_stream() or send_error()")
        if not self._check_size(request_id, payload):
            return True
        self._queue_response(request_id, payload, flags=_FIN)
        self._finish()
        return True

    def send_item(self, request_id: int, payload: Buffer) -> bool:
        """Send one stream item (flags 0).

        :return: whether the stream goes on; ``False`` when the request is no longer
            active, or when this item was too big and was replaced by ``MALFORMED_RESPONSE``
            (which ends the request).
        """
        if not self._is_active(request_id):
            return False
        if not self._check_size(request_id, payload):
            return False
        self._advance(ServerInput.SEND_ITEM)
        self._queue_response(request_id, payload)
        return True

    def end_stream(self, request_id: int) -> bool:
        """Send the empty FIN terminator of a stream (also the whole reply to an empty one).

        :return: ``False`` when the request is no longer active.
        """
        if not self._is_active(request_id):
            return False
        self._queue_response(request_id, b"", flags=_FIN)
        self._finish()
        return True

    def send_error(self, request_id: int, status: RpcStatus) -> bool:
        """End the request with a non-OK status, FIN and the UTF-8 details.

        :return: ``False`` when the request is no longer active.
        :raises ValueError: ``status`` is OK.
        """
        if status.code is StatusCode.OK:
            raise ValueError("send_error needs a non-OK status")
        if not self._is_active(request_id):
            return False
        self._queue_error(request_id, status)
        self._finish()
        return True

    def abandon_request(self, request_id: int) -> bool:
        """Drop the request without sending anything (its deadline passed, wire.md §3.6).

        :return: ``False`` when the request was no longer active.
        """
        if not self._is_active(request_id):
            return False
        self._advance(ServerInput.ABANDON)
        self._active_id = None
        return True

    def close(self) -> None:
        """Mark the session closed locally (idempotent)."""
        if self._phase is not ServerSessionPhase.FAILED:
            self._advance(ServerInput.CLOSE)
        self._active_id = None

    # -- input ----------------------------------------------------------------------------

    def receive_data(self, data: Buffer) -> list[ServerEvent]:
        """Feed bytes from the client; ``b""`` means it closed its side.

        :raises RpcProtocolViolation: the client broke the protocol (the session is failed).
        :raises SessionClosedError: the session had already failed.
        """
        if self._phase is ServerSessionPhase.FAILED:
            raise SessionClosedError("the RPC session failed")
        if self._phase is ServerSessionPhase.CLOSED:
            return []
        events: list[ServerEvent] = []
        try:
            if not memoryview(data).nbytes:
                if not self._decoder.at_boundary:
                    raise RpcProtocolViolation("the client closed the stream inside a frame")
                self._advance(ServerInput.RECV_EOF)
                self._active_id = None
                events.append(SessionEnded())
                return events
            for body in self._decoder.feed(data):
                if self.is_closed:  # rejected: ignore whatever follows
                    break
                event = self._on_frame(body)
                if event is not None:
                    events.append(event)
        except RpcProtocolViolation:
            self._phase = ServerSessionPhase.FAILED
            self._active_id = None
            raise
        return events

    # -- internals ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.is_closed:
            raise SessionClosedError("the RPC session is closed")

    def _advance(self, event: ServerInput) -> None:
        key = (self._phase, event)
        if key not in _SERVER_TRANSITIONS:
            raise RpcStateError(f"cannot {event.name} while {self._phase.name}")
        self._phase = _SERVER_TRANSITIONS[key]

    def _is_active(self, request_id: int) -> bool:
        self._check_open()
        return self._active_id is not None and request_id == self._active_id

    def _finish(self) -> None:
        self._advance(ServerInput.SEND_FINAL)
        self._active_id = None

    def _queue(self, message: Message) -> None:
        self._outbound.extend(_frame(message, self._config.max_frame_size))

    def _queue_response(
        self, request_id: int, payload: Buffer, *, status: int = 0, flags: int = 0
    ) -> None:
        # bytes are immutable and queued as they are; other buffers are copied once.
        data = payload if isinstance(payload, bytes) else bytes(payload)
        frame = _response_frame(
            request_id, data, self._config.max_frame_size, status=status, flags=flags
        )
        self._outbound.extend(part for part in frame if part)

    def _queue_error(self, request_id: int, status: RpcStatus) -> None:
        details = status.details.encode("utf-8")
        self._queue_response(request_id, details, status=int(status.code), flags=_FIN)

    def _check_size(self, request_id: int, payload: Buffer) -> bool:
        size = memoryview(payload).nbytes
        if size <= self._max_payload:
            return True
        self._queue_error(
            request_id,
            RpcStatus(
                StatusCode.MALFORMED_RESPONSE,
                "The response size exceeded the maximum allowed payload size. "
                f"Max = {self._max_payload} bytes, Got = {size} bytes",
            ),
        )
        self._finish()
        return False

    def _on_frame(self, body: bytes) -> ServerEvent | None:
        if self._phase is ServerSessionPhase.AWAITING_HANDSHAKE:
            return self._on_handshake(body)
        request = _decode(RpcRequest, body, "RpcRequest")
        if self._phase is ServerSessionPhase.AWAITING_REQUEST:
            return self._on_request(request)
        # HANDLING or STREAMING: only an interrupt of this request is expected.
        if request.flags & _FIN and _flags_valid(request.flags):
            if request.request_id == self._active_id:
                self._advance(ServerInput.RECV_INTERRUPT)
                self._active_id = None
                return InterruptReceived(request_id=request.request_id)
            return None  # a leftover interrupt of an earlier request: harmless
        raise RpcProtocolViolation(
            f"unexpected message while request {self._active_id} is in progress",
            seen=request.request_id,
        )

    def _on_handshake(self, body: bytes) -> ServerEvent:
        session = _decode(RpcSession, body, "RpcSession")
        offered = set(session.supported_versions)
        for version in self._config.supported_versions:
            if version in offered:
                self._advance(ServerInput.RECV_SUPPORTED_HANDSHAKE)
                self._queue(RpcSessionReply(accepted_version=version))
                return SessionAccepted(version=version)
        self._advance(ServerInput.RECV_UNSUPPORTED_HANDSHAKE)
        reason = RejectReason.UNSUPPORTED_VERSION
        self._queue(RpcSessionReply(rejected=True, reject_reason=int(reason)))  # type: ignore[arg-type]
        return SessionRejected(reason=reason)

    def _on_request(self, request: RpcRequest) -> ServerEvent | None:
        request_id = request.request_id
        if request.deadline < self._config.min_deadline:
            self._queue_error(
                request_id,
                RpcStatus.bad_request(
                    f"Invalid deadline ({request.deadline}s). The deadline MUST be greater "
                    f"than {self._config.min_deadline:g}s."
                ),
            )
            return None
        flags = request.flags
        if not _flags_valid(flags):
            raise RpcProtocolViolation(f"invalid request flags {flags:#x}", seen=flags)
        if flags & _FIN:
            return None  # an interrupt of a request that already ended
        if flags & _ACK:
            self._queue_response(request_id, b"", flags=_ACK)
            return PingReceived()
        self._advance(ServerInput.RECV_REQUEST)
        self._active_id = request_id
        return RequestReceived(
            request_id=request_id,
            method=request.method,
            deadline=min(float(request.deadline), self._config.max_deadline),
            payload=request.payload,
        )

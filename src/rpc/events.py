"""Events produced by the sans-IO RPC session cores (``_session.py``, wire.md §3.3–§3.9).

:class:`ClientSessionState` produces :data:`ClientEvent` values, :class:`ServerSessionState`
produces :data:`ServerEvent` values; :data:`RpcEvent` is their union. Payloads are the raw
bytes of the service's own messages; decoding them is the adapter's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias, final

if TYPE_CHECKING:
    from .status import RejectReason, StatusCode

__all__ = (
    "ClientEvent",
    "HandshakeTimedOut",
    "InterruptReceived",
    "PingReceived",
    "PongReceived",
    "RequestReceived",
    "ResponseReceived",
    "ResponseTimedOut",
    "RpcEvent",
    "ServerEvent",
    "SessionAccepted",
    "SessionEnded",
    "SessionRejected",
)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SessionAccepted:
    """The handshake succeeded (client: the server accepted; server: a version was agreed)."""

    version: int
    """The agreed RPC protocol version (0 today)."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRejected:
    """The handshake failed with a reject reason; the session is closed."""

    reason: RejectReason
    """Why (client: as sent by the server; server: as it replied)."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeTimedOut:
    """Client: no ``RpcSessionReply`` within the handshake timeout; the session is closed."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RequestReceived:
    """Server: a request to dispatch to a service method."""

    request_id: int
    """The client's id, echoed in every response frame."""
    method: int
    """The method number."""
    deadline: float
    """Seconds the service call (and then each stream item) may take, already clamped to
    the server's maximum."""
    payload: bytes
    """The encoded request message."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class InterruptReceived:
    """Server: the client asked to stop the request in progress (FIN with its id)."""

    request_id: int
    """The interrupted request."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class PingReceived:
    """Server: a ping arrived; the pong is already queued."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseReceived:
    """Client: one response frame for the request in flight."""

    request_id: int
    """The request this answers."""
    status: StatusCode
    """``OK``, or the error code (an error always ends the request)."""
    payload: bytes
    """The message bytes, or the UTF-8 error details when ``status`` is not OK. For a
    streaming call the payload of the final frame carries no item and is to be ignored."""
    final: bool
    """Whether the request is over: FIN was set or the status is an error. For a unary
    call the first frame is always the answer: when it lacked FIN the core has already
    queued an interrupt for the rest, and ``final`` is still ``True``."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class PongReceived:
    """Client: the server answered the ping."""

    latency: float
    """Seconds between sending the ping and receiving the pong."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseTimedOut:
    """Client: no response frame within ``deadline + grace``; the session stays usable."""

    request_id: int
    """The request (0 for a ping) whose wait expired; its late frames will be skipped."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEnded:
    """The peer closed its side of the substream at a frame boundary."""


ClientEvent: TypeAlias = (
    SessionAccepted
    | SessionRejected
    | HandshakeTimedOut
    | ResponseReceived
    | PongReceived
    | ResponseTimedOut
    | SessionEnded
)
ServerEvent: TypeAlias = (
    SessionAccepted
    | SessionRejected
    | RequestReceived
    | InterruptReceived
    | PingReceived
    | SessionEnded
)
RpcEvent: TypeAlias = ClientEvent | ServerEvent

"""Errors of the RPC layer (style.md §7).

Everything is an :class:`RpcError`. Blame is in the type: :class:`RpcProtocolViolation` means
the remote peer broke the RPC protocol (bad ids or flags, an unexpected ACK, an oversized or
undecodable frame) and the session is over; the others are local conditions or the remote's
*legitimate* answers (a status code, a handshake rejection).
"""

from __future__ import annotations

from ..errors import PlaitError, ProtocolViolation
from .status import RejectReason, RpcStatus, StatusCode

__all__ = (
    "RequestTooLargeError",
    "RpcDeadlineExceeded",
    "RpcError",
    "RpcHandshakeRejected",
    "RpcHandshakeTimeoutError",
    "RpcProtocolViolation",
    "RpcStateError",
    "RpcStatusError",
    "SessionClosedError",
)


class RpcError(PlaitError):
    """Base class of every RPC-layer error."""


class RpcHandshakeRejected(RpcError):
    """The server refused the session, or an exclusive pool could not lease one in time.

    :param reason: why; ``NO_CLIENT_SESSIONS_AVAILABLE`` is also raised locally by an
        exclusive :class:`~plait.rpc.RpcClientPool`.
    """

    def __init__(self, reason: RejectReason, message: str | None = None) -> None:
        self.reason = reason
        super().__init__(message or f"RPC session rejected: {reason.name}")


class RpcStatusError(RpcError):
    """A request ended with a non-OK status, sent by the server or made locally.

    Services raise it to answer with an error status; callers receive it.

    :param code: the status code (never ``OK``).
    :param details: the human-readable details (the response payload, decoded as UTF-8).
    """

    def __init__(self, code: StatusCode, details: str = "") -> None:
        if code is StatusCode.OK:
            raise ValueError("RpcStatusError needs a non-OK status code")
        self.code = code
        self.details = details
        super().__init__(f"{code.name}: {details}" if details else code.name)

    @property
    def status(self) -> RpcStatus:
        """The code and details as an :class:`~plait.rpc.RpcStatus` value."""
        return RpcStatus(self.code, self.details)

    @classmethod
    def from_status(cls, status: RpcStatus) -> RpcStatusError:
        """The error for a non-OK :class:`~plait.rpc.RpcStatus`."""
        return cls(status.code, status.details)


class RpcDeadlineExceeded(RpcStatusError, TimeoutError):
    """No response frame arrived within the deadline plus the grace period (client-local).

    Carries :attr:`StatusCode.TIMEOUT` like tari's locally made status; the session stays
    usable and a late reply is skipped as stale (wire.md §3.6).
    """

    def __init__(self, details: str = "Response timed out") -> None:
        super().__init__(StatusCode.TIMEOUT, details)


class RpcHandshakeTimeoutError(RpcError, TimeoutError):
    """The session handshake did not complete within its timeout (client or server side)."""


class SessionClosedError(RpcError):
    """The session is closed (locally, by the server's end of stream, or after a failure)."""


class RpcProtocolViolation(RpcError, ProtocolViolation):
    """The peer broke the RPC protocol; the session is terminated."""


class RequestTooLargeError(RpcError):
    """An encoded request exceeds the frame limit; refused before sending (session intact)."""


class RpcStateError(RpcError, RuntimeError):
    """Local misuse of a session core: a command out of turn (e.g. a second request while
    one is in flight). The core's state is unchanged."""

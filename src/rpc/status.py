"""RPC wire constants: status codes, handshake reject reasons, message flags (wire.md §3).

:class:`StatusCode` mirrors tari's ``RpcStatusCode`` (``protocol/rpc/status.rs``, wire.md §3.7):
0 is success, every other value travels with ``flags = FIN`` and UTF-8 details as the payload,
and any received value of 11 or more is invalid. :class:`RejectReason` is the
``RpcSessionReply.HandshakeRejectReason`` enum (wire.md §3.2); plait's server sends
``NO_SERVER_SESSIONS_AVAILABLE`` for its global cap and ``NO_CLIENT_SESSIONS_AVAILABLE`` for the
per-peer cap, where tari sends 2 for both. :class:`RpcFlags` are the only two bits a request or
response may carry (wire.md §3.5); the old ``MORE = 0x04`` bit is gone and is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

__all__ = ("RejectReason", "RpcFlags", "RpcStatus", "StatusCode")


class StatusCode(IntEnum):
    """The ``status`` field of an ``RpcResponse`` (wire.md §3.7)."""

    OK = 0
    BAD_REQUEST = 1
    """Deadline below the server's minimum, undecodable request payload, or a service error."""
    UNSUPPORTED_METHOD = 2
    """No method with the requested number."""
    NOT_IMPLEMENTED = 3
    TIMEOUT = 4
    """Made locally by the client when no reply came in time; services may send it too."""
    MALFORMED_RESPONSE = 5
    """The server's response payload exceeded the maximum (wire.md §3.10)."""
    GENERAL = 6
    """Internal errors, such as an unexpected exception in a handler."""
    NOT_FOUND = 7
    PROTOCOL_ERROR = 8
    """Made locally by the client for bad flags or ids in responses."""
    FORBIDDEN = 9
    CONFLICT = 10

    @classmethod
    def is_valid(cls, value: int) -> bool:
        """Whether ``value`` is a status code a peer may send (0..10)."""
        return 0 <= value <= max(cls)


class RejectReason(IntEnum):
    """``RpcSessionReply.HandshakeRejectReason``: why a server refused a session (wire.md §3.2)."""

    UNKNOWN = 0
    """Never sent by a server; a missing or unrecognised reason is read as this."""
    UNSUPPORTED_VERSION = 1
    """No RPC version in common (sent after reading the client's ``RpcSession``)."""
    NO_SERVER_SESSIONS_AVAILABLE = 2
    """The server's global session cap is full."""
    NO_CLIENT_SESSIONS_AVAILABLE = 3
    """This peer's session cap is full (plait servers), or an exclusive pool timed out locally."""
    PROTOCOL_NOT_SUPPORTED = 4
    """No service is registered for the negotiated protocol id."""

    @classmethod
    def from_wire(cls, value: int) -> RejectReason:
        """Map a received value to a reason; unknown values become :attr:`UNKNOWN` (as tari)."""
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN


class RpcFlags(IntFlag):
    """``RpcRequest.flags`` / ``RpcResponse.flags``, a u8 bitflag in a u32 field (wire.md §3.5)."""

    FIN = 0x01
    """Requests: interrupt the stream of this request id. Responses: last message of a reply."""
    ACK = 0x02
    """Requests: ping (request id 0, method 0). Responses: the pong."""

    @classmethod
    def is_valid(cls, value: int) -> bool:
        """Whether ``value`` fits in a u8 and only uses the FIN and ACK bits."""
        return 0 <= value <= 0xFF and value & ~int(cls.FIN | cls.ACK) == 0


@dataclass(frozen=True, slots=True)
class RpcStatus:
    """A status code with its details text, as carried by a non-OK ``RpcResponse``.

    The factory class methods name the codes services use; ``details`` is sent to the peer
    as UTF-8, so it must not contain secrets or tracebacks.
    """

    code: StatusCode
    """The status code."""
    details: str = ""
    """Human-readable details, sent as the response payload."""

    @property
    def is_ok(self) -> bool:
        """Whether the code is ``OK``."""
        return self.code is StatusCode.OK

    @classmethod
    def ok(cls) -> RpcStatus:
        """The ``OK`` status."""
        return cls(StatusCode.OK)

    @classmethod
    def bad_request(cls, details: str) -> RpcStatus:
        """``BAD_REQUEST`` (1) with ``details``."""
        return cls(StatusCode.BAD_REQUEST, details)

    @classmethod
    def unsupported_method(cls, details: str) -> RpcStatus:
        """``UNSUPPORTED_METHOD`` (2) with ``details``."""
        return cls(StatusCode.UNSUPPORTED_METHOD, details)

    @classmethod
    def not_implemented(cls, details: str) -> RpcStatus:
        """``NOT_IMPLEMENTED`` (3) with ``details``."""
        return cls(StatusCode.NOT_IMPLEMENTED, details)

    @classmethod
    def timed_out(cls, details: str) -> RpcStatus:
        """``TIMEOUT`` (4) with ``details``."""
        return cls(StatusCode.TIMEOUT, details)

    @classmethod
    def general(cls, details: str) -> RpcStatus:
        """``GENERAL`` (6) with ``details``."""
        return cls(StatusCode.GENERAL, details)

    @classmethod
    def not_found(cls, details: str) -> RpcStatus:
        """``NOT_FOUND`` (7) with ``details``."""
        return cls(StatusCode.NOT_FOUND, details)

    @classmethod
    def forbidden(cls, details: str) -> RpcStatus:
        """``FORBIDDEN`` (9) with ``details``."""
        return cls(StatusCode.FORBIDDEN, details)

    @classmethod
    def conflict(cls, details: str) -> RpcStatus:
        """``CONFLICT`` (10) with ``details``."""
        return cls(StatusCode.CONFLICT, details)

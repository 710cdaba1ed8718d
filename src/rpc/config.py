"""Configuration of RPC servers, clients and client pools (wire.md §3.10–§3.13, style.md §9).

Every limit is a named field with its unit; defaults are module constants that say where the
number comes from. Times are float seconds; the RPC wire carries deadlines as whole seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = (
    "DEFAULT_CLIENT_DEADLINE",
    "DEFAULT_CLIENT_HANDSHAKE_TIMEOUT",
    "DEFAULT_DEADLINE_GRACE_PERIOD",
    "DEFAULT_MAX_CONCURRENT_HANDSHAKES",
    "DEFAULT_MAX_DEADLINE",
    "DEFAULT_MAX_SESSIONS",
    "DEFAULT_MAX_SESSIONS_PER_PEER",
    "DEFAULT_MIN_DEADLINE",
    "DEFAULT_POOL_ACQUIRE_TIMEOUT",
    "DEFAULT_SERVER_HANDSHAKE_TIMEOUT",
    "MAX_HEADER_SIZE",
    "MAX_INTERRUPTED_REQUESTS",
    "MAX_STALE_RESPONSES",
    "RPC_MAX_FRAME_SIZE",
    "SUPPORTED_RPC_VERSIONS",
    "PoolConfig",
    "RpcClientConfig",
    "RpcServerConfig",
    "max_response_payload_size",
)

RPC_MAX_FRAME_SIZE = 4 * 1024 * 1024  # tari protocol/rpc/mod.rs RPC_MAX_FRAME_SIZE
MAX_HEADER_SIZE = 4 + 4 * 5  # tari protocol/rpc/message.rs: room for the RpcResponse fields
SUPPORTED_RPC_VERSIONS = (0,)  # tari protocol/rpc/handshake.rs SUPPORTED_RPC_VERSIONS
MAX_STALE_RESPONSES = 20  # tari client/mod.rs: late replies skipped per read before giving up
MAX_INTERRUPTED_REQUESTS = 64  # plait: interrupted request ids a client session remembers
"""Ids of interrupted requests a client session remembers, newest kept: their late frames (sent
before the server read the FIN) are skipped, uncounted, until the request's last frame."""

DEFAULT_MAX_SESSIONS = 100  # tari base node (base_layer/p2p/src/config.rs); hardening.md §2.7
DEFAULT_MAX_SESSIONS_PER_PEER = 10  # tari base node; hardening.md §2.7
DEFAULT_MIN_DEADLINE = 1.0  # tari RpcServerBuilder minimum_client_deadline
DEFAULT_MAX_DEADLINE = 600.0  # hardening.md §1.10 / R14: clamp the remote-supplied deadline
DEFAULT_SERVER_HANDSHAKE_TIMEOUT = 15.0  # tari RpcServerBuilder handshake_timeout
DEFAULT_MAX_CONCURRENT_HANDSHAKES = 32  # plait: bound on handshakes in flight (wire.md, bug 2)

DEFAULT_CLIENT_DEADLINE = 120.0  # tari RpcClientConfig::default (code value, wire.md §8.2)
DEFAULT_DEADLINE_GRACE_PERIOD = 60.0  # tari RpcClientConfig::default
DEFAULT_CLIENT_HANDSHAKE_TIMEOUT = 90.0  # tari RpcClientConfig::default

DEFAULT_POOL_ACQUIRE_TIMEOUT = 30.0  # plait: how long an exclusive pool waits for a lease


def max_response_payload_size(max_frame_size: int) -> int:
    """The largest response payload that fits a frame: ``max_frame_size - 24`` (wire.md §3.1)."""
    return max_frame_size - MAX_HEADER_SIZE


def _check_frame_size(value: int) -> None:
    if not MAX_HEADER_SIZE < value <= 0xFFFFFFFF:
        raise ValueError(f"max_frame_size must be within {MAX_HEADER_SIZE + 1}..{0xFFFFFFFF}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RpcServerConfig:
    """Limits of an RPC server; one server's caps are shared by all its services."""

    max_sessions: int | None = DEFAULT_MAX_SESSIONS
    """Sessions alive at once over all peers; ``None`` = unlimited, 0 rejects every session
    (``NO_SERVER_SESSIONS_AVAILABLE``)."""
    max_sessions_per_peer: int | None = DEFAULT_MAX_SESSIONS_PER_PEER
    """Sessions alive at once per peer key; ``None`` or 0 = unlimited. Beyond it the server
    rejects with ``NO_CLIENT_SESSIONS_AVAILABLE``."""
    handshake_timeout: float = DEFAULT_SERVER_HANDSHAKE_TIMEOUT
    """Seconds to wait for the client's ``RpcSession`` after admission."""
    max_concurrent_handshakes: int = DEFAULT_MAX_CONCURRENT_HANDSHAKES
    """Session handshakes in flight at once; each runs in its own task."""
    min_deadline: float = DEFAULT_MIN_DEADLINE
    """Seconds; a request whose ``deadline`` is below this gets ``BAD_REQUEST``."""
    max_deadline: float = DEFAULT_MAX_DEADLINE
    """Seconds; a larger requested deadline is clamped to this (the wire value is a u64)."""
    max_frame_size: int = RPC_MAX_FRAME_SIZE
    """Largest frame body in either direction, bytes; larger inbound frames end the session,
    and response payloads above ``max_frame_size - 24`` become ``MALFORMED_RESPONSE``."""
    supported_versions: tuple[int, ...] = SUPPORTED_RPC_VERSIONS
    """RPC protocol versions the server accepts, in order of preference."""

    def __post_init__(self) -> None:
        if self.max_sessions is not None and self.max_sessions < 0:
            raise ValueError("max_sessions must be >= 0 or None")
        if self.max_sessions_per_peer is not None and self.max_sessions_per_peer < 0:
            raise ValueError("max_sessions_per_peer must be >= 0 or None")
        if not self.handshake_timeout > 0:
            raise ValueError("handshake_timeout must be positive")
        if self.max_concurrent_handshakes < 1:
            raise ValueError("max_concurrent_handshakes must be at least 1")
        if not 0 <= self.min_deadline <= self.max_deadline:
            raise ValueError("need 0 <= min_deadline <= max_deadline")
        _check_frame_size(self.max_frame_size)
        if not self.supported_versions or any(
            not 0 <= v <= 0xFFFFFFFF for v in self.supported_versions
        ):
            raise ValueError("supported_versions must be a non-empty tuple of u32 values")


@dataclass(frozen=True, slots=True, kw_only=True)
class RpcClientConfig:
    """Behaviour of one client session (tari ``RpcClientConfig``, code defaults)."""

    deadline: float | None = DEFAULT_CLIENT_DEADLINE
    """Seconds the server may spend per reply (sent as whole seconds, truncated); ``None``
    sends 0, which a server rejects unless its ``min_deadline`` is 0."""
    deadline_grace_period: float = DEFAULT_DEADLINE_GRACE_PERIOD
    """Extra seconds the client waits for each response frame beyond ``deadline``."""
    handshake_timeout: float = DEFAULT_CLIENT_HANDSHAKE_TIMEOUT
    """Seconds to wait for the server's ``RpcSessionReply``."""
    max_frame_size: int = RPC_MAX_FRAME_SIZE
    """Largest frame body in either direction, bytes; larger requests raise
    :class:`~plait.rpc.RequestTooLargeError` before sending."""
    max_stale_responses: int = MAX_STALE_RESPONSES
    """Late frames of the previous request (timed out) and late pongs skipped in a row before
    the session fails; frames of interrupted requests are skipped without counting (up to
    :data:`MAX_INTERRUPTED_REQUESTS` of them remembered)."""
    supported_versions: tuple[int, ...] = SUPPORTED_RPC_VERSIONS
    """RPC protocol versions offered in the handshake."""

    def __post_init__(self) -> None:
        if self.deadline is not None and not 0 <= self.deadline < 2**64:
            raise ValueError("deadline must be >= 0 seconds or None")
        if not self.deadline_grace_period >= 0:
            raise ValueError("deadline_grace_period must be >= 0")
        if not self.handshake_timeout > 0:
            raise ValueError("handshake_timeout must be positive")
        _check_frame_size(self.max_frame_size)
        if self.max_stale_responses < 0:
            raise ValueError("max_stale_responses must be >= 0")
        if not self.supported_versions or any(
            not 0 <= v <= 0xFFFFFFFF for v in self.supported_versions
        ):
            raise ValueError("supported_versions must be a non-empty tuple of u32 values")

    @property
    def wire_deadline(self) -> int:
        """The ``deadline`` field sent with each request: whole seconds, 0 for ``None``."""
        return 0 if self.deadline is None else int(self.deadline)

    @property
    def response_timeout(self) -> float | None:
        """Seconds to wait for each response frame: ``deadline + deadline_grace_period``, or
        ``None`` (wait forever) when ``deadline`` is ``None``, as tari does."""
        if self.deadline is None:
            return None
        return self.deadline + self.deadline_grace_period


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolConfig:
    """A bounded pool of client sessions to one peer (wire.md §3.13)."""

    size: int = 1
    """Most sessions the pool opens to the peer; must be at least 1."""
    exclusive: bool = False
    """``False``: sessions are shared, and a full pool leases the least-leased session.
    ``True``: a session serves one lease at a time, and a full pool waits."""
    acquire_timeout: float = DEFAULT_POOL_ACQUIRE_TIMEOUT
    """Seconds an exclusive pool waits for a free session before raising
    ``RpcHandshakeRejected(NO_CLIENT_SESSIONS_AVAILABLE)``."""

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("size must be at least 1")
        if not self.acquire_timeout > 0:
            raise ValueError("acquire_timeout must be positive")

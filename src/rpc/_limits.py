"""Server-side admission of RPC sessions: a global cap and a per-peer cap (wire.md §3.11).

Theory of operation. Before reading a client's ``RpcSession`` the server decides whether the
session may exist at all, in tari's order (``try_initiate_service``, wire.md §3.3):

1. the global cap (``max_sessions``; ``None`` = unlimited, 0 = refuse all) →
   ``NO_SERVER_SESSIONS_AVAILABLE`` (2);
2. a route for the negotiated protocol (the adapter knows) → ``PROTOCOL_NOT_SUPPORTED`` (4);
3. the per-peer cap (``max_sessions_per_peer``; ``None`` or 0 = unlimited), keyed by the
   peer's public-key bytes → ``NO_CLIENT_SESSIONS_AVAILABLE`` (3). tari sends 2 here too;
   plait distinguishes the two so a client can tell them apart.

:meth:`SessionLimits.admit` returns a decision, never performs I/O. An :class:`Admitted`
decision carries a :class:`SessionSlot` that already counts against both caps; releasing the
slot (``release()`` or leaving its ``with`` block) frees both, exactly once. The adapter
holds the slot for the whole life of the session, handshake included, so a failed, timed-out
or cancelled handshake frees it too — the fix for tari's slot leak (wire.md, bug 1). The
per-peer map drops a key when its count returns to zero, so it holds at most one entry per
live session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias, final

from .status import RejectReason

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

    from .config import RpcServerConfig

__all__ = ("AdmissionDecision", "Admitted", "Refused", "SessionLimits", "SessionSlot")


class SessionSlot:
    """One admitted session's share of the global and per-peer caps.

    Release it on every path: ``with decision.slot: ...`` or :meth:`release`; a second
    release is a no-op.
    """

    __slots__ = ("_limits", "_peer_key", "_released")

    def __init__(self, limits: SessionLimits, peer_key: bytes) -> None:
        self._limits = limits
        self._peer_key = peer_key
        self._released = False

    def __repr__(self) -> str:
        state = "released" if self._released else "held"
        return f"<SessionSlot peer={self._peer_key.hex()[:16]} {state}>"

    @property
    def peer_key(self) -> bytes:
        """The peer key the slot is counted against."""
        return self._peer_key

    @property
    def released(self) -> bool:
        """Whether the slot was given back."""
        return self._released

    def release(self) -> None:
        """Give the slot back to both caps (idempotent)."""
        if not self._released:
            self._released = True
            self._limits._release(self._peer_key)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


@final
@dataclass(frozen=True, slots=True)
class Admitted:
    """The session may proceed to its handshake, holding ``slot``."""

    slot: SessionSlot
    """The session's share of the caps; release it when the session ends."""


@final
@dataclass(frozen=True, slots=True)
class Refused:
    """The session must be rejected with ``reason`` before its handshake is read."""

    reason: RejectReason
    """``NO_SERVER_SESSIONS_AVAILABLE``, ``PROTOCOL_NOT_SUPPORTED`` or
    ``NO_CLIENT_SESSIONS_AVAILABLE``."""


AdmissionDecision: TypeAlias = Admitted | Refused


class SessionLimits:
    """Counts live sessions against a global and a per-peer cap.

    :param max_sessions: sessions at once over all peers; ``None`` = unlimited, 0 = none.
    :param max_sessions_per_peer: sessions at once per peer key; ``None`` or 0 = unlimited.
    """

    __slots__ = ("_active", "_max_sessions", "_max_sessions_per_peer", "_per_peer")

    def __init__(self, max_sessions: int | None, max_sessions_per_peer: int | None) -> None:
        if max_sessions is not None and max_sessions < 0:
            raise ValueError("max_sessions must be >= 0 or None")
        if max_sessions_per_peer is not None and max_sessions_per_peer < 0:
            raise ValueError("max_sessions_per_peer must be >= 0 or None")
        self._max_sessions = max_sessions
        self._max_sessions_per_peer = max_sessions_per_peer or None
        self._active = 0
        self._per_peer: dict[bytes, int] = {}

    @classmethod
    def from_config(cls, config: RpcServerConfig) -> SessionLimits:
        """Limits with the caps of an :class:`~plait.rpc.RpcServerConfig`."""
        return cls(config.max_sessions, config.max_sessions_per_peer)

    def __repr__(self) -> str:
        return (
            f"<SessionLimits active={self._active}/{self._max_sessions} "
            f"peers={len(self._per_peer)} per_peer_max={self._max_sessions_per_peer}>"
        )

    @property
    def active_sessions(self) -> int:
        """Slots held now, over all peers."""
        return self._active

    def active_sessions_for(self, peer_key: bytes) -> int:
        """Slots held now by one peer."""
        return self._per_peer.get(peer_key, 0)

    @property
    def peers(self) -> int:
        """How many peers hold at least one slot."""
        return len(self._per_peer)

    def admit(self, peer_key: bytes, *, has_route: bool = True) -> AdmissionDecision:
        """Decide whether a new session from ``peer_key`` may start; on success the slot is
        already taken.

        :param peer_key: the peer's public key (its identity), compared byte for byte.
        :param has_route: whether a service is registered for the negotiated protocol; checked
            between the two caps, as tari does.
        """
        if self._max_sessions is not None and self._active >= self._max_sessions:
            return Refused(RejectReason.NO_SERVER_SESSIONS_AVAILABLE)
        if not has_route:
            return Refused(RejectReason.PROTOCOL_NOT_SUPPORTED)
        peer_key = bytes(peer_key)
        held = self._per_peer.get(peer_key, 0)
        if self._max_sessions_per_peer is not None and held >= self._max_sessions_per_peer:
            return Refused(RejectReason.NO_CLIENT_SESSIONS_AVAILABLE)
        self._active += 1
        self._per_peer[peer_key] = held + 1
        return Admitted(SessionSlot(self, peer_key))

    def _release(self, peer_key: bytes) -> None:
        self._active -= 1
        remaining = self._per_peer[peer_key] - 1
        if remaining:
            self._per_peer[peer_key] = remaining
        else:
            del self._per_peer[peer_key]

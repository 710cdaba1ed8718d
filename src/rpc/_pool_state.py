"""Client session pool bookkeeping, without I/O (wire.md §3.13, style.md §4 and §15.11).

Theory of operation. A pool holds at most ``size`` sessions to one peer and opens them lazily.
:meth:`PoolState.acquire` decides, and returns an *action* for the adapter to carry out
outside any lock (httpcore's ``_assign_requests_to_connections`` made pure):

* :class:`LeaseSession` — use this session; its lease count is already incremented.
* :class:`OpenSession` — open a new session (substream, negotiation, handshake) under this
  id, then report :meth:`PoolState.session_opened` or :meth:`PoolState.session_failed`. The
  id counts toward ``size`` while it opens, so concurrent acquirers never overshoot.
* :class:`WaitForRelease` — nothing can be leased now; wait until the pool changes (a lease
  is released, an open finishes or fails, a session is removed) and call ``acquire`` again.
* :class:`FailAcquire` — give up (only from ``session_failed``).

Selection, in insertion order (tari ``LazyPool``):

* **shared** (default): the *least-used* open session is the first one with no lease, else
  the one with the fewest leases (first on ties). Lease it if it is idle or the pool is full;
  otherwise open a new session. With no open session: open one if there is room, else wait
  for the opens in progress.
* **exclusive**: lease the first idle session; else open one if there is room; else wait.
  A session never has more than one lease.

When opening fails with ``NO_SERVER_SESSIONS_AVAILABLE`` or ``NO_CLIENT_SESSIONS_AVAILABLE``
the pool falls back: shared mode leases the least-used open session, exclusive mode leases an
idle one or waits; with no session at all the acquire fails with that reason. Any other
failure fails the acquire (the adapter re-raises the original error). The adapter removes
sessions it finds closed (:meth:`PoolState.remove_session`); a removed session's later
``release`` is ignored. Lease counts are handles held, not requests in flight.

*The server's cap.* A pool may be larger than what the server admits. After such a refusal
the pool remembers how many sessions it had open then and opens no more than that (at least
one, so that a pool left with nothing may try again): later acquires lease or wait instead of
being refused again and again, which for an exclusive pool with many waiters would be a storm
of refused sessions. The cap lifts when a session of the pool is removed (the server then has
room again for this peer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, TypeAlias, final

from .errors import RpcStateError, SessionClosedError
from .status import RejectReason

if TYPE_CHECKING:
    from .config import PoolConfig

__all__ = (
    "FailAcquire",
    "LeaseSession",
    "OpenSession",
    "PoolAction",
    "PoolState",
    "PoolStatistics",
    "WaitForRelease",
)

_FALLBACK_REASONS = (
    RejectReason.NO_SERVER_SESSIONS_AVAILABLE,
    RejectReason.NO_CLIENT_SESSIONS_AVAILABLE,
)


@final
@dataclass(frozen=True, slots=True)
class LeaseSession:
    """Use session ``session_id``; one lease was added to it."""

    session_id: int


@final
@dataclass(frozen=True, slots=True)
class OpenSession:
    """Open a new session and report the outcome under ``session_id``."""

    session_id: int


@final
@dataclass(frozen=True, slots=True)
class WaitForRelease:
    """Nothing to lease now: wait for a change in the pool, then acquire again."""


@final
@dataclass(frozen=True, slots=True)
class FailAcquire:
    """Give up: raise ``RpcHandshakeRejected(reason)``, or the open's own error when
    ``reason`` is ``None`` or not a fallback reason."""

    reason: RejectReason | None


PoolAction: TypeAlias = LeaseSession | OpenSession | WaitForRelease | FailAcquire


class PoolStatistics(NamedTuple):
    """A snapshot of a pool (cf. anyio's ``MemoryObjectStreamStatistics``)."""

    size: int
    """The most sessions the pool may hold."""
    open_sessions: int
    """Sessions ready for use."""
    opening_sessions: int
    """Sessions being opened."""
    leases: int
    """Leases held over all sessions."""
    idle_sessions: int
    """Open sessions with no lease."""


class _Entry:
    __slots__ = ("leases", "opening", "session_id")

    def __init__(self, session_id: int) -> None:
        self.session_id = session_id
        self.leases = 0
        self.opening = True


class PoolState:
    """The selection and lease accounting of one client pool.

    :param config: the pool size and whether sessions are exclusive.
    """

    def __init__(self, config: PoolConfig) -> None:
        self._size = config.size
        self._exclusive = config.exclusive
        self._entries: dict[int, _Entry] = {}  # insertion order = opening order
        self._next_id = 1
        self._closed = False
        self._refused_at: int | None = None
        """Open sessions when the server last refused one (``None``: never, or since lifted);
        the pool opens no more than that."""

    def __repr__(self) -> str:
        stats = self.statistics()
        mode = "exclusive" if self._exclusive else "shared"
        leases = ", ".join(
            f"{e.session_id}:{'opening' if e.opening else e.leases}" for e in self._entries.values()
        )
        state = "closed" if self._closed else f"{stats.open_sessions}/{stats.size}"
        return f"<PoolState {mode} {state} leases=[{leases}]>"

    # -- read-only state ------------------------------------------------------------------

    @property
    def is_exclusive(self) -> bool:
        """Whether a session serves one lease at a time."""
        return self._exclusive

    @property
    def is_closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def session_ids(self) -> tuple[int, ...]:
        """Ids of the open sessions, oldest first."""
        return tuple(e.session_id for e in self._entries.values() if not e.opening)

    def lease_count(self, session_id: int) -> int:
        """Leases held on a session (0 for unknown or removed ids)."""
        entry = self._entries.get(session_id)
        return 0 if entry is None else entry.leases

    def statistics(self) -> PoolStatistics:
        """Open, opening and idle sessions and leases now."""
        open_entries = [e for e in self._entries.values() if not e.opening]
        return PoolStatistics(
            size=self._size,
            open_sessions=len(open_entries),
            opening_sessions=len(self._entries) - len(open_entries),
            leases=sum(e.leases for e in open_entries),
            idle_sessions=sum(1 for e in open_entries if not e.leases),
        )

    # -- decisions ------------------------------------------------------------------------

    def acquire(self) -> LeaseSession | OpenSession | WaitForRelease:
        """Decide how to serve one more lease.

        :raises SessionClosedError: the pool was closed.
        """
        if self._closed:
            raise SessionClosedError("the RPC client pool is closed")
        has_room = len(self._entries) < self._limit()
        if self._exclusive:
            idle = self._first_idle()
            if idle is not None:
                return self._lease(idle)
            return self._open() if has_room else WaitForRelease()
        least = self._least_used()
        if least is None:
            return self._open() if has_room else WaitForRelease()
        if least.leases and has_room:
            return self._open()
        return self._lease(least)

    def session_opened(self, session_id: int) -> LeaseSession:
        """An :class:`OpenSession` succeeded: the new session is open and leased once.

        If the pool was closed meanwhile the session is still recorded, so that the
        adapter's later :meth:`release` and :meth:`remove_session` stay consistent.
        """
        entry = self._entries.get(session_id)
        if entry is None or not entry.opening:
            raise RpcStateError(f"session {session_id} is not being opened")
        entry.opening = False
        return self._lease(entry)

    def session_failed(self, session_id: int, reason: RejectReason | None) -> PoolAction:
        """An :class:`OpenSession` failed; ``reason`` is the server's reject reason, if any.

        :return: a fallback lease, a wait, or :class:`FailAcquire`.
        """
        entry = self._entries.get(session_id)
        if entry is None or not entry.opening:
            raise RpcStateError(f"session {session_id} is not being opened")
        del self._entries[session_id]
        if reason not in _FALLBACK_REASONS or self._closed:
            return FailAcquire(reason)
        self._refused_at = self._open_count()
        if self._exclusive:
            idle = self._first_idle()
            if idle is not None:
                return self._lease(idle)
        else:
            least = self._least_used()
            if least is not None:
                return self._lease(least)
        if self._entries:  # sessions being opened (or, exclusive, busy) may still serve us
            return WaitForRelease()
        return FailAcquire(reason)

    def release(self, session_id: int) -> None:
        """A lease ended. Ignored for a session that was removed meanwhile.

        :raises RpcStateError: the session holds no lease (a double release).
        """
        entry = self._entries.get(session_id)
        if entry is None:
            return
        if entry.opening or entry.leases == 0:
            raise RpcStateError(f"session {session_id} holds no lease")
        entry.leases -= 1

    def remove_session(self, session_id: int) -> None:
        """Forget a session found closed (pruning); its outstanding leases are dropped. Lifts
        the cap learnt from a refusal: the server has room again."""
        self._entries.pop(session_id, None)
        self._refused_at = None

    def close(self) -> list[int]:
        """Close the pool: later acquires fail.

        :return: the ids of the open sessions, for the adapter to close; sessions still being
            opened are reported through :meth:`session_opened` / :meth:`session_failed`.
        """
        self._closed = True
        return list(self.session_ids)

    # -- internals ------------------------------------------------------------------------

    def _limit(self) -> int:
        if self._refused_at is None:
            return self._size
        return min(self._size, max(self._refused_at, 1))

    def _open_count(self) -> int:
        return sum(1 for e in self._entries.values() if not e.opening)

    def _open(self) -> OpenSession:
        session_id = self._next_id
        self._next_id += 1
        self._entries[session_id] = _Entry(session_id)
        return OpenSession(session_id)

    def _lease(self, entry: _Entry) -> LeaseSession:
        entry.leases += 1
        return LeaseSession(entry.session_id)

    def _first_idle(self) -> _Entry | None:
        for entry in self._entries.values():
            if not entry.opening and not entry.leases:
                return entry
        return None

    def _least_used(self) -> _Entry | None:
        best: _Entry | None = None
        for entry in self._entries.values():
            if entry.opening:
                continue
            if not entry.leases:
                return entry
            if best is None or entry.leases < best.leases:
                best = entry
        return best

"""Client pool bookkeeping: lazy, least-used, exclusive, fallback, pruning (wire.md §3.13)."""

from __future__ import annotations

import pytest
from plait.rpc._pool_state import (
    FailAcquire,
    LeaseSession,
    OpenSession,
    PoolState,
    PoolStatistics,
    WaitForRelease,
)
from plait.rpc.config import PoolConfig
from plait.rpc.errors import RpcStateError, SessionClosedError
from plait.rpc.status import RejectReason

NO_SERVER = RejectReason.NO_SERVER_SESSIONS_AVAILABLE
NO_CLIENT = RejectReason.NO_CLIENT_SESSIONS_AVAILABLE


def lease(pool: PoolState) -> int:
    """Acquire, opening a session when asked to; returns the leased session id."""
    action = pool.acquire()
    if isinstance(action, OpenSession):
        action = pool.session_opened(action.session_id)
    assert isinstance(action, LeaseSession), action
    return action.session_id


def test_it_connects_lazily() -> None:
    pool = PoolState(PoolConfig(size=2))
    assert pool.statistics().open_sessions == 0
    first = pool.acquire()
    assert isinstance(first, OpenSession)
    assert pool.statistics().opening_sessions == 1
    assert pool.session_opened(first.session_id) == LeaseSession(first.session_id)
    assert pool.statistics() == PoolStatistics(
        size=2, open_sessions=1, opening_sessions=0, leases=1, idle_sessions=0
    )
    # A held lease forces a second session (tari it_reuses_unused_connections).
    assert isinstance(pool.acquire(), OpenSession)


def test_it_reuses_an_idle_session() -> None:
    pool = PoolState(PoolConfig(size=2))
    session = lease(pool)
    pool.release(session)
    assert pool.acquire() == LeaseSession(session)
    assert len(pool.session_ids) == 1


def test_it_reuses_least_used_sessions_when_full() -> None:
    pool = PoolState(PoolConfig(size=2))
    conn1, conn2 = lease(pool), lease(pool)
    assert conn1 != conn2
    conn3 = lease(pool)
    assert pool.lease_count(conn3) == 2
    assert sorted([pool.lease_count(conn1), pool.lease_count(conn2)]) == [1, 2]
    conn4 = lease(pool)
    assert pool.lease_count(conn4) == 2
    assert pool.session_ids == (conn1, conn2)
    assert [pool.lease_count(c) for c in (conn1, conn2, conn3)] == [2, 2, 2]


def test_least_used_prefers_the_first_idle_then_the_fewest_leases_first_on_ties() -> None:
    pool = PoolState(PoolConfig(size=3))
    a, b, c = lease(pool), lease(pool), lease(pool)
    for _ in range(2):
        assert lease(pool) in (a, b, c)
    # Leases now a=2, b=2, c=1: c has the fewest.
    assert pool.acquire() == LeaseSession(c)
    pool.release(b)
    pool.release(b)  # b idle
    assert pool.acquire() == LeaseSession(b)


def test_it_reuses_used_sessions_if_necessary() -> None:
    pool = PoolState(PoolConfig(size=1))
    first, second = lease(pool), lease(pool)
    assert first == second
    assert pool.lease_count(first) == 2


def test_it_falls_back_when_the_server_has_no_sessions() -> None:
    pool = PoolState(PoolConfig(size=2))
    first = lease(pool)
    action = pool.acquire()
    assert isinstance(action, OpenSession)
    assert pool.session_failed(action.session_id, NO_SERVER) == LeaseSession(first)
    assert pool.session_ids == (first,)
    assert pool.lease_count(first) == 2


@pytest.mark.parametrize("reason", [NO_SERVER, NO_CLIENT])
def test_rejection_with_no_session_fails_the_acquire(reason: RejectReason) -> None:
    pool = PoolState(PoolConfig(size=2))
    action = pool.acquire()
    assert isinstance(action, OpenSession)
    assert pool.session_failed(action.session_id, reason) == FailAcquire(reason)
    assert pool.statistics().opening_sessions == 0


@pytest.mark.parametrize(
    "reason", [None, RejectReason.UNSUPPORTED_VERSION, RejectReason.PROTOCOL_NOT_SUPPORTED]
)
def test_other_failures_never_fall_back(reason: RejectReason | None) -> None:
    pool = PoolState(PoolConfig(size=2))
    lease(pool)
    action = pool.acquire()
    assert isinstance(action, OpenSession)
    assert pool.session_failed(action.session_id, reason) == FailAcquire(reason)


def test_concurrent_acquires_count_sessions_being_opened() -> None:
    pool = PoolState(PoolConfig(size=1))
    opening = pool.acquire()
    assert isinstance(opening, OpenSession)
    assert pool.acquire() == WaitForRelease()  # full, nothing open yet
    pool.session_opened(opening.session_id)
    assert pool.acquire() == LeaseSession(opening.session_id)


def test_failed_open_with_another_open_in_progress_waits() -> None:
    pool = PoolState(PoolConfig(size=2))
    first, second = pool.acquire(), pool.acquire()
    assert isinstance(first, OpenSession)
    assert isinstance(second, OpenSession)
    assert pool.session_failed(second.session_id, NO_SERVER) == WaitForRelease()


def test_it_prunes_closed_sessions() -> None:
    pool = PoolState(PoolConfig(size=2))
    conn1, conn2 = lease(pool), lease(pool)
    pool.remove_session(conn1)
    pool.release(conn1)  # a removed session's release is ignored
    assert pool.session_ids == (conn2,)
    assert isinstance(pool.acquire(), OpenSession)  # room again


def test_double_release_is_misuse() -> None:
    pool = PoolState(PoolConfig(size=1))
    session = lease(pool)
    pool.release(session)
    with pytest.raises(RpcStateError):
        pool.release(session)


def test_open_outcomes_need_a_pending_open() -> None:
    pool = PoolState(PoolConfig(size=1))
    with pytest.raises(RpcStateError):
        pool.session_opened(99)
    with pytest.raises(RpcStateError):
        pool.session_failed(99, None)


# -- exclusive ----------------------------------------------------------------------------


def test_exclusive_never_shares_a_session() -> None:
    pool = PoolState(PoolConfig(size=2, exclusive=True))
    assert pool.is_exclusive
    a, b = lease(pool), lease(pool)
    assert a != b
    assert pool.acquire() == WaitForRelease()
    pool.release(b)
    assert pool.acquire() == LeaseSession(b)
    assert pool.lease_count(b) == 1


def test_exclusive_rejection_waits_for_a_busy_session_or_fails_when_none() -> None:
    pool = PoolState(PoolConfig(size=2, exclusive=True))
    busy = lease(pool)
    action = pool.acquire()
    assert isinstance(action, OpenSession)
    assert pool.session_failed(action.session_id, NO_CLIENT) == WaitForRelease()
    pool.release(busy)
    action = pool.acquire()
    assert action == LeaseSession(busy)
    pool.release(busy)
    pool.remove_session(busy)
    action = pool.acquire()
    assert isinstance(action, OpenSession)
    assert pool.session_failed(action.session_id, NO_CLIENT) == FailAcquire(NO_CLIENT)


def test_exclusive_rejection_leases_an_idle_session() -> None:
    pool = PoolState(PoolConfig(size=2, exclusive=True))
    first = pool.acquire()
    second = pool.acquire()
    assert isinstance(first, OpenSession)
    assert isinstance(second, OpenSession)
    pool.session_opened(first.session_id)
    pool.release(first.session_id)
    assert pool.session_failed(second.session_id, NO_SERVER) == LeaseSession(first.session_id)


# -- the server's cap -----------------------------------------------------------------------


def test_after_a_refusal_an_exclusive_pool_waits_instead_of_opening_again() -> None:
    pool = PoolState(PoolConfig(size=4, exclusive=True))
    a, b = lease(pool), lease(pool)
    action = pool.acquire()
    assert isinstance(action, OpenSession)
    assert pool.session_failed(action.session_id, NO_CLIENT) == WaitForRelease()
    # The server admitted two: below size, yet no more opens, however often we ask.
    assert [pool.acquire() for _ in range(5)] == [WaitForRelease()] * 5
    pool.release(a)
    assert pool.acquire() == LeaseSession(a)
    # A session closed: the server has room again, the pool may grow to its size.
    pool.remove_session(b)
    assert isinstance(pool.acquire(), OpenSession)
    assert isinstance(pool.acquire(), OpenSession)
    assert isinstance(pool.acquire(), OpenSession)
    assert pool.acquire() == WaitForRelease()


def test_after_a_refusal_a_shared_pool_shares_instead_of_opening_again() -> None:
    pool = PoolState(PoolConfig(size=3))
    a = lease(pool)
    action = pool.acquire()
    assert isinstance(action, OpenSession)
    assert pool.session_failed(action.session_id, NO_SERVER) == LeaseSession(a)
    assert pool.acquire() == LeaseSession(a)
    assert pool.lease_count(a) == 3


def test_a_pool_refused_with_nothing_open_may_still_try_one_session() -> None:
    pool = PoolState(PoolConfig(size=4, exclusive=True))
    first, second = pool.acquire(), pool.acquire()
    assert isinstance(first, OpenSession)
    assert isinstance(second, OpenSession)
    assert pool.session_failed(first.session_id, NO_SERVER) == WaitForRelease()
    assert pool.acquire() == WaitForRelease()  # one open is already trying
    assert pool.session_failed(second.session_id, NO_SERVER) == FailAcquire(NO_SERVER)
    assert isinstance(pool.acquire(), OpenSession)  # a later acquire tries again, one at once
    assert pool.acquire() == WaitForRelease()


# -- close ---------------------------------------------------------------------------------


def test_close_returns_open_sessions_and_refuses_acquires() -> None:
    pool = PoolState(PoolConfig(size=3))
    a, b = lease(pool), lease(pool)
    pending = pool.acquire()
    assert isinstance(pending, OpenSession)
    assert pool.close() == [a, b]
    assert pool.is_closed
    with pytest.raises(SessionClosedError):
        pool.acquire()
    # An open that finishes after close is still accounted for, a failure just fails.
    assert pool.session_opened(pending.session_id) == LeaseSession(pending.session_id)
    pool.release(a)


def test_failed_open_after_close_never_falls_back() -> None:
    pool = PoolState(PoolConfig(size=2))
    lease(pool)
    pending = pool.acquire()
    assert isinstance(pending, OpenSession)
    pool.close()
    assert pool.session_failed(pending.session_id, NO_SERVER) == FailAcquire(NO_SERVER)


def test_repr_shows_mode_and_leases() -> None:
    pool = PoolState(PoolConfig(size=2))
    session = lease(pool)
    pool.acquire()
    assert repr(pool) == f"<PoolState shared 1/2 leases=[{session}:1, 2:opening]>"
    pool.close()
    assert "closed" in repr(pool)

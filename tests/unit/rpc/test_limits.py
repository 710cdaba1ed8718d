"""Server admission: global and per-peer caps, slot tokens (wire.md §3.11; hardening.md R4–R6)."""

from __future__ import annotations

import pytest
from plait.rpc._limits import Admitted, Refused, SessionLimits, SessionSlot
from plait.rpc.config import RpcServerConfig
from plait.rpc.status import RejectReason

A, B = b"\xaa" * 32, b"\xbb" * 32


def admit(limits: SessionLimits, peer: bytes, *, has_route: bool = True) -> SessionSlot:
    decision = limits.admit(peer, has_route=has_route)
    assert isinstance(decision, Admitted), decision
    return decision.slot


def test_global_cap_refuses_with_no_server_sessions_and_frees_on_release() -> None:
    limits = SessionLimits(max_sessions=2, max_sessions_per_peer=None)
    first, _second = admit(limits, A), admit(limits, B)
    assert limits.admit(b"\xcc" * 32) == Refused(RejectReason.NO_SERVER_SESSIONS_AVAILABLE)
    first.release()
    assert limits.active_sessions == 1
    admit(limits, b"\xcc" * 32)


def test_zero_global_sessions_refuses_everyone() -> None:
    limits = SessionLimits(max_sessions=0, max_sessions_per_peer=None)
    assert limits.admit(A) == Refused(RejectReason.NO_SERVER_SESSIONS_AVAILABLE)
    assert limits.active_sessions == 0


def test_per_peer_cap_refuses_with_no_client_sessions_other_peers_still_admitted() -> None:
    limits = SessionLimits(max_sessions=3, max_sessions_per_peer=1)
    slot = admit(limits, A)
    assert limits.admit(A) == Refused(RejectReason.NO_CLIENT_SESSIONS_AVAILABLE)
    admit(limits, B)
    assert limits.active_sessions_for(A) == 1
    assert limits.active_sessions_for(B) == 1
    slot.release()
    admit(limits, A)


@pytest.mark.parametrize("per_peer", [None, 0])
def test_per_peer_none_or_zero_is_unlimited(per_peer: int | None) -> None:
    limits = SessionLimits(max_sessions=None, max_sessions_per_peer=per_peer)
    for _ in range(50):
        admit(limits, A)
    assert limits.active_sessions_for(A) == 50


def test_checks_follow_taris_order_global_route_peer() -> None:
    limits = SessionLimits(max_sessions=1, max_sessions_per_peer=1)
    assert limits.admit(A, has_route=False) == Refused(RejectReason.PROTOCOL_NOT_SUPPORTED)
    assert limits.active_sessions == 0  # a refusal takes nothing
    admit(limits, A)
    # Global cap first, even for an unroutable protocol.
    assert limits.admit(B, has_route=False) == Refused(RejectReason.NO_SERVER_SESSIONS_AVAILABLE)
    limits2 = SessionLimits(max_sessions=5, max_sessions_per_peer=1)
    admit(limits2, A)
    # Route before the per-peer cap.
    assert limits2.admit(A, has_route=False) == Refused(RejectReason.PROTOCOL_NOT_SUPPORTED)
    assert limits2.admit(A) == Refused(RejectReason.NO_CLIENT_SESSIONS_AVAILABLE)


def test_release_is_idempotent_and_the_peer_entry_is_dropped() -> None:
    limits = SessionLimits(max_sessions=10, max_sessions_per_peer=10)
    slot = admit(limits, A)
    assert limits.peers == 1
    assert not slot.released
    slot.release()
    slot.release()
    assert slot.released
    assert limits.active_sessions == 0
    assert limits.active_sessions_for(A) == 0
    assert limits.peers == 0  # the map holds no stale keys


def test_slot_is_released_when_its_block_fails() -> None:
    """The regression test for tari's slot leak: every failure path frees the slot."""
    limits = SessionLimits(max_sessions=1, max_sessions_per_peer=1)
    for _ in range(20):
        with pytest.raises(TimeoutError), admit(limits, A) as slot:
            assert slot.peer_key == A
            raise TimeoutError("handshake timed out")
        assert limits.active_sessions == 0
        assert limits.active_sessions_for(A) == 0
    with admit(limits, A):
        assert limits.active_sessions == 1
    assert limits.active_sessions == 0


def test_peer_key_is_compared_by_bytes() -> None:
    limits = SessionLimits(max_sessions=None, max_sessions_per_peer=1)
    admit(limits, bytearray(A))  # type: ignore[arg-type]
    assert limits.admit(bytes(A)) == Refused(RejectReason.NO_CLIENT_SESSIONS_AVAILABLE)


def test_from_config_and_repr() -> None:
    limits = SessionLimits.from_config(RpcServerConfig(max_sessions=100, max_sessions_per_peer=10))
    slot = admit(limits, A)
    assert "active=1/100" in repr(limits)
    assert "held" in repr(slot)
    slot.release()
    assert "released" in repr(slot)


def test_negative_caps_are_refused() -> None:
    with pytest.raises(ValueError, match="max_sessions"):
        SessionLimits(max_sessions=-1, max_sessions_per_peer=None)
    with pytest.raises(ValueError, match="max_sessions_per_peer"):
        SessionLimits(max_sessions=None, max_sessions_per_peer=-1)


def test_peer_count_goes_down_one_slot_at_a_time() -> None:
    limits = SessionLimits(max_sessions=None, max_sessions_per_peer=2)
    first, second = admit(limits, A), admit(limits, A)
    first.release()
    assert limits.active_sessions_for(A) == 1
    assert limits.peers == 1
    admit(limits, A)
    second.release()
    assert limits.active_sessions_for(A) == 1

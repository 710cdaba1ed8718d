"""The wire-mode byte (wire.md §1.2)."""

from __future__ import annotations

import pytest
from plait.transport import (
    DEFAULT_NETWORK_BYTE,
    LIVENESS_BYTE,
    BanTier,
    Network,
    TransportProtocolViolation,
    WireMode,
    WrongNetworkError,
    classify_wire_byte,
    encode_wire_byte,
    validate_network_byte,
)


def test_tari_network_bytes() -> None:
    assert [int(n) for n in Network] == [0x00, 0x01, 0x50, 0x10, 0x24, 0xC9]
    assert LIVENESS_BYTE == 0xA7


def test_default_network_byte_is_outside_every_tari_value() -> None:
    assert DEFAULT_NETWORK_BYTE == 0xF0
    assert DEFAULT_NETWORK_BYTE not in set(Network)
    assert DEFAULT_NETWORK_BYTE >= 240  # tari reserves 0..240
    assert encode_wire_byte(DEFAULT_NETWORK_BYTE) == b"\xf0"


def test_classify() -> None:
    assert classify_wire_byte(0xF0, network_byte=0xF0) is WireMode.NETWORK
    assert classify_wire_byte(0x00, network_byte=Network.MAINNET) is WireMode.NETWORK
    assert classify_wire_byte(0xA7, network_byte=0xF0) is WireMode.LIVENESS
    with pytest.raises(WrongNetworkError) as info:
        classify_wire_byte(0x00, network_byte=0xF0)
    assert isinstance(info.value, TransportProtocolViolation)
    assert (info.value.received, info.value.expected) == (0x00, 0xF0)
    assert info.value.ban is BanTier.NONE


@pytest.mark.parametrize("bad", [-1, 256, 0xA7])
def test_invalid_network_bytes(bad: int) -> None:
    with pytest.raises(ValueError):
        validate_network_byte(bad)

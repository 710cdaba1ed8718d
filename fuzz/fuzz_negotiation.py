"""Fuzz target ``negotiation``: the sans-IO protocol negotiator (hardening.md §4, target 3;
wire.md §2).

Byte 0: bit 0 picks the role (responder or initiator), bits 1-2 the limits, bit 3 whether
the adapter reads exactly ``next_read_size`` bytes at a time (as ``negotiate_inbound``
does) or arbitrary chunks; byte 1 is the chunk size. Only
:class:`~plait.negotiation.NegotiationError` subclasses (PlaitErrors) may escape; invariants
on the outcome are asserted.
"""

from __future__ import annotations

from _common import Cursor, split, test_one_input
from plait.negotiation import (
    NegotiationConfig,
    NegotiationFlag,
    NegotiationState,
    ProtocolNegotiator,
    Role,
    encode_frame,
)

__all__ = ("SEEDS", "TestOneInput", "run_one")

_SUPPORTED = (b"/plait/echo/1", b"t/rpc/1", b"\xff\x00bytes")
_CANDIDATES = (b"/x/1", b"t/rpc/1")
_CONFIGS = (
    NegotiationConfig(),
    NegotiationConfig(max_protocol_id_length=50),
    NegotiationConfig(max_proposals=1),
    NegotiationConfig(max_protocol_id_length=1, max_proposals=2),
)


def _outbound_frames_are_well_formed(data: bytes) -> None:
    pos = 0
    while pos < len(data):
        length, flags = data[pos], data[pos + 1]
        assert flags & ~0x07 == 0
        pos += 2 + length
    assert pos == len(data)


def run_one(data: bytes) -> None:
    cur = Cursor(data)
    selector = cur.byte()
    step = cur.byte()
    config = _CONFIGS[(selector >> 1) % len(_CONFIGS)]
    exact_reads = bool(selector & 0x08)
    if selector & 1:
        negotiator = ProtocolNegotiator(Role.INITIATOR, _CANDIDATES, config=config)
        negotiator.initiate()
        allowed = set(_CANDIDATES)
    else:
        negotiator = ProtocolNegotiator(Role.RESPONDER, _SUPPORTED, config=config)
        allowed = set(_SUPPORTED)
    payload = cur.rest()
    pos = 0
    try:
        while negotiator.state not in (NegotiationState.SELECTED, NegotiationState.FAILED):
            if pos >= len(payload):
                negotiator.receive_data(b"")
                break
            size = negotiator.next_read_size if exact_reads else max(1, step)
            assert size > 0
            negotiator.receive_data(payload[pos : pos + size])
            pos += size
    finally:
        _outbound_frames_are_well_formed(negotiator.data_to_send())
    if negotiator.state is NegotiationState.SELECTED:
        assert negotiator.selected_protocol in allowed
        assert negotiator.next_read_size == 0
        if exact_reads:
            assert negotiator.trailing_data == b""
        for chunk in split(payload[pos:], step):
            negotiator.receive_data(chunk)  # after selection: the protocol's own bytes


def TestOneInput(data: bytes) -> None:
    test_one_input(run_one, data)


_OPT = NegotiationFlag.OPTIMISTIC | NegotiationFlag.TERMINATE
SEEDS: list[bytes] = [
    b"\x00\x00" + encode_frame(b"/no/1") + encode_frame(b"t/rpc/1") + b"trailing",
    b"\x08\x01" + encode_frame(b"/plait/echo/1", _OPT) + b"data",
    b"\x00\x03" + b"".join(encode_frame(b"/no/%d" % i) for i in range(6)),
    b"\x02\x00" + encode_frame(b"p" * 51),
    b"\x00\x00\x03\xf0abc",
    b"\x01\x00" + encode_frame(b"", NegotiationFlag.NOT_SUPPORTED) + encode_frame(b"t/rpc/1"),
    b"\x09\x00" + encode_frame(b"/x/1") + b"more",
    b"\x01\x02" + encode_frame(b"", NegotiationFlag.TERMINATE),
]

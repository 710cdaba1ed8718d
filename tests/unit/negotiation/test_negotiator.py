"""The sans-IO negotiation core: byte-exact frames, both paths, every failure (wire.md §2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from plait import ProtocolViolation
from plait.negotiation import (
    EmptyProtocolIdError,
    InvalidFlagError,
    NegotiationClosedError,
    NegotiationConfig,
    NegotiationError,
    NegotiationFlag,
    NegotiationProtocolViolation,
    NegotiationState,
    NegotiationTerminatedError,
    ProtocolIdTooLongError,
    ProtocolNegotiator,
    ProtocolNotSupportedError,
    ProtocolRejected,
    ProtocolSelected,
    Role,
    encode_frame,
)
from plait.transport import BanTier


def initiator(*protocols: bytes, optimistic: bool = False, **config: int) -> ProtocolNegotiator:
    cfg = NegotiationConfig(**config)  # type: ignore[arg-type]
    return ProtocolNegotiator(Role.INITIATOR, protocols, optimistic=optimistic, config=cfg)


def responder(*protocols: bytes, **config: int) -> ProtocolNegotiator:
    cfg = NegotiationConfig(**config)  # type: ignore[arg-type]
    return ProtocolNegotiator(Role.RESPONDER, protocols, config=cfg)


def run_pair(out: ProtocolNegotiator, inb: ProtocolNegotiator) -> tuple[list[object], list[object]]:
    """Shuttle bytes between two cores until neither has anything to send."""
    out_events: list[object] = list(out.initiate())
    in_events: list[object] = []
    while True:
        data = out.data_to_send()
        if data:
            in_events += inb.receive_data(data)
        reply = inb.data_to_send()
        if reply:
            out_events += out.receive_data(reply)
        if not data and not reply:
            return out_events, in_events


# -- frames ------------------------------------------------------------------------------


def test_optimistic_frame_matches_the_wire_md_example() -> None:
    out = initiator(b"t/greeting/1", optimistic=True)
    assert out.initiate() == [ProtocolSelected(protocol=b"t/greeting/1", optimistic=True)]
    assert out.data_to_send() == bytes.fromhex("0c03742f6772656574696e672f31")
    assert out.state is NegotiationState.SELECTED


def test_encode_frame_layout_and_limits() -> None:
    assert encode_frame(b"abc") == b"\x03\x00abc"
    assert encode_frame(b"", NegotiationFlag.TERMINATE) == b"\x00\x02"
    assert encode_frame(b"x" * 255)[:2] == b"\xff\x00"
    with pytest.raises(ValueError, match="255"):
        encode_frame(b"x" * 256)


def test_protocol_ids_outside_1_to_255_bytes_are_refused_locally() -> None:
    with pytest.raises(ValueError):
        initiator(b"x" * 256)
    with pytest.raises(ValueError):
        responder(b"")
    with pytest.raises(ValueError):
        ProtocolNegotiator(Role.RESPONDER, [])
    with pytest.raises(ValueError, match="exactly one"):
        initiator(b"a", b"b", optimistic=True)
    with pytest.raises(ValueError):
        ProtocolNegotiator(Role.RESPONDER, [b"a"], optimistic=True)


def test_str_ids_are_utf8() -> None:
    out = ProtocolNegotiator(Role.INITIATOR, ["/plait/echo/1"])
    out.initiate()
    assert out.data_to_send() == b"\x0d\x00/plait/echo/1"


# -- normal path -------------------------------------------------------------------------


def test_normal_path_byte_exact() -> None:
    out = initiator(b"/b", b"/a")
    inb = responder(b"/a")
    assert out.initiate() == []
    proposal = out.data_to_send()
    assert proposal == b"\x02\x00/b"
    assert inb.receive_data(proposal) == [ProtocolRejected(protocol=b"/b")]
    not_supported = inb.data_to_send()
    assert not_supported == b"\x00\x04"
    assert out.receive_data(not_supported) == [ProtocolRejected(protocol=b"/b")]
    second = out.data_to_send()
    assert second == b"\x02\x00/a"
    assert inb.receive_data(second) == [ProtocolSelected(protocol=b"/a", optimistic=False)]
    echo = inb.data_to_send()
    assert echo == b"\x02\x00/a"
    assert out.receive_data(echo) == [ProtocolSelected(protocol=b"/a", optimistic=False)]
    assert out.selected_protocol == inb.selected_protocol == b"/a"
    assert out.data_to_send() == b""


def test_tari_negotiate_success_test() -> None:
    """tari protocol/negotiation.rs ``negotiate_success``: C, D, E, F rejected, A agreed."""
    out = initiator(b"C", b"D", b"E", b"F", b"A")
    inb = responder(b"B", b"A")
    out_events, in_events = run_pair(out, inb)
    assert out_events[-1] == ProtocolSelected(protocol=b"A", optimistic=False)
    assert in_events[-1] == ProtocolSelected(protocol=b"A", optimistic=False)
    assert sum(isinstance(e, ProtocolRejected) for e in in_events) == 4


def test_initiator_out_of_candidates_sends_terminate() -> None:
    """tari ``negotiate_fail``: the initiator gives up with ``[0x00][0x02]``."""
    out = initiator(b"C", b"D", b"E")
    inb = responder(b"A", b"B")
    with pytest.raises(ProtocolNotSupportedError) as info:
        run_pair(out, inb)
    assert info.value.protocols == (b"C", b"D", b"E")
    assert out.data_to_send() == b"\x00\x02"
    assert out.state is NegotiationState.FAILED
    with pytest.raises(NegotiationTerminatedError):
        inb.receive_data(b"\x00\x02")


def test_responder_terminates_on_the_fifth_unsupported_proposal() -> None:
    """tari ``negotiate_fail_max_rounds``: 6 candidates, the 5th gets NOT_SUPPORTED|TERMINATE."""
    out = initiator(b"C", b"D", b"E", b"F", b"G", b"A")
    inb = responder(b"A", b"B")
    out.initiate()
    for name in (b"C", b"D", b"E", b"F"):
        assert out.data_to_send() == b"\x01\x00" + name
        inb.receive_data(b"\x01\x00" + name)
        assert inb.data_to_send() == b"\x00\x04"
        out.receive_data(b"\x00\x04")
    assert out.data_to_send() == b"\x01\x00G"
    with pytest.raises(ProtocolNotSupportedError) as info:
        inb.receive_data(b"\x01\x00G")
    assert info.value.protocols == (b"C", b"D", b"E", b"F", b"G")
    final = inb.data_to_send()
    assert final == b"\x00\x06"
    with pytest.raises(NegotiationTerminatedError):
        out.receive_data(final)
    assert out.data_to_send() == b""


def test_six_proposals_pipelined_in_one_read() -> None:
    inb = responder(b"A")
    frames = b"".join(encode_frame(n) for n in (b"1", b"2", b"3", b"4", b"5", b"A"))
    with pytest.raises(ProtocolNotSupportedError):
        inb.receive_data(frames)
    assert inb.data_to_send() == b"\x00\x04" * 4 + b"\x00\x06"


def test_max_proposals_is_configurable() -> None:
    inb = responder(b"A", max_proposals=1)
    with pytest.raises(ProtocolNotSupportedError):
        inb.receive_data(b"\x01\x00Z")
    assert inb.data_to_send() == b"\x00\x06"


def test_echo_of_a_different_id_rejects_the_candidate() -> None:
    out = initiator(b"x", b"y")
    out.initiate()
    out.data_to_send()
    assert out.receive_data(b"\x01\x00z") == [ProtocolRejected(protocol=b"x")]
    assert out.data_to_send() == b"\x01\x00y"


def test_not_supported_from_the_initiator_is_ignored_by_the_responder() -> None:
    inb = responder(b"A")
    assert inb.receive_data(b"\x01\x04A") == [ProtocolSelected(protocol=b"A", optimistic=False)]
    assert inb.data_to_send() == b"\x01\x00A"


# -- optimistic path ---------------------------------------------------------------------


def test_optimistic_responder_accepts_silently_and_keeps_trailing_data() -> None:
    inb = responder(b"t/greeting/1")
    frame = bytes.fromhex("0c03742f6772656574696e672f31")
    events = inb.receive_data(frame + b"first bytes")
    assert events == [ProtocolSelected(protocol=b"t/greeting/1", optimistic=True)]
    assert inb.data_to_send() == b""
    assert inb.trailing_data == b"first bytes"
    assert inb.receive_data(b", more") == []
    assert inb.trailing_data == b"first bytes, more"
    assert inb.next_read_size == 0


def test_optimistic_unsupported_fails_without_reply() -> None:
    inb = responder(b"A")
    with pytest.raises(ProtocolNotSupportedError) as info:
        inb.receive_data(b"\x01\x03B" + b"data that must be dropped")
    assert info.value.protocols == (b"B",)
    assert inb.data_to_send() == b""
    assert inb.trailing_data == b""


def test_optimistic_checked_before_terminate() -> None:
    inb = responder(b"A")
    assert inb.receive_data(b"\x01\x03A")[0] == ProtocolSelected(protocol=b"A", optimistic=True)


def test_trailing_data_after_normal_echo() -> None:
    out = initiator(b"/p")
    out.initiate()
    out.data_to_send()
    out.receive_data(b"\x02\x00/p" + b"\x00\x01")
    assert out.selected_protocol == b"/p"
    assert out.trailing_data == b"\x00\x01"


# -- violations and other errors ---------------------------------------------------------


@pytest.mark.parametrize("flags", [0x08, 0x10, 0x80, 0xF0, 0xFF])
def test_unknown_flag_bits_are_a_long_ban_violation(flags: int) -> None:
    inb = responder(b"abc")
    with pytest.raises(InvalidFlagError) as info:
        inb.receive_data(bytes([3, flags]))  # rejected from the header alone
    assert isinstance(info.value, NegotiationProtocolViolation)
    assert isinstance(info.value, ProtocolViolation)
    assert info.value.ban is BanTier.LONG
    assert info.value.seen == flags
    assert inb.state is NegotiationState.FAILED


def test_hardening_p1_undefined_flags_byte() -> None:
    out = initiator(b"abc")
    out.initiate()
    with pytest.raises(InvalidFlagError):
        out.receive_data(b"\x03\xf0abc")


def test_id_longer_than_the_configured_cap_is_a_ban_offence() -> None:
    inb = responder(b"A", max_protocol_id_length=50)
    with pytest.raises(ProtocolIdTooLongError) as info:
        inb.receive_data(bytes([51, 0]))
    assert info.value.ban is BanTier.LONG
    # 50 bytes is fine and merely unsupported.
    inb2 = responder(b"A", max_protocol_id_length=50)
    assert inb2.receive_data(bytes([50, 0]) + b"x" * 50) == [ProtocolRejected(protocol=b"x" * 50)]


def test_255_byte_unsupported_id_gets_not_supported_by_default() -> None:
    """hardening.md P2: the longest possible name is just unsupported."""
    inb = responder(b"A")
    assert inb.receive_data(bytes([255, 0]) + b"\xfe" * 255) == [
        ProtocolRejected(protocol=b"\xfe" * 255)
    ]
    assert inb.data_to_send() == b"\x00\x04"


def test_256_bytes_after_a_255_length_header_leave_one_byte_for_the_next_frame() -> None:
    inb = responder(b"A")
    inb.receive_data(bytes([255, 0]) + b"y" * 256)
    assert inb.next_read_size == 1  # the extra byte began a new header
    assert inb.state is NegotiationState.RESPONDER_EXPECT_PROPOSAL


@pytest.mark.parametrize("flags", [0x00, 0x01])
def test_empty_proposal_is_a_violation_without_ban(flags: int) -> None:
    inb = responder(b"A")
    with pytest.raises(EmptyProtocolIdError) as info:
        inb.receive_data(bytes([0, flags]))
    assert info.value.ban is BanTier.NONE


def test_empty_acceptance_is_a_violation() -> None:
    out = initiator(b"A")
    out.initiate()
    with pytest.raises(EmptyProtocolIdError):
        out.receive_data(b"\x00\x00")


def test_responder_sees_terminate() -> None:
    inb = responder(b"A")
    with pytest.raises(NegotiationTerminatedError):
        inb.receive_data(b"\x00\x02")
    assert inb.data_to_send() == b""


def test_eof_before_agreement() -> None:
    inb = responder(b"A")
    inb.receive_data(b"\x01")
    with pytest.raises(NegotiationClosedError):
        inb.receive_data(b"")


def test_calls_after_failure_raise() -> None:
    inb = responder(b"A")
    with pytest.raises(InvalidFlagError):
        inb.receive_data(b"\x01\x80A")
    with pytest.raises(NegotiationError) as info:
        inb.receive_data(b"\x01\x00A")
    assert isinstance(info.value.__cause__, InvalidFlagError)


def test_misuse_raises_runtime_error() -> None:
    out = initiator(b"A")
    with pytest.raises(RuntimeError):
        out.receive_data(b"\x01\x00A")
    out.initiate()
    with pytest.raises(RuntimeError):
        out.initiate()
    with pytest.raises(RuntimeError):
        responder(b"A").initiate()


def test_next_read_size_tracks_the_frame() -> None:
    inb = responder(b"abc")
    assert inb.next_read_size == 2
    inb.receive_data(b"\x03")
    assert inb.next_read_size == 1
    inb.receive_data(b"\x00a")
    assert inb.next_read_size == 2
    inb.receive_data(b"bc")
    assert inb.next_read_size == 0


# -- properties --------------------------------------------------------------------------

ids = st.binary(min_size=1, max_size=12)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in [*points, len(data)]:
        if p > last:
            pieces.append(data[last:p])
            last = p
    return pieces


def responder_outcome(supported: list[bytes], chunks: list[bytes]) -> tuple[object, ...]:
    inb = ProtocolNegotiator(Role.RESPONDER, supported)
    events: list[object] = []
    try:
        for chunk in chunks:
            events += inb.receive_data(chunk)
    except NegotiationError as exc:
        # Events of the failing call are lost with the exception; the bytes tell the story.
        return ("error", type(exc), inb.data_to_send())
    return ("ok", tuple(events), inb.data_to_send(), inb.trailing_data)


@given(
    supported=st.lists(ids, min_size=1, max_size=4),
    proposals=st.lists(st.tuples(ids, st.sampled_from([0, 1, 2, 4, 3])), max_size=7),
    tail=st.binary(max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=10),
)
def test_same_outcome_however_the_bytes_are_chunked(
    supported: list[bytes], proposals: list[tuple[bytes, int]], tail: bytes, cuts: list[int]
) -> None:
    wire = b"".join(encode_frame(p, NegotiationFlag(f)) for p, f in proposals) + tail
    whole = responder_outcome(supported, [wire] if wire else [])
    assert responder_outcome(supported, chunked(wire, cuts)) == whole
    assert responder_outcome(supported, [bytes([b]) for b in wire]) == whole


@given(
    candidates=st.lists(ids, min_size=1, max_size=6),
    replies=st.binary(max_size=300),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=10),
)
def test_initiator_same_outcome_however_chunked(
    candidates: list[bytes], replies: bytes, cuts: list[int]
) -> None:
    def outcome(chunks: list[bytes]) -> tuple[object, ...]:
        out = ProtocolNegotiator(Role.INITIATOR, candidates)
        out.initiate()
        events: list[object] = []
        try:
            for chunk in chunks:
                events += out.receive_data(chunk)
        except NegotiationError as exc:
            return ("error", type(exc), out.data_to_send())
        return ("ok", tuple(events), out.data_to_send(), out.trailing_data)

    whole = outcome([replies] if replies else [])
    assert outcome(chunked(replies, cuts)) == whole


@given(data=st.binary(max_size=600), eof=st.booleans(), role=st.sampled_from(list(Role)))
def test_arbitrary_bytes_raise_only_negotiation_errors(
    data: bytes, eof: bool, role: Role
) -> None:
    core = ProtocolNegotiator(role, [b"/a", b"/b"])
    if role is Role.INITIATOR:
        core.initiate()
    try:
        core.receive_data(data)
        if eof:
            core.receive_data(b"")
    except NegotiationError:
        assert core.state is NegotiationState.FAILED
    else:
        assert core.state is not NegotiationState.FAILED
    core.data_to_send()  # never raises

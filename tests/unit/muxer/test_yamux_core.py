"""Sans-IO Yamux core: pairs of cores back to back and crafted frames (no event loop)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from plait.errors import ProtocolViolation
from plait.muxer import (
    ConnectionTerminated,
    Flag,
    FlowControlViolation,
    FrameType,
    GoAwayCode,
    GoAwayError,
    GoAwayReceived,
    HalfState,
    KeepaliveTimeoutError,
    MuxerFloodError,
    MuxerProtocolViolation,
    PingAcknowledged,
    StreamDataReceived,
    StreamEnded,
    StreamLimitError,
    StreamOpened,
    StreamPhase,
    StreamReset,
    StreamStateError,
    UnknownStreamFloodError,
    WindowUpdated,
    YamuxConfig,
    YamuxConnection,
)
from plait.muxer._frames import HEADER, encode_header
from plait.muxer._window import GROWTH_MIN_INTERVAL
from support.yamux_pair import CorePair
from support.yamux_raw import (
    ACK,
    DATA,
    FIN,
    GO_AWAY,
    PING,
    RST,
    SYN,
    WINDOW_UPDATE,
    frame,
    parse_frames,
)

KIB = 1024
NO_KEEPALIVE = YamuxConfig(keepalive_interval=None, auto_tune=False)


def frames_of(data: bytes) -> list[tuple[int, int, int, int]]:
    parsed, rest = parse_frames(data)
    assert rest == b""
    return [(f.type, f.flags, f.stream_id, f.length) for f in parsed]


def data_of(events: list[object], stream_id: int) -> bytes:
    return b"".join(e.data for e in events
                    if isinstance(e, StreamDataReceived) and e.stream_id == stream_id)


def server_core(**overrides: object) -> YamuxConnection:
    return YamuxConnection(is_client=False,
                           config=dataclasses.replace(NO_KEEPALIVE, **overrides))  # type: ignore[arg-type]


def opened_pair(**cfg: object) -> tuple[CorePair, int]:
    config = dataclasses.replace(NO_KEEPALIVE, **cfg)  # type: ignore[arg-type]
    pair = CorePair(config, config)
    sid = pair.client.open_stream()
    pair.flush(pair.client)
    pair.server.accept_stream(sid)
    pair.flush(pair.server)
    pair.take(pair.client)
    pair.take(pair.server)
    return pair, sid


# ---------------------------------------------------------------- codec and constants


def test_header_is_twelve_bytes_big_endian() -> None:
    assert encode_header(FrameType.WINDOW_UPDATE, Flag.SYN | Flag.ACK, 0x01020304, 0x0A0B0C0D) == (
        b"\x00\x01\x00\x03\x01\x02\x03\x04\x0a\x0b\x0c\x0d")
    assert HEADER.size == 12
    assert [t.value for t in FrameType] == [0, 1, 2, 3]
    assert [f.value for f in (Flag.SYN, Flag.ACK, Flag.FIN, Flag.RST)] == [1, 2, 4, 8]
    assert [c.value for c in GoAwayCode] == [0, 1, 2]


def test_violation_classes_carry_goaway_codes() -> None:
    assert issubclass(MuxerProtocolViolation, ProtocolViolation)
    assert MuxerProtocolViolation.error_code == GoAwayCode.PROTOCOL_ERROR
    assert FlowControlViolation.error_code == GoAwayCode.PROTOCOL_ERROR
    assert MuxerFloodError.error_code == GoAwayCode.INTERNAL_ERROR
    assert UnknownStreamFloodError.error_code == GoAwayCode.PROTOCOL_ERROR
    assert GoAwayError(7).code == 7


@pytest.mark.parametrize("field,value", [
    ("initial_window", 1000), ("max_stream_window", 100 * KIB), ("max_streams", 0),
    ("split_send_size", 0), ("max_frame_body", 2**33), ("keepalive_interval", 0.0),
    ("max_connection_window", 1 * KIB * KIB), ("accept_backlog", 0), ("rst_rate", -1.0),
    ("unknown_frame_burst", 0), ("unknown_frame_rate", -1.0),
])
def test_config_rejects_out_of_range_values(field: str, value: object) -> None:
    with pytest.raises(ValueError):
        YamuxConfig(**{field: value})  # type: ignore[arg-type]


def test_config_defaults_match_rust_yamux() -> None:
    c = YamuxConfig()
    assert (c.initial_window, c.split_send_size, c.max_frame_body) == (256 * KIB, 16 * KIB, KIB * KIB)
    assert (c.max_streams, c.max_ack_backlog, c.accept_backlog) == (512, 256, 256)
    assert c.auto_tune is True


# ---------------------------------------------------------------- open / accept


def test_ids_parity_and_eager_open_frame() -> None:
    client = YamuxConnection(is_client=True, config=NO_KEEPALIVE)
    server = YamuxConnection(is_client=False, config=NO_KEEPALIVE)
    assert [client.open_stream() for _ in range(3)] == [1, 3, 5]
    assert [server.open_stream() for _ in range(2)] == [2, 4]
    assert frames_of(client.data_to_send()) == [(WINDOW_UPDATE, SYN, i, 0) for i in (1, 3, 5)]


def test_open_accept_ack_and_data_roundtrip() -> None:
    pair = CorePair(NO_KEEPALIVE, NO_KEEPALIVE)
    sid = pair.client.open_stream()
    assert pair.client.stream_state(sid).phase is StreamPhase.SYN_SENT  # type: ignore[union-attr]
    assert pair.client.ack_backlog == 1
    assert pair.client.send_data(sid, b"hello") == 5
    events = pair.flush(pair.client)
    assert events == [StreamOpened(stream_id=sid), StreamDataReceived(stream_id=sid, data=b"hello")]
    assert pair.server.accept_backlog == 1
    pair.server.accept_stream(sid)
    assert frames_of(pair.server.data_to_send()) == [(WINDOW_UPDATE, ACK, sid, 0)]
    assert pair.server.accept_backlog == 0
    assert pair.server.stream_state(sid).phase is StreamPhase.ESTABLISHED  # type: ignore[union-attr]


def test_ack_resolves_backlog_and_opens_block_at_limit() -> None:
    config = dataclasses.replace(NO_KEEPALIVE, max_ack_backlog=3)
    pair = CorePair(config, config)
    ids = [pair.client.open_stream() for _ in range(3)]
    assert not pair.client.can_open_stream
    with pytest.raises(StreamLimitError):
        pair.client.open_stream()
    pair.flush(pair.client)
    pair.server.accept_stream(ids[0])
    pair.flush(pair.server)
    assert pair.client.ack_backlog == 2
    assert pair.client.can_open_stream


@pytest.mark.parametrize("how", ["data", "fin", "rst", "data_ack"])
def test_lazy_peer_resolves_pending_ack(how: str) -> None:
    client = YamuxConnection(is_client=True, config=NO_KEEPALIVE)
    sid = client.open_stream()
    client.data_to_send()
    raw = {
        "data": frame(DATA, 0, sid, body=b"x"),
        "fin": frame(WINDOW_UPDATE, FIN, sid, 0),
        "rst": frame(DATA, RST, sid, 0),
        "data_ack": frame(DATA, ACK, sid, body=b"x"),
    }[how]
    client.receive_data(raw)
    assert client.ack_backlog == 0


def test_inbound_lazy_open_with_data_syn_and_first_write_carries_ack() -> None:
    server = server_core()
    events = server.receive_data(frame(DATA, SYN, 1, body=b"abc"))
    assert events == [StreamOpened(stream_id=1), StreamDataReceived(stream_id=1, data=b"abc")]
    # writing before accept_stream acknowledges implicitly on the first frame
    server.send_data(1, b"xy")
    assert frames_of(server.data_to_send()) == [(DATA, ACK, 1, 2)]
    server.accept_stream(1)  # already acknowledged: nothing more
    assert server.data_to_send() == b""


@pytest.mark.parametrize("first", ["data", "fin", "window_update", "rst", "nothing"])
def test_ack_of_an_accepted_stream_rides_with_its_first_frame(first: str) -> None:
    """accept_stream() owes the ACK: the stream's first frame queued before the next
    data_to_send() carries it (one frame less); otherwise a WINDOW_UPDATE+ACK is sent."""
    server = server_core()
    server.receive_data(frame(WINDOW_UPDATE, SYN, 1, 0) + frame(DATA, 0, 1, body=b"q" * 200 * KIB))
    server.accept_stream(1)
    assert server.has_data_to_send
    if first == "data":
        server.send_data(1, b"reply")
        expected = [(DATA, ACK, 1, 5)]
    elif first == "fin":
        server.end_stream(1)
        expected = [(WINDOW_UPDATE, ACK | FIN, 1, 0)]
    elif first == "window_update":
        server.acknowledge_received_data(1, 200 * KIB)  # over half the window: credit due
        expected = [(WINDOW_UPDATE, ACK, 1, 200 * KIB)]
    elif first == "rst":
        server.reset_stream(1)
        expected = [(WINDOW_UPDATE, RST, 1, 0)]  # the reset resolves the peer's open
    else:
        expected = [(WINDOW_UPDATE, ACK, 1, 0)]
    assert frames_of(server.data_to_send()) == expected
    if first not in ("fin", "rst"):
        server.send_data(1, b"more")  # acknowledged once only
        assert frames_of(server.data_to_send()) == [(DATA, 0, 1, 4)]


def test_accept_with_larger_initial_window_grants_extra_credit() -> None:
    server = server_core(initial_window=512 * KIB, max_connection_window=512 * KIB * 512)
    server.receive_data(frame(WINDOW_UPDATE, SYN, 1, 0))
    server.accept_stream(1)
    assert frames_of(server.data_to_send()) == [(WINDOW_UPDATE, ACK, 1, 256 * KIB)]
    client = YamuxConnection(is_client=True, config=server.config)
    client.open_stream()
    assert frames_of(client.data_to_send()) == [(WINDOW_UPDATE, SYN, 1, 256 * KIB)]


# ---------------------------------------------------------------- data, splitting, windows


def test_send_splits_at_split_send_size_and_respects_window() -> None:
    pair, sid = opened_pair()
    payload = bytes(range(256)) * (1200)  # 300 KiB
    assert pair.client.send_data(sid, payload) == 256 * KIB
    out = pair.client.data_to_send()
    lens = [length for (_t, _f, _s, length) in frames_of(out)]
    assert max(lens) == 16 * KIB and sum(lens) == 256 * KIB
    assert pair.client.outbound_window(sid) == 0
    assert pair.client.send_data(sid, payload[256 * KIB:]) == 0


def test_credit_returned_only_after_half_the_window_is_consumed() -> None:
    pair, sid = opened_pair()
    pair.client.send_data(sid, b"a" * (256 * KIB))
    events = pair.flush(pair.client)
    assert len(data_of(events, sid)) == 256 * KIB
    assert pair.server.data_to_send() == b""  # received but not consumed: no credit
    pair.server.acknowledge_received_data(sid, 128 * KIB - 1)
    assert pair.server.data_to_send() == b""
    pair.server.acknowledge_received_data(sid, 1)
    assert frames_of(pair.server.data_to_send()) == [(WINDOW_UPDATE, 0, sid, 128 * KIB)]
    with pytest.raises(ValueError):
        pair.server.acknowledge_received_data(sid, 128 * KIB + 1)


def test_window_update_event_and_resume_sending() -> None:
    pair, sid = opened_pair()
    pair.client.send_data(sid, b"a" * (256 * KIB))
    pair.flush(pair.client)
    pair.server.acknowledge_received_data(sid, 256 * KIB)
    events = pair.flush(pair.server)
    assert events == [WindowUpdated(stream_id=sid, delta=256 * KIB)]
    assert pair.client.outbound_window(sid) == 256 * KIB


def test_data_frames_in_one_byte_chunks_reassemble() -> None:
    pair, sid = opened_pair()
    payload = bytes(range(256)) * 100
    pair.client.send_data(sid, payload)
    pair.client.end_stream(sid)
    events = pair.flush(pair.client, chunk=1)
    assert data_of(events, sid) == payload
    assert events[-1] == StreamEnded(stream_id=sid)


def test_bytearray_input_is_copied_not_referenced() -> None:
    pair, sid = opened_pair()
    buf = bytearray(b"abcd")
    pair.client.send_data(sid, buf)
    buf[:] = b"zzzz"
    assert data_of(pair.flush(pair.client), sid) == b"abcd"


def test_data_to_send_batches_at_frame_boundaries_with_control_first() -> None:
    pair, sid = opened_pair()
    pair.client.send_data(sid, b"x" * (64 * KIB))
    pair.client.send_ping()
    first = frames_of(pair.client.data_to_send(40 * KIB))
    assert first[0][0] == PING  # control frames head the batch
    assert [f[3] for f in first[1:]] == [16 * KIB, 16 * KIB]  # a third would exceed 40 KiB
    assert pair.client.queued_data_size == 2 * (16 * KIB + 12)
    assert [f[3] for f in frames_of(pair.client.data_to_send(1))] == [16 * KIB]  # at least one


# ---------------------------------------------------------------- half-close, reset


def test_half_close_both_directions_releases_state() -> None:
    pair, sid = opened_pair()
    pair.client.send_data(sid, b"req", end_stream=True)
    assert pair.client.stream_state(sid).write_state is HalfState.CLOSED  # type: ignore[union-attr]
    events = pair.flush(pair.client)
    assert events == [StreamDataReceived(stream_id=sid, data=b"req"), StreamEnded(stream_id=sid)]
    pair.server.acknowledge_received_data(sid, 3)
    pair.server.send_data(sid, b"resp")
    pair.server.end_stream(sid)
    assert pair.server.stream_state(sid) is None  # both halves closed: released
    events = pair.flush(pair.server)
    assert events == [StreamDataReceived(stream_id=sid, data=b"resp"), StreamEnded(stream_id=sid)]
    assert pair.client.stream_count == 0 and pair.server.stream_count == 0
    with pytest.raises(StreamStateError):
        pair.client.send_data(sid, b"late")


def test_fin_on_data_frame_and_write_after_fin_is_local_error() -> None:
    pair, sid = opened_pair()
    pair.client.send_data(sid, b"", end_stream=True)
    assert frames_of(pair.client.data_to_send()) == [(DATA, FIN, sid, 0)]
    with pytest.raises(StreamStateError):
        pair.client.send_data(sid, b"more")
    with pytest.raises(StreamStateError):
        pair.client.end_stream(sid)


@pytest.mark.parametrize("ftype", [DATA, WINDOW_UPDATE])
def test_peer_reset_on_either_frame_type(ftype: int) -> None:
    server = server_core()
    server.receive_data(frame(WINDOW_UPDATE, SYN, 1, 0) + frame(WINDOW_UPDATE, SYN, 3, 0))
    server.accept_stream(1)
    server.accept_stream(3)
    server.send_data(1, b"queued")
    events = server.receive_data(frame(ftype, RST, 1, 0))
    assert events == [StreamReset(stream_id=1, by_peer=True)]
    assert server.stream_state(1) is None and server.stream_state(3) is not None
    # the queued data of the reset stream is dropped, the other stream is untouched
    assert all(f[2] != 1 or f[1] & ACK for f in frames_of(server.data_to_send()))


def test_local_reset_sends_rst_and_releases() -> None:
    pair, sid = opened_pair()
    pair.client.reset_stream(sid)
    assert pair.client.stream_count == 0
    assert pair.flush(pair.client) == [StreamReset(stream_id=sid, by_peer=True)]
    assert pair.server.stream_count == 0
    pair.client.reset_stream(sid)  # idempotent
    assert pair.client.data_to_send() == b""


def test_reset_before_syn_was_written_sends_nothing() -> None:
    client = YamuxConnection(is_client=True, config=NO_KEEPALIVE)
    sid = client.open_stream()
    client.send_data(sid, b"never")
    client.reset_stream(sid)
    assert client.data_to_send() == b""
    assert client.ack_backlog == 0


def test_data_after_peer_fin_resets_that_stream_only() -> None:
    server = server_core()
    server.receive_data(frame(WINDOW_UPDATE, SYN, 1, 0) + frame(WINDOW_UPDATE, SYN, 3, 0))
    server.accept_stream(1)
    server.accept_stream(3)
    server.data_to_send()
    assert server.receive_data(frame(WINDOW_UPDATE, FIN, 1, 0)) == [StreamEnded(stream_id=1)]
    assert server.receive_data(frame(WINDOW_UPDATE, FIN, 1, 0)) == []  # FIN twice: harmless
    events = server.receive_data(frame(DATA, 0, 1, body=b"late"))
    assert events == [StreamReset(stream_id=1, by_peer=False)]
    assert frames_of(server.data_to_send()) == [(WINDOW_UPDATE, RST, 1, 0)]
    assert not server.is_closed and server.stream_state(3) is not None


def test_syn_plus_rst_opens_nothing_and_syn_fin_data_in_one_frame() -> None:
    server = server_core()
    assert server.receive_data(frame(DATA, SYN | RST, 1, body=b"x")) == []
    assert server.stream_count == 0
    events = server.receive_data(frame(DATA, SYN | FIN, 3, body=b"all"))
    assert events == [StreamOpened(stream_id=3), StreamDataReceived(stream_id=3, data=b"all"),
                      StreamEnded(stream_id=3)]


def test_stop_reading_discards_and_credits_so_the_peer_never_stalls() -> None:
    pair, sid = opened_pair()
    pair.client.send_data(sid, b"a" * (200 * KIB))
    pair.flush(pair.client)
    pair.server.stop_reading(sid)
    assert pair.server.stream_state(sid).read_state is HalfState.DISCARDING  # type: ignore[union-attr]
    pair.flush(pair.server)
    pair.client.send_data(sid, b"b" * (200 * KIB))
    assert pair.flush(pair.client) == []  # dropped, never delivered
    pair.flush(pair.server)
    assert pair.client.outbound_window(sid) > 0
    pair.client.end_stream(sid)
    pair.flush(pair.client)
    pair.server.end_stream(sid)
    assert pair.server.stream_count == 0


def test_unknown_stream_frames_are_ignored() -> None:
    server = server_core()
    assert server.receive_data(frame(DATA, 0, 99, body=b"zz") + frame(WINDOW_UPDATE, 0, 99, 5)
                               + frame(WINDOW_UPDATE, FIN, 99, 0)) == []
    assert not server.is_closed and server.data_to_send() == b""


# ---------------------------------------------------------------- ping and go away


def test_ping_answered_with_exactly_ack_and_rtt_measured() -> None:
    pair = CorePair(NO_KEEPALIVE, NO_KEEPALIVE, now=10.0)
    opaque = pair.client.send_ping(now=10.0)
    assert frames_of(pair.client.data_to_send()) == [(PING, SYN, 0, opaque)]
    server = pair.server
    server.receive_data(frame(PING, SYN, 0, opaque))
    assert frames_of(server.data_to_send()) == [(PING, ACK, 0, opaque)]
    pair.now = 10.25
    events = pair.client.receive_data(frame(PING, ACK, 0, opaque), now=10.25)
    assert events == [PingAcknowledged(opaque=opaque, rtt=0.25)]
    assert pair.client.rtt == 0.25


def test_ping_without_flags_is_answered_like_rust() -> None:
    server = server_core()
    server.receive_data(frame(PING, 0, 0, 42))
    assert frames_of(server.data_to_send()) == [(PING, ACK, 0, 42)]


@pytest.mark.parametrize("opaque", [1, 12345])
def test_unsolicited_or_wrong_pong_is_goaway_1(opaque: int) -> None:
    client = YamuxConnection(is_client=True, config=NO_KEEPALIVE)
    if opaque == 12345:
        client.send_ping()
        client.data_to_send()
    with pytest.raises(MuxerProtocolViolation):
        client.receive_data(frame(PING, ACK, 0, opaque))
    assert client.is_closed
    assert frames_of(client.data_to_send()) == [(GO_AWAY, 0, 0, 1)]


def test_goaway_received_ends_connection() -> None:
    pair, _sid = opened_pair()
    pair.server.close()
    assert pair.server.is_closed
    events = pair.flush(pair.server)
    assert events[0] == GoAwayReceived(code=0)
    assert isinstance(events[1], ConnectionTerminated) and events[1].by_peer
    assert isinstance(events[1].error, GoAwayError)
    assert pair.client.is_closed and pair.client.stream_count == 0
    with pytest.raises(StreamLimitError):
        pair.client.open_stream()


def test_close_flushes_queued_data_before_goaway() -> None:
    pair, sid = opened_pair()
    pair.client.send_data(sid, b"last words")
    pair.client.close(GoAwayCode.NORMAL)
    pair.client.close()  # idempotent
    out = frames_of(pair.client.data_to_send())
    assert out == [(DATA, 0, sid, 10), (GO_AWAY, 0, 0, 0)]
    with pytest.raises(StreamStateError):
        pair.client.send_data(sid, b"x")
    assert pair.client.receive_data(frame(DATA, 0, sid, body=b"ignored")) == []


def test_eof_terminates_and_truncated_frame_is_reported() -> None:
    server = server_core()
    server.receive_data(frame(DATA, SYN, 1, body=b"abc")[:-1])
    events = server.receive_data(b"")
    assert isinstance(events[0], ConnectionTerminated)
    assert isinstance(events[0].error, MuxerProtocolViolation)
    clean = server_core()
    assert clean.receive_data(b"") == [
        ConnectionTerminated(code=0, by_peer=True, error=None)]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("raw,exc,code", [
    (frame(DATA, SYN, 1, body=b"x", version=1), MuxerProtocolViolation, 1),
    (frame(7, 0, 0, 0), MuxerProtocolViolation, 1),
    (frame(WINDOW_UPDATE, SYN, 2, 0), MuxerProtocolViolation, 1),  # wrong parity from a client
    (frame(WINDOW_UPDATE, SYN, 0, 0), MuxerProtocolViolation, 1),
    (frame(WINDOW_UPDATE, SYN, 1, 0) * 2, MuxerProtocolViolation, 1),  # duplicate SYN
    (frame(DATA, 0, 1, 2 * KIB * KIB), MuxerProtocolViolation, 1),  # header only, 2 MiB
    (frame(DATA, 0, 1, 0xFFFFFFFF), MuxerProtocolViolation, 1),
    (frame(DATA, SYN, 1, 256 * KIB + 1), FlowControlViolation, 1),
    (frame(PING, SYN, 5, 1), MuxerProtocolViolation, 1),
    (frame(GO_AWAY, 0, 5, 0), MuxerProtocolViolation, 1),
])
def test_bad_input_is_goaway_and_close(raw: bytes, exc: type[Exception], code: int) -> None:
    server = server_core()
    with pytest.raises(exc):
        server.receive_data(raw)
    assert server.is_closed and server.close_code == code
    assert frames_of(server.data_to_send()) == [(GO_AWAY, 0, 0, code)]
    assert server.receive_data(frame(PING, SYN, 0, 1)) == []  # input after the end is dropped


def test_oversized_frame_rejected_from_its_header_alone() -> None:
    server = server_core()
    header = frame(DATA, 0, 1, 2 * KIB * KIB)
    server.receive_data(header[:5])
    with pytest.raises(MuxerProtocolViolation):
        server.receive_data(header[5:])
    assert server.buffered_input_size == 0


def test_data_beyond_window_is_flow_control_violation_before_body() -> None:
    server = server_core()
    server.receive_data(frame(WINDOW_UPDATE, SYN, 1, 0))
    server.receive_data(frame(DATA, 0, 1, body=b"a" * (200 * KIB)))
    with pytest.raises(FlowControlViolation):
        server.receive_data(frame(DATA, 0, 1, body=b"b" * (100 * KIB))[:100])
    assert frames_of(server.data_to_send()) == [(GO_AWAY, 0, 0, 1)]


def test_window_update_overflow_is_violation() -> None:
    pair, sid = opened_pair()
    raw = frame(WINDOW_UPDATE, 0, sid, 0xFFFFFFFF)
    with pytest.raises(FlowControlViolation):
        pair.client.receive_data(raw)
    assert pair.client.close_code == 1


def test_excess_syn_over_max_streams_is_refused_by_rst_connection_lives() -> None:
    server = server_core(max_streams=4)
    raw = b"".join(frame(WINDOW_UPDATE, SYN, 1 + 2 * i, 0) for i in range(6))
    events = server.receive_data(raw)
    assert [e.stream_id for e in events if isinstance(e, StreamOpened)] == [1, 3, 5, 7]
    assert frames_of(server.data_to_send()) == [(WINDOW_UPDATE, RST, 9, 0),
                                                (WINDOW_UPDATE, RST, 11, 0)]
    assert not server.is_closed and server.stream_count == 4


def test_accept_backlog_overflow_is_rst_and_accepting_frees_room() -> None:
    server = server_core(accept_backlog=2)
    server.receive_data(frame(WINDOW_UPDATE, SYN, 1, 0) + frame(WINDOW_UPDATE, SYN, 3, 0)
                        + frame(WINDOW_UPDATE, SYN, 5, 0))
    assert frames_of(server.data_to_send()) == [(WINDOW_UPDATE, RST, 5, 0)]
    server.accept_stream(1)
    events = server.receive_data(frame(WINDOW_UPDATE, SYN, 7, 0))
    assert events == [StreamOpened(stream_id=7)]


def test_reset_before_accept_budget() -> None:
    server = server_core(max_pending_accept_resets=3)
    for i in range(3):
        sid = 1 + 2 * i
        server.receive_data(frame(WINDOW_UPDATE, SYN, sid, 0) + frame(WINDOW_UPDATE, RST, sid, 0))
    assert server.accept_backlog == 0 and not server.is_closed
    with pytest.raises(MuxerFloodError):
        server.receive_data(frame(WINDOW_UPDATE, SYN, 7, 0) + frame(WINDOW_UPDATE, RST, 7, 0))
    assert frames_of(server.data_to_send()) == [(GO_AWAY, 0, 0, 2)]


def test_rst_flood_token_bucket_refills_with_time() -> None:
    server = server_core(rst_burst=10, rst_rate=5.0)
    server.start(0.0)
    server.receive_data(frame(DATA, RST, 99, 0) * 10, now=0.0)
    server.receive_data(frame(DATA, RST, 99, 0) * 5, now=1.0)  # refilled 5 tokens
    with pytest.raises(MuxerFloodError):
        server.receive_data(frame(DATA, RST, 99, 0), now=1.0)


def test_unknown_stream_frames_are_ignored_but_budgeted_then_goaway_1() -> None:
    server = server_core(unknown_frame_burst=20, unknown_frame_rate=10.0)
    server.start(0.0)
    server.receive_data(frame(WINDOW_UPDATE, SYN, 1, 0), now=0.0)
    server.accept_stream(1)
    server.data_to_send()
    # never-opened ids of both parities, DATA with and without a body, window updates
    stray = (frame(DATA, 0, 9999, body=b"x" * 100) + frame(WINDOW_UPDATE, 0, 9998, 5)
             + frame(DATA, FIN, 77, 0) + frame(WINDOW_UPDATE, 0, 77, 0))
    assert server.receive_data(stray * 5, now=0.0) == []  # 20 frames: the whole burst
    assert not server.is_closed and not server.has_data_to_send
    # a live stream's frames cost nothing; time refills the bucket at 10 frames/s
    events = server.receive_data(frame(DATA, 0, 1, body=b"ok") * 50, now=0.5)
    assert data_of(events, 1) == b"ok" * 50
    server.receive_data(frame(WINDOW_UPDATE, 0, 9999, 1) * 5, now=0.5)
    assert not server.is_closed
    with pytest.raises(UnknownStreamFloodError) as info:
        server.receive_data(frame(DATA, 0, 9999, body=b"y"), now=0.5)
    assert info.value.seen == 9999
    assert isinstance(info.value, MuxerFloodError)
    assert frames_of(server.data_to_send()) == [(GO_AWAY, 0, 0, 1)]
    assert server.is_closed and server.close_code == 1


def test_frames_for_a_closed_stream_draw_from_the_unknown_budget() -> None:
    pair, sid = opened_pair(unknown_frame_burst=3, unknown_frame_rate=0.0)
    pair.server.reset_stream(sid)  # the client's frames may still be in flight
    late = frame(DATA, 0, sid, body=b"late") + frame(WINDOW_UPDATE, 0, sid, 10)
    assert pair.server.receive_data(late) == []
    assert pair.server.receive_data(frame(DATA, 0, sid, body=b"late")) == []
    with pytest.raises(UnknownStreamFloodError):
        pair.server.receive_data(frame(WINDOW_UPDATE, 0, sid, 10))


def test_ping_flood_pauses_parsing_until_pongs_written() -> None:
    server = server_core(max_queued_pongs=4)
    events = server.receive_data(frame(PING, SYN, 0, 1) * 10 + frame(WINDOW_UPDATE, SYN, 1, 0))
    assert events == [] and server.is_reading_paused
    assert len(frames_of(server.data_to_send())) == 4
    server.receive_data(frame(PING, SYN, 0, 2))  # parked while paused
    assert server.resume_reading() == []
    assert len(frames_of(server.data_to_send())) == 4
    events = server.resume_reading()
    assert events == [StreamOpened(stream_id=1)]
    assert len(frames_of(server.data_to_send())) == 3  # the last 2 flood pings + ping 2
    assert not server.is_reading_paused


# ---------------------------------------------------------------- timers


def test_keepalive_ping_and_timeout_closes() -> None:
    config = YamuxConfig(keepalive_interval=30.0, keepalive_timeout=10.0, auto_tune=False)
    client = YamuxConnection(is_client=True, config=config)
    client.start(100.0)
    assert client.get_timer() == 130.0
    assert client.handle_timer(129.0) == []
    assert client.handle_timer(130.0) == []
    assert frames_of(client.data_to_send()) == [(PING, SYN, 0, 1)]
    assert client.get_timer() == 140.0
    events = client.handle_timer(140.0)
    assert isinstance(events[0], ConnectionTerminated)
    assert isinstance(events[0].error, KeepaliveTimeoutError)
    assert client.is_closed and client.get_timer() is None
    assert frames_of(client.data_to_send()) == [(GO_AWAY, 0, 0, 2)]


def test_answered_keepalive_keeps_connection() -> None:
    pair = CorePair(YamuxConfig(keepalive_interval=1.0, auto_tune=False), NO_KEEPALIVE)
    pair.client.start(0.0)
    for t in range(1, 20):
        pair.now = float(t)
        pair.client.handle_timer(float(t))
        pair.flush(pair.client)
        pair.flush(pair.server)
    assert not pair.client.is_closed
    assert sum(isinstance(e, PingAcknowledged) for e in pair.take(pair.client)) == 19


def test_start_sends_rtt_ping_when_auto_tuning() -> None:
    client = YamuxConnection(is_client=True, config=YamuxConfig())
    client.start(0.0)
    assert frames_of(client.data_to_send()) == [(PING, SYN, 0, 1)]
    with pytest.raises(RuntimeError):
        for _ in range(100):
            client.send_ping()


# ---------------------------------------------------------------- auto-tuning


def _simulate_transfer(
    config: YamuxConfig, rtt: float, rounds: int, *, interval: float | None = None
) -> int:
    """A window-limited bulk transfer over a link with ``rtt``; return the final window.

    Each round the sender uses its whole window and the reader consumes what arrived;
    a round takes one RTT, or ``interval`` seconds when given (a reader that drains its
    window at that pace)."""
    pair = CorePair(config, config)
    pair.client.start(0.0)
    pair.server.start(0.0)
    sid = pair.client.open_stream()
    now = 0.0
    pair.now = now
    pair.flush(pair.client)
    pair.flush(pair.server)
    now += rtt
    pair.now = now
    pair.flush(pair.client)  # pongs arrive after one RTT: rtt known on both sides
    pair.server.accept_stream(sid)
    chunk = b"z" * (4 * KIB * KIB)
    step = (rtt if interval is None else interval) / 2
    for _ in range(rounds):
        pair.client.send_data(sid, chunk)
        now += step
        pair.now = now
        events = pair.flush(pair.client)
        got = len(data_of(events, sid))
        pair.server.acknowledge_received_data(sid, got, now=now)
        now += step
        pair.now = now
        pair.flush(pair.server)
    state = pair.server.stream_state(sid)
    assert state is not None
    return state.recv.size


def test_auto_tuning_grows_at_50ms_rtt() -> None:
    size = _simulate_transfer(YamuxConfig(keepalive_interval=None), rtt=0.05, rounds=12)
    assert size >= 8 * KIB * KIB


def test_auto_tuning_at_submillisecond_rtt_grows_for_a_reader_within_the_floor() -> None:
    """At 0.2 ms RTT, a reader draining its window every 4 ms is slower than 4 RTT but
    within GROWTH_MIN_INTERVAL: the window grows (fewer updates per byte)."""
    assert GROWTH_MIN_INTERVAL == 0.020
    config = YamuxConfig(keepalive_interval=None)
    size = _simulate_transfer(config, rtt=0.0002, rounds=12, interval=0.004)
    assert size >= 4 * KIB * KIB
    # the RTT rule alone would not have grown it: a reader every 100 ms stays at 256 KiB
    assert _simulate_transfer(config, rtt=0.0002, rounds=12, interval=0.1) == 256 * KIB


def test_auto_tuning_off_keeps_initial_window() -> None:
    size = _simulate_transfer(YamuxConfig(keepalive_interval=None, auto_tune=False),
                              rtt=0.05, rounds=12)
    assert size == 256 * KIB


def test_auto_tuning_bounded_by_connection_budget() -> None:
    config = YamuxConfig(keepalive_interval=None, max_streams=4,
                         max_connection_window=4 * 256 * KIB + 768 * KIB)
    size = _simulate_transfer(config, rtt=0.05, rounds=12)
    assert size == 256 * KIB + 768 * KIB


def test_stream_ids_exhausted() -> None:
    client = YamuxConnection(is_client=True, config=NO_KEEPALIVE)
    client._next_id = 0xFFFFFFFF  # the last odd id
    assert client.open_stream() == 0xFFFFFFFF
    assert not client.can_open_stream
    with pytest.raises(StreamLimitError):
        client.open_stream()


@given(st.binary(max_size=600), st.integers(1, 64))
@settings(max_examples=300, deadline=None)
def test_arbitrary_input_raises_only_protocol_violations(data: bytes, chunk: int) -> None:
    """Whole or chunked, garbage yields events or a MuxerProtocolViolation, nothing else."""
    for step in (len(data) or 1, chunk):
        core = server_core(max_streams=8)
        core.receive_data(frame(WINDOW_UPDATE, SYN, 1, 0))
        try:
            for i in range(0, len(data), step):
                core.receive_data(data[i:i + step])
                while core.is_reading_paused:
                    core.data_to_send()
                    core.resume_reading()
        except MuxerProtocolViolation:
            assert core.is_closed
            assert frames_of(core.data_to_send())[0][0] == GO_AWAY


@given(st.lists(st.sampled_from([
    frame(DATA, 0, 1, body=b"abc"), frame(WINDOW_UPDATE, FIN, 1, 0), frame(DATA, RST, 1, 0),
    frame(WINDOW_UPDATE, 0, 1, 1000), frame(PING, SYN, 0, 7), frame(DATA, SYN, 3, body=b"x"),
    frame(WINDOW_UPDATE, ACK, 1, 0), frame(DATA, FIN, 3, 0),
]), max_size=12), st.integers(1, 40))
@settings(max_examples=200, deadline=None)
def test_same_events_however_the_bytes_are_chunked(frames: list[bytes], chunk: int) -> None:
    raw = b"".join(frames)

    def run(step: int) -> tuple[list[object], object, bytes]:
        core = server_core()
        events: list[object] = list(core.receive_data(frame(WINDOW_UPDATE, SYN, 1, 0)))
        raised: object = None
        try:
            for i in range(0, len(raw), step):
                events += core.receive_data(raw[i:i + step])
        except MuxerProtocolViolation as exc:
            raised = type(exc)
        events = [bytes(e.data) if isinstance(e, StreamDataReceived) else e for e in events]
        return events, raised, core.data_to_send()

    whole, raised_whole, out_whole = run(len(raw) or 1)
    chunked, raised_chunked, out_chunked = run(chunk)
    assert (raised_whole, out_whole) == (raised_chunked, out_chunked)
    if raised_whole is None:
        assert whole == chunked
    else:  # the events of the call that raised are not returned
        assert chunked[:len(whole)] == whole


def test_body_over_frame_cap_accepted_only_within_a_grown_window() -> None:
    """js-libp2p-yamux sends window-sized DATA frames once our window exceeds 1 MiB."""
    big = YamuxConfig(keepalive_interval=None, initial_window=2 * KIB * KIB,
                      max_connection_window=2 * KIB * KIB * 512)
    server = YamuxConnection(is_client=False, config=big)
    server.receive_data(frame(WINDOW_UPDATE, SYN, 1, 0))
    server.accept_stream(1)  # grants the extra credit: window now 2 MiB
    body = b"j" * (1536 * KIB)
    events = server.receive_data(frame(DATA, 0, 1, body=body))
    assert data_of(events, 1) == body
    with pytest.raises(MuxerProtocolViolation):  # unknown stream: the 1 MiB cap applies
        server.receive_data(frame(DATA, 0, 3, len(body)))


def test_empty_frame_flood_draws_from_the_same_budget() -> None:
    server = server_core(rst_burst=50, rst_rate=0.0)
    server.receive_data(frame(WINDOW_UPDATE, SYN, 1, 0))
    server.receive_data(frame(DATA, 0, 1, 0) * 50)  # no-progress frames, within budget
    assert not server.is_closed
    with pytest.raises(MuxerFloodError):
        server.receive_data(frame(DATA, 0, 1, 0))
    assert frames_of(server.data_to_send()) == [(GO_AWAY, 0, 0, 2)]


def test_goaway_error_names_unknown_codes() -> None:
    assert "0x1005" in str(GoAwayError(0x1005))
    assert "PROTOCOL_ERROR" in str(GoAwayError(1))

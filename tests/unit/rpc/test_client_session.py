"""ClientSessionState: handshake, request ids, replies, stale frames, timers (wire.md §3.3–§3.9)."""

from __future__ import annotations

import pytest
from plait.rpc._session import ClientSessionPhase, ClientSessionState
from plait.rpc.config import MAX_INTERRUPTED_REQUESTS, RpcClientConfig
from plait.rpc.errors import (
    RequestTooLargeError,
    RpcProtocolViolation,
    RpcStateError,
    SessionClosedError,
)
from plait.rpc.events import (
    HandshakeTimedOut,
    PongReceived,
    ResponseReceived,
    ResponseTimedOut,
    SessionAccepted,
    SessionEnded,
    SessionRejected,
)
from plait.rpc.proto.rpc_pb2 import RpcRequest, RpcSessionReply
from plait.rpc.status import RejectReason, StatusCode

from .helpers import frame, open_client, response, unframe

OK = StatusCode.OK
FIN, ACK = 1, 2


def sent_requests(client: ClientSessionState) -> list[RpcRequest]:
    return [RpcRequest.FromString(body) for body in unframe(client.data_to_send())]


# -- handshake -----------------------------------------------------------------------------


def test_handshake_accept_records_version_and_round_trip() -> None:
    client = ClientSessionState()
    assert client.phase is ClientSessionPhase.INITIAL
    client.initiate(10.0)
    assert client.phase is ClientSessionPhase.HANDSHAKING
    assert client.get_timer() == 100.0  # 90 s handshake timeout
    events = client.receive_data(frame(RpcSessionReply(accepted_version=7)), now=10.5)
    assert events == [SessionAccepted(version=7)]  # the version is not checked (as tari)
    assert client.is_idle
    assert client.accepted_version == 7
    assert client.last_request_latency == 0.5
    assert client.get_timer() is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\x10\x01\x18\x01", RejectReason.UNSUPPORTED_VERSION),
        (b"\x10\x01\x18\x02", RejectReason.NO_SERVER_SESSIONS_AVAILABLE),
        (b"\x10\x01\x18\x03", RejectReason.NO_CLIENT_SESSIONS_AVAILABLE),
        (b"\x10\x01\x18\x04", RejectReason.PROTOCOL_NOT_SUPPORTED),
        (b"\x10\x01\x18\x09", RejectReason.UNKNOWN),  # unknown value
        (b"\x10\x01", RejectReason.UNKNOWN),  # no reason
        (b"", RejectReason.UNKNOWN),  # no session_result at all
        (b"\x10\x00\x18\x02", RejectReason.NO_SERVER_SESSIONS_AVAILABLE),  # rejected=false set
    ],
)
def test_handshake_rejections(body: bytes, reason: RejectReason) -> None:
    client = ClientSessionState()
    client.initiate(0.0)
    # Bytes after the reply in the same read are ignored: the session is over.
    events = client.receive_data(frame(body) + response(1, payload=b"x"), now=0.0)
    assert events == [SessionRejected(reason=reason)]
    assert client.phase is ClientSessionPhase.CLOSED
    assert client.is_closed
    assert client.receive_data(b"more", now=0.0) == []
    with pytest.raises(SessionClosedError):
        client.send_request(1, b"", now=0.0)


def test_handshake_timeout() -> None:
    client = ClientSessionState(RpcClientConfig(handshake_timeout=5.0))
    client.initiate(1.0)
    assert client.handle_timer(5.999) == []
    assert client.handle_timer(6.0) == [HandshakeTimedOut()]
    assert client.phase is ClientSessionPhase.CLOSED
    assert client.get_timer() is None
    assert client.handle_timer(100.0) == []


def test_server_closing_during_the_handshake_ends_the_session() -> None:
    client = ClientSessionState()
    client.initiate(0.0)
    assert client.receive_data(b"", now=0.0) == [SessionEnded()]
    assert client.phase is ClientSessionPhase.CLOSED


def test_undecodable_handshake_reply_is_a_violation_and_fails_the_session() -> None:
    client = ClientSessionState()
    client.initiate(0.0)
    with pytest.raises(RpcProtocolViolation, match="RpcSessionReply"):
        client.receive_data(frame(b"\xff\xff"), now=0.0)
    assert client.phase is ClientSessionPhase.FAILED
    with pytest.raises(SessionClosedError):
        client.receive_data(b"", now=0.0)
    with pytest.raises(SessionClosedError):
        client.ping(now=0.0)


def test_commands_before_initiate_are_refused() -> None:
    client = ClientSessionState()
    with pytest.raises(RpcStateError):
        client.send_request(1, b"", now=0.0)
    assert client.receive_data(b"ignored", now=0.0) == []
    client.initiate(0.0)
    with pytest.raises(RpcStateError):
        client.initiate(0.0)


# -- requests ------------------------------------------------------------------------------


def test_request_ids_count_from_one_and_carry_method_deadline_payload() -> None:
    client = open_client(RpcClientConfig(deadline=7.9))
    for expected in (1, 2, 3):
        assert client.send_request(4, b"p", now=0.0) == expected
        [request] = sent_requests(client)
        assert (request.request_id, request.method, request.flags) == (expected, 4, 0)
        assert request.deadline == 7  # whole seconds, truncated
        assert request.payload == b"p"
        client.receive_data(response(expected, flags=FIN), now=0.0)


def test_unary_reply_with_fin_returns_to_idle() -> None:
    client = open_client()
    client.send_request(1, b"", now=0.0)
    assert client.request_in_flight == 1
    assert client.phase is ClientSessionPhase.AWAITING_RESPONSE
    events = client.receive_data(response(1, flags=FIN, payload=b"r"), now=0.1)
    assert events == [ResponseReceived(request_id=1, status=OK, payload=b"r", final=True)]
    assert client.is_idle
    assert client.request_in_flight is None
    assert client.get_timer() is None
    assert client.last_request_latency == 0.1


def test_unary_call_answered_by_a_stream_item_takes_it_and_interrupts() -> None:
    client = open_client()
    client.send_request(9, b"", now=0.0)
    client.data_to_send()
    events = client.receive_data(response(1, payload=b"first"), now=0.0)
    assert events == [ResponseReceived(request_id=1, status=OK, payload=b"first", final=True)]
    assert client.is_idle
    [interrupt] = sent_requests(client)
    assert (interrupt.request_id, interrupt.method, interrupt.flags) == (1, 9, FIN)
    assert interrupt.deadline == 120
    # The rest of that stream is skipped while the next request waits.
    client.send_request(1, b"", now=0.0)
    events = client.receive_data(
        response(1, payload=b"x") + response(1, flags=FIN) + response(2, flags=FIN), now=0.0
    )
    assert events == [ResponseReceived(request_id=2, status=OK, payload=b"", final=True)]


def test_streaming_items_then_empty_fin_terminator() -> None:
    client = open_client()
    client.send_request(3, b"", streaming=True, now=0.0)
    assert client.phase is ClientSessionPhase.STREAMING
    events = client.receive_data(response(1, payload=b"a") + response(1, payload=b"b"), now=1.0)
    assert events == [
        ResponseReceived(request_id=1, status=OK, payload=b"a", final=False),
        ResponseReceived(request_id=1, status=OK, payload=b"b", final=False),
    ]
    assert client.get_timer() == 181.0  # each item restarts deadline + grace
    assert client.phase is ClientSessionPhase.STREAMING
    events = client.receive_data(response(1, flags=FIN), now=1.5)
    assert events == [ResponseReceived(request_id=1, status=OK, payload=b"", final=True)]
    assert client.last_request_latency == 0.5  # measured from the previous item
    assert client.is_idle


def test_error_status_ends_the_request_even_without_fin() -> None:
    client = open_client()
    client.send_request(1, b"", streaming=True, now=0.0)
    events = client.receive_data(response(1, status=3, payload="nope ✓".encode()), now=0.0)
    assert events == [
        ResponseReceived(
            request_id=1, status=StatusCode.NOT_IMPLEMENTED, payload="nope ✓".encode(), final=True
        )
    ]
    assert client.is_idle


@pytest.mark.parametrize(
    ("frame_bytes", "message"),
    [
        (response(1, status=11, flags=FIN), "invalid status"),
        (response(0x10001, flags=FIN), "u16"),
        (response(1, flags=4), "flags"),
        (response(1, flags=0x101), "flags"),
        (response(1, flags=ACK), "unexpected ACK"),
        (response(7, flags=FIN), "does not match"),
        (frame(b"\x08"), "undecodable"),
    ],
)
def test_protocol_violations_end_the_session(frame_bytes: bytes, message: str) -> None:
    client = open_client()
    client.send_request(1, b"", now=0.0)
    with pytest.raises(RpcProtocolViolation, match=message):
        client.receive_data(frame_bytes, now=0.0)
    assert client.phase is ClientSessionPhase.FAILED
    assert client.get_timer() is None
    with pytest.raises(SessionClosedError):
        client.send_request(1, b"", now=0.0)


def test_unsolicited_frame_while_idle_is_a_violation() -> None:
    client = open_client()
    with pytest.raises(RpcProtocolViolation, match="does not match"):
        client.receive_data(response(1, flags=FIN), now=0.0)


def test_second_request_while_busy_is_refused_without_changing_state() -> None:
    client = open_client()
    client.send_request(1, b"", now=0.0)
    client.data_to_send()
    with pytest.raises(RpcStateError):
        client.send_request(1, b"", now=0.0)
    with pytest.raises(RpcStateError):
        client.ping(now=0.0)
    assert client.request_in_flight == 1
    assert client.data_to_send() == b""


def test_too_large_request_is_refused_before_sending_and_keeps_the_session() -> None:
    client = open_client(RpcClientConfig(max_frame_size=64))
    with pytest.raises(RequestTooLargeError, match="exceeds"):
        client.send_request(1, bytes(60), now=0.0)
    assert client.data_to_send() == b""
    assert client.is_idle
    assert client.send_request(1, bytes(50), now=0.0) == 1  # counter not consumed


def test_too_large_request_at_the_default_4_mib_limit() -> None:
    client = open_client()
    with pytest.raises(RequestTooLargeError):
        client.send_request(1, bytes(4 * 1024 * 1024), now=0.0)
    assert client.is_idle


def test_method_must_fit_u32() -> None:
    client = open_client()
    with pytest.raises(ValueError, match="u32"):
        client.send_request(2**32, b"", now=0.0)
    assert client.send_request(0, b"", now=0.0) == 1  # method 0 is allowed on the wire


# -- interrupts and stale frames ----------------------------------------------------------


def test_interrupt_sends_fin_with_the_current_id_and_method() -> None:
    client = open_client()
    client.send_request(8, b"", streaming=True, now=0.0)
    client.data_to_send()
    assert client.interrupt()
    [fin] = sent_requests(client)
    assert (fin.request_id, fin.method, fin.flags, fin.deadline) == (1, 8, FIN, 120)
    assert client.is_idle
    assert client.get_timer() is None
    assert not client.interrupt()  # nothing in flight any more
    assert client.data_to_send() == b""


def test_stale_frames_of_the_interrupted_request_are_skipped() -> None:
    client = open_client()
    client.send_request(8, b"", streaming=True, now=0.0)
    client.interrupt()
    # While idle, leftovers of request 1 are skipped.
    assert client.receive_data(response(1, payload=b"x") * 5, now=0.0) == []
    client.send_request(8, b"", now=0.0)
    events = client.receive_data(response(1, flags=FIN) + response(2, flags=FIN), now=0.0)
    assert events == [ResponseReceived(request_id=2, status=OK, payload=b"", final=True)]


@pytest.mark.parametrize(
    "last_frame", [response(1, flags=FIN), response(1, status=int(StatusCode.GENERAL))]
)
def test_an_interrupted_request_is_skipped_uncounted_until_its_last_frame(
    last_frame: bytes,
) -> None:
    client = open_client(RpcClientConfig(max_stale_responses=0))
    client.send_request(8, b"", streaming=True, now=0.0)
    client.interrupt()
    client.send_request(8, b"", now=0.0)
    # Late items the server wrote before it read the FIN: none counts as stale.
    assert client.receive_data(response(1, payload=b"x") * 100 + last_frame, now=0.0) == []
    assert client.request_in_flight == 2
    # After its last frame the request is over: a frame of it is only a stale frame of the
    # previous request (tari's rule, here with no tolerance).
    with pytest.raises(RpcProtocolViolation, match="stale"):
        client.receive_data(response(1, payload=b"x"), now=0.0)
    assert client.phase is ClientSessionPhase.FAILED


def test_skipped_frames_do_not_restart_the_reply_timer() -> None:
    client = open_client(RpcClientConfig(deadline=1.0, deadline_grace_period=1.0))
    client.send_request(8, b"", streaming=True, now=0.0)
    client.interrupt()
    client.send_request(8, b"", now=0.0)
    assert client.receive_data(response(1, payload=b"x") * 10, now=1.5) == []
    assert client.get_timer() == 2.0
    assert client.handle_timer(2.0) == [ResponseTimedOut(request_id=2)]


def test_frames_of_every_interrupted_request_are_skipped_and_unknown_ids_are_violations() -> None:
    client = open_client()
    for _ in range(3):
        client.send_request(1, b"", streaming=True, now=0.0)
        client.interrupt()
    client.send_request(1, b"", now=0.0)  # request 4; 1, 2 and 3 were interrupted
    late = response(1, payload=b"a") * 30 + response(2, payload=b"b") * 30 + response(3) * 30
    events = client.receive_data(late + response(2, flags=FIN) + response(4, flags=FIN), now=0.0)
    assert events == [ResponseReceived(request_id=4, status=OK, payload=b"", final=True)]
    client.send_request(1, b"", now=0.0)  # request 5
    assert client.receive_data(response(1) + response(3), now=0.0) == []  # still interrupted
    with pytest.raises(RpcProtocolViolation, match="does not match"):
        client.receive_data(response(7), now=0.0)  # never sent


def test_only_the_latest_interrupted_requests_are_remembered() -> None:
    client = open_client()
    for _ in range(MAX_INTERRUPTED_REQUESTS + 1):
        client.send_request(1, b"", streaming=True, now=0.0)
        client.interrupt()
    client.send_request(1, b"", now=0.0)
    assert client.receive_data(response(2) + response(MAX_INTERRUPTED_REQUESTS + 1), now=0.0) == []
    with pytest.raises(RpcProtocolViolation, match="does not match"):
        client.receive_data(response(1), now=0.0)  # the oldest was forgotten


def test_at_most_twenty_late_frames_of_a_timed_out_request_in_a_row() -> None:
    client = open_client(RpcClientConfig(deadline=1.0, deadline_grace_period=1.0))
    client.send_request(8, b"", streaming=True, now=0.0)
    assert client.handle_timer(2.0) == [ResponseTimedOut(request_id=1)]  # no FIN is sent
    client.send_request(8, b"", now=2.0)
    assert client.receive_data(response(1, payload=b"x") * 20, now=2.0) == []
    with pytest.raises(RpcProtocolViolation, match="stale"):
        client.receive_data(response(1, payload=b"x"), now=2.0)


def test_stale_count_spans_idle_and_resets_on_a_good_frame() -> None:
    client = open_client(
        RpcClientConfig(deadline=1.0, deadline_grace_period=1.0, max_stale_responses=3)
    )
    client.send_request(8, b"", streaming=True, now=0.0)
    client.handle_timer(2.0)
    client.receive_data(response(1) * 2, now=2.0)  # 2 while idle
    client.send_request(8, b"", streaming=True, now=2.0)
    client.receive_data(response(1), now=2.0)  # 3rd
    client.receive_data(response(2, payload=b"ok"), now=2.0)  # resets
    client.receive_data(response(1) * 3, now=2.0)
    with pytest.raises(RpcProtocolViolation):
        client.receive_data(response(1), now=2.0)


def test_only_the_previous_request_counts_as_timed_out() -> None:
    client = open_client(RpcClientConfig(deadline=1.0, deadline_grace_period=1.0))
    for _ in range(2):
        client.send_request(1, b"", now=0.0)
        client.handle_timer(2.0)
    client.send_request(1, b"", now=2.0)  # request 3; request 2 is the previous one
    assert client.receive_data(response(2), now=2.0) == []
    with pytest.raises(RpcProtocolViolation, match="does not match"):
        client.receive_data(response(1), now=2.0)


def test_an_interrupted_id_is_forgotten_when_it_comes_round_again() -> None:
    client = open_client()
    client.send_request(1, b"", streaming=True, now=0.0)
    client.interrupt()  # request 1
    for _ in range(65534):  # 2 .. 65535, answered
        request_id = client.send_request(1, b"", now=0.0)
        client.receive_data(response(request_id, flags=FIN), now=0.0)
    assert client.send_request(1, b"", streaming=True, now=0.0) == 1  # the id is reused
    # Frames of the new request 1 are delivered, not skipped as the interrupted one's.
    assert client.receive_data(response(1, payload=b"new"), now=0.0) == [
        ResponseReceived(request_id=1, status=OK, payload=b"new", final=False)
    ]
    assert client.receive_data(response(1, flags=FIN), now=0.0)[0].final


def test_request_ids_wrap_past_65535_skipping_zero_and_stale_frames_survive_the_wrap() -> None:
    client = open_client()
    ids = []
    for _ in range(65534):
        request_id = client.send_request(1, b"", now=0.0)
        ids.append(request_id)
        client.receive_data(response(request_id, flags=FIN), now=0.0)
    assert ids[:2] == [1, 2]
    assert ids[-1] == 65534
    assert client.send_request(1, b"", streaming=True, now=0.0) == 65535
    client.interrupt()
    assert client.send_request(1, b"", now=0.0) == 1  # 0 is skipped
    # Late items of 65535 are skipped although 65535 + 1 wraps to 0, not 1.
    assert client.receive_data(response(65535, payload=b"late"), now=0.0) == []
    assert client.receive_data(response(1, flags=FIN), now=0.0)[0].request_id == 1
    assert client.send_request(1, b"", now=0.0) == 2


# -- timers -------------------------------------------------------------------------------


def test_response_timeout_keeps_the_session_and_skips_the_late_reply() -> None:
    client = open_client(RpcClientConfig(deadline=1.0, deadline_grace_period=1.0))
    client.send_request(1, b"", now=10.0)
    assert client.get_timer() == 12.0
    assert client.handle_timer(11.9) == []
    assert client.handle_timer(12.0) == [ResponseTimedOut(request_id=1)]
    assert client.is_idle
    assert client.data_to_send().count(b"\x18\x01") == 0  # no interrupt on timeout
    client.send_request(1, b"", now=13.0)
    events = client.receive_data(response(1, flags=FIN) + response(2, flags=FIN), now=13.0)
    assert [e.request_id for e in events if isinstance(e, ResponseReceived)] == [2]


def test_timer_is_restarted_by_each_stream_item() -> None:
    client = open_client(RpcClientConfig(deadline=1.0, deadline_grace_period=0.5))
    client.send_request(1, b"", streaming=True, now=0.0)
    client.receive_data(response(1, payload=b"a"), now=1.4)
    assert client.handle_timer(1.5) == []
    assert client.get_timer() == pytest.approx(2.9)
    assert client.handle_timer(2.9) == [ResponseTimedOut(request_id=1)]


def test_no_deadline_means_no_reply_timer() -> None:
    client = open_client(RpcClientConfig(deadline=None))
    client.send_request(1, b"", now=0.0)
    assert client.get_timer() is None
    assert client.handle_timer(1e9) == []
    assert client.request_in_flight == 1


# -- ping ---------------------------------------------------------------------------------


def test_ping_and_pong() -> None:
    client = open_client()
    client.ping(now=1.0)
    [ping] = sent_requests(client)
    assert (ping.request_id, ping.method, ping.flags, ping.deadline) == (0, 0, ACK, 120)
    assert client.request_in_flight == 0
    assert client.phase is ClientSessionPhase.AWAITING_PONG
    assert client.receive_data(response(0, flags=ACK), now=1.25) == [PongReceived(latency=0.25)]
    assert client.is_idle
    assert client.send_request(1, b"", now=2.0) == 1  # pings do not use up request ids


def test_pong_id_is_not_checked() -> None:
    client = open_client()
    client.ping(now=0.0)
    assert client.receive_data(response(77, flags=ACK), now=0.0) == [PongReceived(latency=0.0)]


@pytest.mark.parametrize(
    ("frame_bytes", "message"),
    [(response(0, status=1, flags=ACK), "status"), (response(0), "without ACK")],
)
def test_bad_pongs_end_the_session(frame_bytes: bytes, message: str) -> None:
    client = open_client()
    client.ping(now=0.0)
    with pytest.raises(RpcProtocolViolation, match=message):
        client.receive_data(frame_bytes, now=0.0)
    assert client.phase is ClientSessionPhase.FAILED


def test_ping_skips_leftovers_of_an_interrupted_stream() -> None:
    client = open_client()
    client.send_request(1, b"", streaming=True, now=0.0)
    client.interrupt()
    client.ping(now=0.0)
    events = client.receive_data(response(1, payload=b"x") + response(0, flags=ACK), now=0.0)
    assert events == [PongReceived(latency=0.0)]


def test_ping_skips_leftovers_of_every_interrupted_stream_uncounted() -> None:
    client = open_client(RpcClientConfig(max_stale_responses=0))
    for _ in range(2):
        client.send_request(1, b"", streaming=True, now=0.0)
        client.interrupt()
    client.ping(now=0.0)
    leftovers = response(1, payload=b"x") * 5 + response(2, payload=b"y") * 5
    events = client.receive_data(leftovers + response(0, flags=ACK), now=0.0)
    assert events == [PongReceived(latency=0.0)]


def test_ping_timeout_then_the_late_pong_is_skipped() -> None:
    client = open_client(RpcClientConfig(deadline=1.0, deadline_grace_period=1.0))
    client.ping(now=0.0)
    assert client.handle_timer(2.0) == [ResponseTimedOut(request_id=0)]
    assert client.is_idle
    client.send_request(1, b"", now=3.0)
    events = client.receive_data(response(0, flags=ACK) + response(1, flags=FIN), now=3.0)
    assert [type(e) for e in events] == [ResponseReceived]
    # Only one late pong was owed.
    client.send_request(1, b"", now=3.0)
    with pytest.raises(RpcProtocolViolation, match="ACK"):
        client.receive_data(response(0, flags=ACK), now=3.0)


def test_interrupted_ping_sends_nothing_and_tolerates_its_pong() -> None:
    client = open_client()
    client.ping(now=0.0)
    client.data_to_send()
    assert client.interrupt()
    assert client.data_to_send() == b""
    assert client.is_idle
    assert client.receive_data(response(0, flags=ACK), now=0.0) == []


# -- end of stream and close --------------------------------------------------------------


def test_server_eof_ends_the_session_and_clears_the_timer() -> None:
    client = open_client()
    client.send_request(1, b"", now=0.0)
    assert client.receive_data(b"", now=0.0) == [SessionEnded()]
    assert client.phase is ClientSessionPhase.CLOSED
    assert client.get_timer() is None
    assert client.receive_data(b"", now=0.0) == []


def test_eof_inside_a_frame_is_a_violation() -> None:
    client = open_client()
    client.send_request(1, b"", now=0.0)
    client.receive_data(response(1, flags=FIN, payload=b"abc")[:5], now=0.0)
    with pytest.raises(RpcProtocolViolation, match="inside a frame"):
        client.receive_data(b"", now=0.0)


def test_local_close_is_idempotent_and_stops_everything() -> None:
    client = open_client()
    client.send_request(1, b"", now=0.0)
    client.close()
    client.close()
    assert client.is_closed
    assert client.get_timer() is None
    assert client.receive_data(response(1, flags=FIN), now=0.0) == []
    with pytest.raises(SessionClosedError):
        client.ping(now=0.0)
    assert "CLOSED" in repr(client)

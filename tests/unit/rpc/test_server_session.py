"""ServerSessionState: handshake, deadline and flag checks, replies, interrupts (wire.md §3)."""

from __future__ import annotations

import itertools

import pytest
from plait.rpc._session import ServerSessionPhase, ServerSessionState, _response_frame
from plait.rpc.config import RpcServerConfig
from plait.rpc.errors import RpcProtocolViolation, RpcStateError, SessionClosedError
from plait.rpc.events import (
    InterruptReceived,
    PingReceived,
    RequestReceived,
    SessionAccepted,
    SessionEnded,
    SessionRejected,
)
from plait.rpc.proto.rpc_pb2 import RpcRequest, RpcResponse, RpcSession, RpcSessionReply
from plait.rpc.status import RejectReason, RpcStatus, StatusCode

from .helpers import frame, open_server, unframe

FIN, ACK = 1, 2
MAX_PAYLOAD = 4 * 1024 * 1024 - 24


def request(
    request_id: int = 1, method: int = 1, flags: int = 0, deadline: int = 120, payload: bytes = b""
) -> bytes:
    return frame(
        RpcRequest(
            request_id=request_id, method=method, flags=flags, deadline=deadline, payload=payload
        )
    )


def sent(server: ServerSessionState) -> list[RpcResponse]:
    return [RpcResponse.FromString(body) for body in unframe(server.data_to_send())]


def handling(config: RpcServerConfig | None = None, request_id: int = 1) -> ServerSessionState:
    server = open_server(config)
    [event] = server.receive_data(request(request_id))
    assert isinstance(event, RequestReceived)
    return server


# -- handshake -----------------------------------------------------------------------------


@pytest.mark.parametrize("versions", [[], [7], [1, 2]])
def test_no_common_version_is_rejected_with_unsupported_version(versions: list[int]) -> None:
    server = ServerSessionState()
    events = server.receive_data(frame(RpcSession(supported_versions=versions)))
    assert events == [SessionRejected(reason=RejectReason.UNSUPPORTED_VERSION)]
    assert server.data_to_send() == frame(b"\x10\x01\x18\x01")
    assert server.phase is ServerSessionPhase.CLOSED
    assert server.receive_data(request()) == []


def test_frames_after_an_unsupported_handshake_in_the_same_read_are_ignored() -> None:
    server = ServerSessionState()
    events = server.receive_data(frame(RpcSession(supported_versions=[9])) + request())
    assert events == [SessionRejected(reason=RejectReason.UNSUPPORTED_VERSION)]
    assert server.data_to_send() == frame(b"\x10\x01\x18\x01")


def test_first_server_version_the_client_lists_is_chosen() -> None:
    server = ServerSessionState(RpcServerConfig(supported_versions=(3, 0)))
    events = server.receive_data(frame(RpcSession(supported_versions=[0, 5, 3])))
    assert events == [SessionAccepted(version=3)]
    reply = RpcSessionReply.FromString(unframe(server.data_to_send())[0])
    assert reply.accepted_version == 3


def test_handshake_and_first_request_in_one_read() -> None:
    server = ServerSessionState()
    events = server.receive_data(frame(RpcSession(supported_versions=[0])) + request(1, 2))
    assert events == [
        SessionAccepted(version=0),
        RequestReceived(request_id=1, method=2, deadline=120.0, payload=b""),
    ]


@pytest.mark.parametrize("reason", list(RejectReason))
def test_reject_before_reading_the_handshake(reason: RejectReason) -> None:
    server = ServerSessionState()
    server.reject(reason)
    reply = RpcSessionReply.FromString(unframe(server.data_to_send())[0])
    assert reply.rejected
    assert reply.reject_reason == reason
    assert server.phase is ServerSessionPhase.CLOSED
    assert server.receive_data(frame(RpcSession(supported_versions=[0]))) == []
    with pytest.raises(SessionClosedError):
        server.reject(reason)


def test_reject_after_the_handshake_is_misuse() -> None:
    server = open_server()
    with pytest.raises(RpcStateError):
        server.reject(RejectReason.NO_SERVER_SESSIONS_AVAILABLE)
    assert server.phase is ServerSessionPhase.AWAITING_REQUEST


def test_malformed_handshake_is_a_violation() -> None:
    server = ServerSessionState()
    with pytest.raises(RpcProtocolViolation, match="RpcSession"):
        server.receive_data(frame(b"\xff\xff"))
    assert server.phase is ServerSessionPhase.FAILED
    with pytest.raises(SessionClosedError):
        server.receive_data(b"")


def test_client_eof_before_the_handshake() -> None:
    server = ServerSessionState()
    assert server.receive_data(b"") == [SessionEnded()]
    assert server.phase is ServerSessionPhase.CLOSED


# -- request checks ------------------------------------------------------------------------


def test_request_is_dispatched_with_its_deadline() -> None:
    server = open_server()
    events = server.receive_data(request(9, method=0, deadline=30, payload=b"p"))
    assert events == [RequestReceived(request_id=9, method=0, deadline=30.0, payload=b"p")]
    assert server.phase is ServerSessionPhase.HANDLING
    assert server.active_request == 9


def test_huge_deadline_is_clamped_to_the_server_maximum() -> None:
    server = open_server(RpcServerConfig(max_deadline=600))
    [event] = server.receive_data(request(deadline=2**64 - 1))
    assert isinstance(event, RequestReceived)
    assert event.deadline == 600.0


@pytest.mark.parametrize("flags", [0, FIN, ACK, 4, 0x100])
def test_deadline_below_minimum_is_bad_request_checked_before_flags(flags: int) -> None:
    server = open_server()
    assert server.receive_data(request(3, flags=flags, deadline=0)) == []
    [reply] = sent(server)
    assert (reply.request_id, reply.status, reply.flags) == (3, StatusCode.BAD_REQUEST, FIN)
    assert reply.payload.decode() == "Invalid deadline (0s). The deadline MUST be greater than 1s."
    assert server.phase is ServerSessionPhase.AWAITING_REQUEST  # the session goes on
    assert server.receive_data(request(4)) != []


def test_minimum_deadline_zero_accepts_deadline_zero() -> None:
    server = open_server(RpcServerConfig(min_deadline=0))
    assert server.receive_data(request(deadline=0)) == [
        RequestReceived(request_id=1, method=1, deadline=0.0, payload=b"")
    ]


@pytest.mark.parametrize("flags", [4, 0x80, 0x100, 0xFFFFFFFF])
def test_invalid_flags_end_the_session(flags: int) -> None:
    server = open_server()
    with pytest.raises(RpcProtocolViolation, match="flags"):
        server.receive_data(request(flags=flags))
    assert server.phase is ServerSessionPhase.FAILED


def test_malformed_request_ends_the_session() -> None:
    server = open_server()
    with pytest.raises(RpcProtocolViolation, match="RpcRequest"):
        server.receive_data(frame(b"\x08"))
    assert server.is_closed


def test_fin_while_idle_is_ignored() -> None:
    server = open_server()
    assert server.receive_data(request(5, flags=FIN)) == []
    assert server.data_to_send() == b""
    assert server.phase is ServerSessionPhase.AWAITING_REQUEST


def test_ping_is_answered_at_once_with_the_echoed_id() -> None:
    server = open_server()
    assert server.receive_data(request(0, method=0, flags=ACK)) == [PingReceived()]
    assert server.data_to_send() == frame(b"\x18\x02")
    server.receive_data(request(5, method=0, flags=ACK))
    assert server.data_to_send() == frame(b"\x08\x05\x18\x02")
    assert server.phase is ServerSessionPhase.AWAITING_REQUEST


def test_fin_and_ack_together_is_an_interrupt_not_a_ping() -> None:
    server = open_server()
    assert server.receive_data(request(flags=FIN | ACK)) == []
    assert server.data_to_send() == b""


def test_oversize_frame_fails_on_the_header() -> None:
    server = open_server()
    with pytest.raises(RpcProtocolViolation, match="exceeds"):
        server.receive_data(b"\x00\x40\x00\x01")
    assert server.phase is ServerSessionPhase.FAILED


# -- replies -------------------------------------------------------------------------------


def test_unary_reply_then_next_request() -> None:
    server = handling()
    assert server.send_response(1, b"r")
    [reply] = sent(server)
    assert (reply.request_id, reply.status, reply.flags, reply.payload) == (1, 0, FIN, b"r")
    assert server.phase is ServerSessionPhase.AWAITING_REQUEST
    assert server.active_request is None
    assert server.receive_data(request(2)) != []


def test_stream_items_then_terminator() -> None:
    server = handling()
    assert server.send_item(1, b"a")
    assert server.phase is ServerSessionPhase.STREAMING
    assert server.send_item(1, b"b")
    assert server.end_stream(1)
    assert [(r.flags, r.payload) for r in sent(server)] == [(0, b"a"), (0, b"b"), (FIN, b"")]
    assert server.phase is ServerSessionPhase.AWAITING_REQUEST


def test_stream_with_zero_items_sends_only_the_terminator() -> None:
    server = handling()
    assert server.end_stream(1)
    assert server.data_to_send() == frame(b"\x08\x01\x18\x01")


def test_error_after_items_ends_the_stream_without_terminator() -> None:
    server = handling()
    server.send_item(1, b"This is ok")
    assert server.send_error(1, RpcStatus.bad_request("This is a problem"))
    replies = sent(server)
    assert [(r.status, r.flags) for r in replies] == [(0, 0), (1, FIN)]
    assert replies[1].payload == b"This is a problem"
    assert server.phase is ServerSessionPhase.AWAITING_REQUEST


def test_send_error_refuses_ok() -> None:
    server = handling()
    with pytest.raises(ValueError, match="non-OK"):
        server.send_error(1, RpcStatus.ok())
    assert server.active_request == 1


def test_unary_reply_after_stream_items_is_misuse() -> None:
    server = handling()
    server.send_item(1, b"a")
    with pytest.raises(RpcStateError):
        server.send_response(1, b"r")
    assert server.phase is ServerSessionPhase.STREAMING


def test_commands_for_another_request_are_dropped() -> None:
    server = handling()
    assert not server.send_response(2, b"r")
    assert not server.send_item(2, b"r")
    assert not server.end_stream(2)
    assert not server.send_error(2, RpcStatus.general("x"))
    assert not server.abandon_request(2)
    assert server.data_to_send() == b""
    assert server.active_request == 1


@pytest.mark.parametrize(
    ("size", "ok"), [(MAX_PAYLOAD - 1, True), (MAX_PAYLOAD, True), (MAX_PAYLOAD + 1, False)]
)
def test_response_size_boundary(size: int, ok: bool) -> None:
    server = handling()
    assert server.max_response_payload_size == MAX_PAYLOAD == 4194280
    assert server.send_response(1, bytes(size))
    [reply] = sent(server)
    if ok:
        assert (reply.status, len(reply.payload)) == (0, size)
    else:
        assert (reply.status, reply.flags) == (StatusCode.MALFORMED_RESPONSE, FIN)
        assert reply.payload.decode() == (
            "The response size exceeded the maximum allowed payload size. "
            f"Max = {MAX_PAYLOAD} bytes, Got = {size} bytes"
        )
    # The session survives either way.
    assert server.phase is ServerSessionPhase.AWAITING_REQUEST
    assert server.receive_data(request(2)) != []


def test_oversize_stream_item_becomes_malformed_response_and_ends_the_stream() -> None:
    server = handling(RpcServerConfig(max_frame_size=124))  # payload limit 100
    assert server.send_item(1, bytes(100))
    assert not server.send_item(1, bytes(101))
    assert [(r.status, r.flags) for r in sent(server)] == [(0, 0), (5, FIN)]
    assert server.phase is ServerSessionPhase.AWAITING_REQUEST
    assert not server.end_stream(1)  # the request is over


# -- interrupts, deadlines, end ------------------------------------------------------------


@pytest.mark.parametrize("started", [False, True])
def test_interrupt_stops_the_request_and_late_commands_are_dropped(started: bool) -> None:
    server = handling()
    if started:
        server.send_item(1, b"a")
        server.data_to_send()
    assert server.receive_data(request(1, flags=FIN)) == [InterruptReceived(request_id=1)]
    assert server.phase is ServerSessionPhase.AWAITING_REQUEST
    assert not server.send_item(1, b"late")
    assert not server.end_stream(1)
    assert server.data_to_send() == b""
    assert server.receive_data(request(2)) != []  # the session survives


def test_interrupt_is_not_subject_to_the_deadline_check() -> None:
    server = handling()
    assert server.receive_data(request(1, flags=FIN, deadline=0)) == [
        InterruptReceived(request_id=1)
    ]
    assert server.data_to_send() == b""


def test_leftover_interrupt_of_another_request_is_ignored_while_streaming() -> None:
    server = handling(request_id=2)
    server.send_item(2, b"a")
    assert server.receive_data(request(1, flags=FIN)) == []
    assert server.phase is ServerSessionPhase.STREAMING


@pytest.mark.parametrize("started", [False, True])
@pytest.mark.parametrize("flags", [0, ACK])
def test_unexpected_request_while_busy_ends_the_session(started: bool, flags: int) -> None:
    server = handling()
    if started:
        server.send_item(1, b"a")
    with pytest.raises(RpcProtocolViolation, match="in progress"):
        server.receive_data(request(2, flags=flags))
    assert server.phase is ServerSessionPhase.FAILED
    with pytest.raises(SessionClosedError):
        server.send_item(1, b"a")


def test_abandon_after_the_deadline_sends_nothing() -> None:
    server = handling()
    server.send_item(1, b"a")
    server.data_to_send()
    assert server.abandon_request(1)
    assert server.data_to_send() == b""
    assert server.phase is ServerSessionPhase.AWAITING_REQUEST
    assert not server.send_item(1, b"late")


def test_client_eof_while_handling_ends_the_session() -> None:
    server = handling()
    assert server.receive_data(b"") == [SessionEnded()]
    assert server.phase is ServerSessionPhase.CLOSED
    assert server.active_request is None
    with pytest.raises(SessionClosedError):
        server.send_response(1, b"")


def test_eof_inside_a_frame_is_a_violation() -> None:
    server = open_server()
    server.receive_data(request()[:3])
    with pytest.raises(RpcProtocolViolation, match="inside a frame"):
        server.receive_data(b"")


def test_local_close_is_idempotent() -> None:
    server = handling()
    server.close()
    server.close()
    assert server.is_closed
    assert server.receive_data(request(2)) == []
    assert "CLOSED" in repr(server)


# -- encoding of responses ----------------------------------------------------------------


def test_responses_are_encoded_byte_for_byte_as_the_protobuf_runtime_does() -> None:
    """The server writes RpcResponse frames without building the message (so a large payload
    is not copied in and out of it); the bytes must be the runtime's own."""
    for request_id, status, flags, size in itertools.product(
        (0, 1, 127, 128, 16383, 16384, 65535, 2**32 - 1),
        (0, 1, 10, 255),
        (0, FIN, ACK, FIN | ACK),
        (0, 1, 127, 128, 20000, 2**21),
    ):
        payload = bytes([request_id % 251]) * size
        expected = frame(
            RpcResponse(request_id=request_id, status=status, flags=flags, payload=payload)
        )
        head, body = _response_frame(request_id, payload, 2**22, status=status, flags=flags)
        assert body is payload  # queued as it is, not copied
        assert head + body == expected, (request_id, status, flags, size)


def test_replies_from_any_buffer_are_queued_as_the_runtime_encodes_them() -> None:
    server = handling()
    data = bytearray(b"item")
    assert server.send_item(1, data)
    data[:] = b"XXXX"  # a mutable buffer may change after the call: it was copied
    assert server.send_item(1, memoryview(b"abc"))
    assert server.send_error(1, RpcStatus(StatusCode.NOT_FOUND, "gone"))
    assert server.data_to_send() == (
        frame(RpcResponse(request_id=1, payload=b"item"))
        + frame(RpcResponse(request_id=1, payload=b"abc"))
        + frame(RpcResponse(request_id=1, status=7, flags=FIN, payload=b"gone"))
    )

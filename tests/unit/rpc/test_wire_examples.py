"""The byte examples of wire.md §3.2, produced and accepted by the session cores."""

from __future__ import annotations

from plait.rpc._session import ClientSessionState, ServerSessionState
from plait.rpc.config import RpcClientConfig, RpcServerConfig
from plait.rpc.events import (
    PingReceived,
    PongReceived,
    RequestReceived,
    ResponseReceived,
    SessionAccepted,
    SessionRejected,
)
from plait.rpc.status import RejectReason, RpcStatus, StatusCode

from .helpers import frame, open_client, open_server

P = b"hello"


def test_client_session_message() -> None:
    client = ClientSessionState()
    client.initiate(0.0)
    assert client.data_to_send() == bytes.fromhex("00000003 0a0100")


def test_server_accept_writes_the_oneof_although_zero() -> None:
    server = ServerSessionState()
    assert server.receive_data(bytes.fromhex("00000003 0a0100")) == [SessionAccepted(version=0)]
    assert server.data_to_send() == bytes.fromhex("00000002 0800")


def test_server_rejects_no_server_sessions_and_no_client_sessions() -> None:
    for reason, body in [
        (RejectReason.NO_SERVER_SESSIONS_AVAILABLE, "10011802"),
        (RejectReason.NO_CLIENT_SESSIONS_AVAILABLE, "10011803"),
        (RejectReason.PROTOCOL_NOT_SUPPORTED, "10011804"),
    ]:
        server = ServerSessionState()
        server.reject(reason)
        assert server.data_to_send() == frame(bytes.fromhex(body))
        client = ClientSessionState()
        client.initiate(0.0)
        assert client.receive_data(frame(bytes.fromhex(body)), now=0.0) == [
            SessionRejected(reason=reason)
        ]


def test_ping_request_and_reply() -> None:
    client = open_client()
    client.ping(now=0.0)
    assert client.data_to_send() == frame(bytes.fromhex("18022078"))
    server = open_server()
    assert server.receive_data(frame(bytes.fromhex("18022078"))) == [PingReceived()]
    assert server.data_to_send() == frame(bytes.fromhex("1802"))
    [pong] = client.receive_data(frame(bytes.fromhex("1802")), now=0.25)
    assert pong == PongReceived(latency=0.25)


def test_request_unary_reply_stream_item_stream_end_and_error() -> None:
    client = open_client()
    assert client.send_request(1, P, now=0.0) == 1
    request = bytes.fromhex("0801 1001 2078 52") + bytes([len(P)]) + P
    assert client.data_to_send() == frame(request)

    server = open_server()
    assert server.receive_data(frame(request)) == [
        RequestReceived(request_id=1, method=1, deadline=120.0, payload=P)
    ]
    assert server.send_response(1, P)
    unary = bytes.fromhex("0801 1801 52") + bytes([len(P)]) + P
    assert server.data_to_send() == frame(unary)
    assert client.receive_data(frame(unary), now=0.0) == [
        ResponseReceived(request_id=1, status=StatusCode.OK, payload=P, final=True)
    ]

    server.receive_data(frame(request))
    assert server.send_item(1, P)
    assert server.data_to_send() == frame(bytes.fromhex("0801 52") + bytes([len(P)]) + P)
    assert server.end_stream(1)
    assert server.data_to_send() == frame(bytes.fromhex("0801 1801"))

    server.receive_data(frame(request))
    assert server.send_error(1, RpcStatus.not_found("no"))
    assert server.data_to_send() == frame(bytes.fromhex("0801 1007 1801 5202") + b"no")


def test_empty_unary_message_omits_the_payload() -> None:
    server = open_server(RpcServerConfig(min_deadline=0))
    server.receive_data(frame(bytes.fromhex("0805 1002")))
    server.send_response(5, b"")
    assert server.data_to_send() == frame(bytes.fromhex("0805 1801"))


def test_client_without_deadline_sends_no_deadline_field() -> None:
    client = open_client(RpcClientConfig(deadline=None))
    client.send_request(2, b"", now=0.0)
    assert client.data_to_send() == frame(bytes.fromhex("0801 1002"))
    assert client.get_timer() is None

"""Client and server cores talking through a fake wire, with any chunking (style.md §11)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from plait.rpc._session import ClientSessionState, ServerSessionState
from plait.rpc.config import RpcServerConfig
from plait.rpc.errors import RpcProtocolViolation
from plait.rpc.events import (
    InterruptReceived,
    PingReceived,
    PongReceived,
    RequestReceived,
    ResponseReceived,
)
from plait.rpc.status import RpcStatus, StatusCode

from .helpers import CorePair, open_client, open_server

OK = StatusCode.OK


def run_conversation(pair: CorePair) -> list[object]:
    """A session exercising every kind of exchange; returns the client's events."""
    seen: list[object] = []
    pair.handshake()
    client, server = pair.client, pair.server

    # Unary.
    client.send_request(1, b"Yathvan", now=pair.now)
    [req] = pair.to_server()
    assert isinstance(req, RequestReceived)
    assert req.payload == b"Yathvan"
    server.send_response(req.request_id, b"Jambo " + req.payload)
    seen += pair.to_client()

    # Stream of 4 items.
    client.send_request(3, b"", streaming=True, now=pair.now)
    [req] = pair.to_server()
    for item in (b"Sawubona", b"Jambo", b"Bonjour", b"Hello"):
        server.send_item(req.request_id, item)
    server.end_stream(req.request_id)
    seen += pair.to_client()

    # Error before any item.
    client.send_request(4, b"x", streaming=True, now=pair.now)
    [req] = pair.to_server()
    server.send_error(req.request_id, RpcStatus.bad_request("What does 'x' mean?"))
    seen += pair.to_client()

    # Ping.
    client.ping(now=pair.now)
    assert pair.to_server() == [PingReceived()]
    seen += pair.to_client()

    # A stream interrupted after one item, with more already on the wire.
    client.send_request(8, b"", streaming=True, now=pair.now)
    [req] = pair.to_server()
    server.send_item(req.request_id, b"first")
    seen += pair.to_client()
    server.send_item(req.request_id, b"in flight")
    client.interrupt()
    assert pair.to_server() == [InterruptReceived(request_id=req.request_id)]
    assert not server.send_item(req.request_id, b"dropped")
    client.send_request(1, b"after", now=pair.now)
    [req2] = pair.to_server()
    server.send_response(req2.request_id, b"fresh")
    seen += pair.to_client()  # the stale item is skipped, the fresh reply arrives
    return seen


EXPECTED = [
    ResponseReceived(request_id=1, status=OK, payload=b"Jambo Yathvan", final=True),
    ResponseReceived(request_id=2, status=OK, payload=b"Sawubona", final=False),
    ResponseReceived(request_id=2, status=OK, payload=b"Jambo", final=False),
    ResponseReceived(request_id=2, status=OK, payload=b"Bonjour", final=False),
    ResponseReceived(request_id=2, status=OK, payload=b"Hello", final=False),
    ResponseReceived(request_id=2, status=OK, payload=b"", final=True),
    ResponseReceived(
        request_id=3, status=StatusCode.BAD_REQUEST, payload=b"What does 'x' mean?", final=True
    ),
    PongReceived(latency=0.0),
    ResponseReceived(request_id=4, status=OK, payload=b"first", final=False),
    ResponseReceived(request_id=5, status=OK, payload=b"fresh", final=True),
]


def test_conversation_in_whole_reads() -> None:
    assert run_conversation(CorePair()) == EXPECTED


@given(st.integers(min_value=1, max_value=40))
def test_conversation_is_the_same_however_the_bytes_are_chunked(chunk_size: int) -> None:
    assert run_conversation(CorePair(chunk_size=chunk_size)) == EXPECTED


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=16))
def test_arbitrary_bytes_into_the_server_raise_only_protocol_violations(
    data: bytes, chunk: int
) -> None:
    for server in (ServerSessionState(), open_server(RpcServerConfig(min_deadline=0))):
        try:
            for i in range(0, len(data), chunk):
                server.receive_data(data[i : i + chunk])
                server.data_to_send()
        except RpcProtocolViolation:
            assert server.is_closed


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=16), st.booleans())
def test_arbitrary_bytes_into_the_client_raise_only_protocol_violations(
    data: bytes, chunk: int, streaming: bool
) -> None:
    fresh = ClientSessionState()
    fresh.initiate(0.0)
    busy = open_client()
    busy.send_request(1, b"", streaming=streaming, now=0.0)
    for client in (fresh, busy):
        try:
            for i in range(0, len(data), chunk):
                client.receive_data(data[i : i + chunk], now=0.0)
        except RpcProtocolViolation:
            assert client.is_closed

"""Ports of tari's RPC smoke tests (wire.md §6.1) over real Node connections.

Each test runs over TCP on 127.0.0.1 and over the memory transport, on both anyio backends:
the server node serves its services through ``Node.add_service`` and the client reaches them
through ``PeerConnection.connect_rpc``, so every session is a negotiated Yamux substream of
an upgraded (Noise, identity exchange) connection. Time figures are hang guards only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest
from plait.rpc import (
    RejectReason,
    RpcClientConfig,
    RpcDeadlineExceeded,
    RpcHandshakeRejected,
    RpcServerConfig,
    RpcStatusError,
    SessionClosedError,
    StatusCode,
)
from plait.rpc.greeting import Greeting
from plait.rpc.proto.greeting_pb2 import (
    GetGreetingsRequest,
    ReplySizeRequest,
    SayHelloRequest,
    SlowStreamRequest,
    Text,
)
from support.waiting import wait_until
from test_rpc_node_support import (
    FAST,
    CountingGreeting,
    SlowService,
    extra_client,
    rpc_pair,
    transport,
)

if TYPE_CHECKING:
    from anyio.abc import ByteStream
    from plait import PeerConnection

pytestmark = [pytest.mark.anyio, pytest.mark.network]

__all__ = ("transport",)


async def test_request_response_errors_and_streaming(transport: str) -> None:
    async with rpc_pair(transport, RpcServerConfig(max_sessions=1, min_deadline=0)) as p:
        client = await p.conn.connect_rpc(Greeting.Client, config=FAST)
        assert client.last_request_latency is not None  # the handshake round trip
        reply = await client.say_hello(SayHelloRequest(name="Yathvan", language=1))
        assert reply.greeting == "Jambo Yathvan"

        items = [t.value async for t in client.get_greetings(GetGreetingsRequest(num=4))]
        assert items == ["Sawubona", "Jambo", "Bonjour", "Hello"]

        with pytest.raises(RpcStatusError) as info:
            await client.return_error()
        assert (info.value.code, info.value.details) == (
            StatusCode.NOT_IMPLEMENTED,
            "I haven't gotten to this yet :(",
        )

        with pytest.raises(RpcStatusError) as info:
            async for _ in client.streaming_error(Text(value="Gurglesplurb")):
                pass
        assert (info.value.code, info.value.details) == (
            StatusCode.BAD_REQUEST,
            "What does 'Gurglesplurb' mean?",
        )

        results: list[object] = []
        with pytest.raises(RpcStatusError) as info:
            async for text in client.streaming_error2():
                results.append(text.value)
        results.append((info.value.code, info.value.details))
        assert results == ["This is ok", (StatusCode.BAD_REQUEST, "This is a problem")]

        # the calling peer's key, from the server's RequestContext
        assert (await client.get_public_key_hex()).value == p.client.peer_id

        await client.aclose()
        assert not client.is_connected
        with pytest.raises(SessionClosedError):
            await client.say_hello(SayHelloRequest(name="closed"))


async def test_concurrent_requests_on_one_session(transport: str) -> None:
    async with rpc_pair(transport, RpcServerConfig(max_sessions=1, min_deadline=0)) as p:
        client = await p.conn.connect_rpc(Greeting.Client, config=FAST)
        results: dict[str, object] = {}

        async def hello(key: str, language: int, name: str) -> None:
            reply = await client.say_hello(SayHelloRequest(name=name, language=language))
            results[key] = reply.greeting

        async def greetings() -> None:
            results["stream"] = [
                t.value async for t in client.get_greetings(GetGreetingsRequest(num=5))
            ]

        async with anyio.create_task_group() as tg:
            tg.start_soon(hello, "a", 2, "Madeupington")
            tg.start_soon(greetings)
            tg.start_soon(hello, "b", 1, "Yathvan")
        assert results == {
            "a": "Bonjour Madeupington",
            "b": "Jambo Yathvan",
            "stream": ["Sawubona", "Jambo", "Bonjour", "Hello", "Molo"],
        }
        assert p.server.num_active_sessions() == 1  # all three on the one session


async def test_response_too_big_and_the_session_survives(transport: str) -> None:
    async with rpc_pair(transport, RpcServerConfig(max_sessions=1, min_deadline=0),
                        Greeting(greetings=())) as p:
        client = await p.conn.connect_rpc(Greeting.Client, config=FAST)
        with pytest.raises(RpcStatusError) as info:
            await client.reply_with_msg_of_size(ReplySizeRequest(size=4194280 - 4))
        assert info.value.code is StatusCode.MALFORMED_RESPONSE
        assert "Max = 4194280 bytes, Got = 4194281 bytes" in info.value.details
        reply = await client.reply_with_msg_of_size(ReplySizeRequest(size=4194280 - 5))
        assert reply.data == bytes(4194275)


async def test_ping(transport: str) -> None:
    async with rpc_pair(transport, RpcServerConfig(max_sessions=1)) as p:
        client = await p.conn.connect_rpc(Greeting.Client)  # default config
        latency = await client.ping()
        assert latency >= 0
        assert client.last_request_latency is not None
        assert (await client.say_hello(SayHelloRequest(name="p"))).greeting == "Sawubona p"


class Dropped(Greeting, protocol="/test/dropped/1"):
    """A client-side name for a protocol whose server drops the substream at once."""


async def test_server_shutdown_before_connect(transport: str) -> None:
    async def drop(conn: PeerConnection, stream: ByteStream) -> None:
        return None  # the node closes the substream: the server task is gone

    async with rpc_pair(transport) as p:
        p.server.add_protocol(Dropped.protocol, drop)
        with pytest.raises(SessionClosedError):
            await p.conn.connect_rpc(Dropped.Client, config=FAST)
        assert p.server.num_active_sessions() == 0


async def test_timeout_keeps_the_session(transport: str) -> None:
    service = SlowService(delay=10.0)
    async with rpc_pair(transport, RpcServerConfig(max_sessions=1, min_deadline=1),
                        service) as p:
        client = await p.conn.connect_rpc(
            SlowService.Client, config=RpcClientConfig(deadline=1, deadline_grace_period=0.25)
        )
        with anyio.fail_after(10), pytest.raises(RpcDeadlineExceeded) as info:
            await client.say_hello(Text(value="x"))  # type: ignore[attr-defined]
        assert info.value.code is StatusCode.TIMEOUT
        assert service.cancelled.is_set()  # the server gave up at its deadline, sent nothing
        service.delay = 0
        reply = await client.say_hello(Text(value="x"))  # type: ignore[attr-defined]
        assert reply.value == "took a while to load"


class Junk(Greeting, protocol="this-is-junk"):
    """A protocol the server node negotiates but its RPC server has no service for."""


async def test_unknown_protocol(transport: str) -> None:
    async with rpc_pair(transport) as p:
        server = p.server.rpc_server

        async def route_to_rpc(conn: PeerConnection, stream: ByteStream) -> None:
            await server.serve_session(stream, conn.public_key, Junk.protocol)

        p.server.add_protocol(Junk.protocol, route_to_rpc)
        with pytest.raises(RpcHandshakeRejected) as info:
            await p.conn.connect_rpc(Junk.Client, config=FAST)
        assert info.value.reason is RejectReason.PROTOCOL_NOT_SUPPORTED
        assert p.server.num_active_sessions() == 0


async def test_rejected_no_sessions_available(transport: str) -> None:
    async with rpc_pair(transport, RpcServerConfig(max_sessions=0)) as p:
        with pytest.raises(RpcHandshakeRejected) as info:
            await p.conn.connect_rpc(Greeting.Client, config=FAST)
        assert info.value.reason is RejectReason.NO_SERVER_SESSIONS_AVAILABLE
        assert p.server.num_active_sessions() == 0
        assert p.conn.is_connected  # a rejection ends the session, not the connection


async def test_stream_still_works_after_cancel(transport: str) -> None:
    service = CountingGreeting()
    async with rpc_pair(transport, RpcServerConfig(max_sessions=1, min_deadline=0),
                        service) as p:
        client = await p.conn.connect_rpc(Greeting.Client, config=FAST)
        request = SlowStreamRequest(num_items=100, item_size=100, delay_ms=10)
        async with client.slow_stream(request):
            pass  # dropped at once
        with anyio.fail_after(10):
            await service.stream_ended.wait()  # the FIN interrupt stopped the producer
        assert service.slow_stream_calls == 1
        items = [item async for item in client.slow_stream(request)]
        assert len(items) == 100
        assert all(item.data == bytes(100) for item in items)
        assert service.slow_stream_calls == 2


async def test_stream_interruption_handling(transport: str) -> None:
    async with rpc_pair(transport, RpcServerConfig(max_sessions=1, min_deadline=0)) as p:
        client = await p.conn.connect_rpc(Greeting.Client, config=FAST)
        async with client.slow_stream(
            SlowStreamRequest(num_items=10000, item_size=100, delay_ms=100)
        ) as stream:
            async for _ in stream:
                break
        with anyio.fail_after(10):
            async with client.slow_stream(
                SlowStreamRequest(num_items=100, item_size=100, delay_ms=1)
            ) as stream:
                first = await stream.__anext__()
        assert first.data == bytes(100)


async def test_max_global_sessions_freed_promptly_on_close(transport: str) -> None:
    # tari: builder max_sessions 1 with the default minimum deadline (1 s)
    async with rpc_pair(transport, RpcServerConfig(max_sessions=1)) as p:
        first = await p.conn.connect_rpc(Greeting.Client, config=FAST)
        assert p.server.num_active_sessions() == 1
        with pytest.raises(RpcHandshakeRejected) as info:
            await p.conn.connect_rpc(Greeting.Client, config=FAST)
        assert info.value.reason is RejectReason.NO_SERVER_SESSIONS_AVAILABLE
        assert str(info.value)  # carries a readable message
        await first.aclose()
        # the half-close alone frees the slot: no further client action, no timer
        await wait_until(lambda: p.server.num_active_sessions() == 0, timeout=5)
        third = await p.conn.connect_rpc(Greeting.Client, config=FAST)
        assert (await third.say_hello(SayHelloRequest(name="3"))).greeting == "Sawubona 3"


async def test_max_per_client_sessions(transport: str) -> None:
    config = RpcServerConfig(max_sessions=3, max_sessions_per_peer=1)
    async with rpc_pair(transport, config) as p:
        first = await p.conn.connect_rpc(Greeting.Client, config=FAST)
        with pytest.raises(RpcHandshakeRejected) as info:
            await p.conn.connect_rpc(Greeting.Client, config=FAST)
        assert info.value.reason is RejectReason.NO_CLIENT_SESSIONS_AVAILABLE
        async with extra_client(p) as (other, other_conn):
            other_client = await other_conn.connect_rpc(Greeting.Client, config=FAST)
            assert (await other_client.get_public_key_hex()).value == other.peer_id
            assert p.server.num_active_sessions() == 2
            assert p.server.num_active_sessions(other.peer_id) == 1
        assert p.server.num_active_sessions(p.client.peer_id) == 1
        await first.aclose()
        await wait_until(lambda: p.server.num_active_sessions(p.client.peer_id) == 0)
        third = await p.conn.connect_rpc(Greeting.Client, config=FAST)
        assert (await third.say_hello(SayHelloRequest(name="again"))).greeting == "Sawubona again"

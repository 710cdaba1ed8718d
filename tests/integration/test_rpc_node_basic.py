"""The RPC layer on a Node (api.md "Embedding a node"): add_service, connect_rpc, rpc_pool,
over real TCP on 127.0.0.1 and over the memory transport, on both anyio backends."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import plait
import pytest
from plait.negotiation import ProtocolNotSupportedError
from plait.rpc import RpcServerConfig, SessionClosedError
from plait.rpc.greeting import GREETING_PROTOCOL, Greeting, GreetingClient
from plait.rpc.proto.greeting_pb2 import GetGreetingsRequest, SayHelloRequest
from support.waiting import wait_until
from test_rpc_node_support import FAST, rpc_pair, transport

if TYPE_CHECKING:
    from anyio.abc import ByteStream

pytestmark = pytest.mark.anyio

__all__ = ("transport",)


def test_public_names() -> None:
    for name in ("Node", "NodeConfig", "NodeIdentity", "PeerConnection", "PeerConnected",
                 "PeerDisconnected", "ConnectionFailed", "DisconnectReason", "NodeEvents"):
        assert hasattr(plait, name), name
    config = plait.NodeConfig(rpc_server=RpcServerConfig(max_sessions=100,
                                                         max_sessions_per_peer=10))
    assert config.rpc_server.max_sessions == 100


async def test_add_service_connect_rpc_call_and_stream(transport: str) -> None:
    async with rpc_pair(transport) as p:
        assert GREETING_PROTOCOL in p.server.protocols
        assert p.conn.identity.supported_protocols == (GREETING_PROTOCOL,)
        client = await p.conn.connect_rpc(Greeting.Client, config=FAST)
        assert isinstance(client, GreetingClient)
        reply = await client.say_hello(SayHelloRequest(name="Ada", language=3))
        assert reply.greeting == "Hello Ada"
        items = [t.value async for t in client.get_greetings(GetGreetingsRequest(num=3))]
        assert items == ["Sawubona", "Jambo", "Bonjour"]
        assert (await client.get_public_key_hex()).value == p.client.peer_id
        assert p.server.num_active_sessions() == 1
        assert p.server.num_active_sessions(p.client.peer_id) == 1
        assert p.server.num_active_sessions(p.client.public_key) == 1
        assert p.server.rpc_server.num_active_sessions == 1
        assert p.conn.statistics().optimistic_opens == 1  # the server advertised it
        await client.aclose()
        await wait_until(lambda: p.server.num_active_sessions() == 0)


async def test_connect_rpc_negotiates_normally_when_not_advertised(transport: str) -> None:
    async with rpc_pair(transport) as p:
        client = await p.conn.connect_rpc(Greeting.Client, config=FAST, optimistic=False)
        async with client:
            assert (await client.say_hello(SayHelloRequest(name="n"))).greeting == "Sawubona n"
        assert p.conn.statistics().normal_opens == 1


async def test_pool_over_a_connection(transport: str) -> None:
    async with rpc_pair(transport) as p:
        pool = p.conn.rpc_pool(Greeting.Client, size=2, config=FAST)
        assert pool.statistics().open_sessions == 0  # lazy
        results: list[str] = []

        async def worker(i: int) -> None:
            async with pool.lease() as client:
                reply = await client.say_hello(SayHelloRequest(name=str(i), language=i % 8))
                results.append(reply.greeting)

        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(worker, i)
        assert len(results) == 10
        assert 1 <= pool.statistics().open_sessions <= 2
        assert p.server.num_active_sessions(p.client.peer_id) == pool.statistics().open_sessions
        await pool.aclose()
        await wait_until(lambda: p.server.num_active_sessions() == 0)


async def test_a_service_the_peer_does_not_serve(transport: str) -> None:
    async with rpc_pair(transport) as p:
        with pytest.raises(ProtocolNotSupportedError):
            await p.conn.connect_rpc(_Other.Client, config=FAST)
        assert p.conn.is_connected


async def test_connect_rpc_after_disconnect_raises_session_closed(transport: str) -> None:
    async with rpc_pair(transport) as p:
        pool = p.conn.rpc_pool(Greeting.Client, size=1, config=FAST)
        await p.conn.disconnect()
        with pytest.raises(SessionClosedError):
            await p.conn.connect_rpc(Greeting.Client, config=FAST)
        with pytest.raises(SessionClosedError):
            async with pool.lease():
                pass


async def test_add_service_twice_is_refused() -> None:
    node = plait.Node(plait.NodeIdentity.generate())
    node.add_service(Greeting())
    with pytest.raises(ValueError, match="already registered"):
        node.add_service(Greeting())
    with pytest.raises(ValueError, match="already registered"):
        node.add_protocol(GREETING_PROTOCOL, _noop)


async def _noop(conn: plait.PeerConnection, stream: ByteStream) -> None:
    return None


class _Other(Greeting, protocol="/plait/other/1"):
    """A service the server node does not serve."""

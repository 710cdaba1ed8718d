"""Node pairs over real TCP on 127.0.0.1 and over the memory transport (api.md, wire.md §1.6, §2)."""

from __future__ import annotations

import dataclasses
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

import anyio
import pytest
from plait.identity import NodeIdentity
from plait.muxer import StreamResetError
from plait.negotiation import ProtocolNotSupportedError
from plait.node import (
    ECHO_PROTOCOL_ID,
    ConnectionDirection,
    ConnectionFailed,
    ConnectionLimitError,
    DisconnectReason,
    Node,
    NodeConfig,
    NodeEvents,
    PeerConnected,
    PeerConnection,
    PeerDisconnected,
    echo_handler,
)
from plait.transport import (
    IdentityTruncatedError,
    MemoryNetwork,
    Multiaddr,
    PeerBannedError,
    PeerKeyMismatchError,
)
from plait.transport.upgrade import UpgradeClosedError
from support.waiting import wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import ByteStream

pytestmark = pytest.mark.anyio

P1, P2, P3 = b"/test/one/1", b"/test/two/1", b"/test/three/1"
E = TypeVar("E")


@pytest.fixture(params=["tcp", "memory"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def listen_address(transport: str, name: str) -> str:
    return "tcp://127.0.0.1:0" if transport == "tcp" else f"memory://{name}"


@asynccontextmanager
async def node_pair(
    config_a: NodeConfig | None = None, config_b: NodeConfig | None = None
) -> AsyncIterator[tuple[Node, Node]]:
    network = MemoryNetwork()
    async with (
        Node(NodeIdentity.generate(), config_a, memory_network=network) as a,
        Node(NodeIdentity.generate(), config_b, memory_network=network) as b,
    ):
        yield a, b


async def next_event(events: NodeEvents, kind: type[E], timeout: float = 5.0) -> E:
    with anyio.fail_after(timeout):
        async for event in events:
            if isinstance(event, kind):
                return event
    raise AssertionError("the event stream ended")




async def receive_all(stream: ByteStream) -> bytes:
    parts = []
    try:
        while True:
            parts.append(await stream.receive())
    except anyio.EndOfStream:
        return b"".join(parts)


def assert_idle(node: Node, *, listeners: int) -> None:
    stats = node.statistics()
    assert stats.listeners == listeners
    assert stats.upgrading == 0
    assert stats.connections == 0
    assert stats.closing == 0
    assert stats.negotiating == 0
    assert stats.handlers == 0
    assert stats.tasks == listeners  # only the accept loops remain
    assert node.connections == ()


async def test_two_nodes_echo_100_substreams_of_3_protocols(transport: str) -> None:
    async with node_pair() as (a, b):
        b.add_protocol(P1, echo_handler)
        b.add_protocol(P2, echo_handler)
        a.add_protocol(P1, echo_handler)
        addr_b = await b.listen(listen_address(transport, "b"))
        events_a, events_b = a.events(), b.events()
        conn = await a.dial(addr_b, b.peer_id)
        # registered after B advertised its protocols to A: negotiated the normal way
        b.add_protocol(P3, echo_handler)
        inbound = (await next_event(events_b, PeerConnected)).connection
        assert (await next_event(events_a, PeerConnected)).connection is conn

        # identities learned on both sides, keys authenticated by Noise
        assert conn.public_key == b.public_key and conn.peer_id == b.peer_id
        assert inbound.public_key == a.public_key and inbound.node_id == a.node_id
        assert conn.direction is ConnectionDirection.OUTBOUND
        assert inbound.direction is ConnectionDirection.INBOUND
        assert conn.handshake_hash == inbound.handshake_hash
        assert conn.identity.supported_protocols == (P1, P2)
        assert inbound.identity.supported_protocols == (P1,)
        assert conn.identity.user_agent.startswith("plait/")
        if transport == "tcp":
            port = int(addr_b.rsplit(":", 1)[1])
            assert conn.identity.addresses == (Multiaddr.from_string(f"/ip4/127.0.0.1/tcp/{port}"),)
            assert inbound.address.startswith("tcp://127.0.0.1:")
        else:
            assert conn.identity.addresses == ()  # memory addresses are never advertised
        assert a.connections == (conn,) and b.connections == (inbound,)

        protocols = (P1, P2, P3)

        async def echo_once(i: int) -> None:
            stream = await conn.open_substream(protocols[i % 3])
            payload = protocols[i % 3] + b":" + str(i).encode() * 300
            await stream.send(payload)
            await stream.send_eof()
            assert await receive_all(stream) == payload
            await stream.aclose()

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for i in range(100):
                    tg.start_soon(echo_once, i)
        stats = conn.statistics()
        assert stats.optimistic_opens == 67  # P1 and P2: advertised by B
        assert stats.normal_opens == 33  # P3: not advertised
        assert inbound.statistics().inbound_substreams == 100

        # the other direction: B opens on A, optimistically (A advertised P1)
        reverse = await inbound.open_substream(P1)
        await reverse.send(b"reverse")
        assert await reverse.receive() == b"reverse"
        await reverse.aclose()
        assert inbound.statistics().optimistic_opens == 1
        # forcing the normal path on an advertised protocol works as well
        forced = await conn.open_substream(P1, optimistic=False)
        await forced.send(b"forced")
        assert await forced.receive() == b"forced"
        assert conn.statistics().normal_opens == 34

        await conn.disconnect()
        gone_a = await next_event(events_a, PeerDisconnected)
        gone_b = await next_event(events_b, PeerDisconnected)
        assert gone_a.connection is conn and gone_a.reason is DisconnectReason.LOCAL
        assert gone_b.connection is inbound and gone_b.reason is DisconnectReason.REMOTE
        await inbound.wait_closed()
        assert not conn.is_connected and not inbound.is_connected
        assert_idle(a, listeners=0)
        assert_idle(b, listeners=1)
        with pytest.raises(anyio.ClosedResourceError):
            await conn.open_substream(P1)


async def test_simultaneous_dial_keeps_one_connection_on_both_sides(transport: str) -> None:
    async with node_pair() as (a, b):
        a.add_protocol(ECHO_PROTOCOL_ID, echo_handler)
        b.add_protocol(ECHO_PROTOCOL_ID, echo_handler)
        addr_a = await a.listen(listen_address(transport, "a"))
        addr_b = await b.listen(listen_address(transport, "b"))
        dialled: dict[str, PeerConnection] = {}

        async def dial(node: Node, address: str, peer: Node) -> None:
            dialled[node.peer_id] = await node.dial(address, peer.peer_id)

        async with anyio.create_task_group() as tg:
            tg.start_soon(dial, a, addr_b, b)
            tg.start_soon(dial, b, addr_a, a)

        small, large = (a, b) if a.node_id < b.node_id else (b, a)
        # the survivor is the connection the smaller NodeId dialled (wire.md §1.6)
        winner = dialled[small.peer_id]
        assert winner.direction is ConnectionDirection.OUTBOUND
        assert small.get_connection(large.peer_id) is winner

        def settled() -> bool:
            other = large.get_connection(small.peer_id)
            return (
                other is not None
                and other.handshake_hash == winner.handshake_hash
                and all(n.statistics()[1:4] == (0, 1, 0) for n in (a, b))  # upgrading, conns, closing
            )

        await wait_until(settled, timeout=10)
        survivor = large.get_connection(small.peer_id)
        assert survivor is not None and survivor.direction is ConnectionDirection.INBOUND
        assert small.get_connection(large.peer_id) is winner and winner.is_connected
        # and it works
        stream = await survivor.open_substream(ECHO_PROTOCOL_ID)
        await stream.send(b"one connection")
        assert await stream.receive() == b"one connection"
        await stream.aclose()


async def test_dial_reuses_the_existing_connection(transport: str) -> None:
    async with node_pair() as (a, b):
        addr_b = await b.listen(listen_address(transport, "b"))
        first = await a.dial(addr_b, b.peer_id)
        assert await a.dial(addr_b, b.peer_id) is first
        # concurrent dials of one known peer share a single attempt
        results: list[PeerConnection] = []
        await first.disconnect()

        async def dial() -> None:
            results.append(await a.dial(addr_b, b.peer_id))

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(dial)
        assert len({id(c) for c in results}) == 1
        await wait_until(lambda: b.statistics().connections == 1 and b.statistics().closing == 0)
        assert b.connections[0].handshake_hash == results[0].handshake_hash


async def test_dial_with_wrong_peer_id_fails_and_leaks_nothing(transport: str) -> None:
    async with node_pair() as (a, b):
        addr_b = await b.listen(listen_address(transport, "b"))
        events_b = b.events()
        other = NodeIdentity.generate()
        with pytest.raises(PeerKeyMismatchError) as info:
            await a.dial(addr_b, other.peer_id)
        assert info.value.expected == other.public_key and info.value.actual == b.public_key
        failed = await next_event(events_b, ConnectionFailed)  # B's side of the upgrade
        assert isinstance(failed.error, IdentityTruncatedError | UpgradeClosedError)
        assert_idle(a, listeners=0)
        assert_idle(b, listeners=1)
        with pytest.raises(ValueError, match="own peer id"):
            await a.dial(addr_b, a.peer_id)
        with pytest.raises(ValueError, match="peer id"):
            await a.dial(addr_b, "abcd")


async def test_ban_drops_the_connection_and_refuses_redials(transport: str) -> None:
    async with node_pair() as (a, b):
        addr_b = await b.listen(listen_address(transport, "b"))
        events_a, events_b = a.events(), b.events()
        conn = await a.dial(addr_b, b.peer_id)
        inbound = (await next_event(events_b, PeerConnected)).connection
        b.ban(a.peer_id, 60.0)
        gone = await next_event(events_b, PeerDisconnected)
        assert gone.connection is inbound and gone.reason is DisconnectReason.BANNED
        assert (await next_event(events_a, PeerDisconnected)).connection is conn
        await inbound.wait_closed()
        assert b.is_banned(a.peer_id) and b.statistics().bans == 1

        # B refuses A right after Noise; A sees the connection close during the exchange
        with pytest.raises((IdentityTruncatedError, UpgradeClosedError)):
            await a.dial(addr_b, b.peer_id)
        failed = await next_event(events_b, ConnectionFailed)
        assert isinstance(failed.error, PeerBannedError)
        assert a.statistics().upgrading == 0 and a.connections == ()
        # and B does not dial A either
        with pytest.raises(PeerBannedError):
            await b.dial(listen_address(transport, "nowhere"), a.peer_id)
        a.unban(b.peer_id)  # A banned B briefly for hanging up during the identity exchange

        assert b.unban(a.peer_id)
        assert not b.is_banned(a.peer_id)
        again = await a.dial(addr_b, b.peer_id)
        assert again.is_connected


async def test_ban_expires(transport: str) -> None:
    async with node_pair() as (a, b):
        addr_b = await b.listen(listen_address(transport, "b"))
        b.ban(a.peer_id, 0.3)
        assert b.is_banned(a.peer_id)
        await anyio.sleep(0.35)  # the ban's own duration, not a settling delay
        assert not b.is_banned(a.peer_id)
        assert (await a.dial(addr_b, b.peer_id)).is_connected


async def test_connection_limit_refuses_a_further_peer(transport: str) -> None:
    network = MemoryNetwork()
    config = NodeConfig(max_connections=1)
    async with (
        Node(NodeIdentity.generate(), config, memory_network=network) as hub,
        Node(NodeIdentity.generate(), memory_network=network) as first,
        Node(NodeIdentity.generate(), memory_network=network) as second,
    ):
        address = await hub.listen(listen_address(transport, "hub"))
        events = hub.events()
        await first.dial(address, hub.peer_id)
        await next_event(events, PeerConnected)
        # the refusal comes after the upgrade: the second peer sees its connection closed
        conn = await second.dial(address, hub.peer_id)
        failed = await next_event(events, ConnectionFailed)
        assert isinstance(failed.error, ConnectionLimitError)
        with anyio.fail_after(5):
            await conn.wait_closed()
        assert conn.disconnect_reason in (DisconnectReason.REMOTE, DisconnectReason.ERROR)
        assert hub.statistics().connections == 1 and hub.statistics().upgrading == 0


async def test_handler_errors_reset_the_stream_not_the_connection(transport: str) -> None:
    async def broken(conn: PeerConnection, stream: ByteStream) -> None:
        await stream.receive()
        raise RuntimeError("handler bug")

    async with node_pair() as (a, b):
        b.add_protocol(P1, broken)
        b.add_protocol(ECHO_PROTOCOL_ID, echo_handler)
        conn = await a.dial(await b.listen(listen_address(transport, "b")), b.peer_id)
        stream = await conn.open_substream(P1)
        await stream.send(b"x")
        with pytest.raises(StreamResetError):
            await stream.receive()
        echo = await conn.open_substream(ECHO_PROTOCOL_ID)
        await echo.send(b"still here")
        assert await echo.receive() == b"still here"
        # unsupported protocols: the normal path gets NOT_SUPPORTED, a forced optimistic
        # open is reset by the responder
        with pytest.raises(ProtocolNotSupportedError):
            await conn.open_substream(P2)
        optimistic = await conn.open_substream(P2, optimistic=True)
        await optimistic.send(b"ignored")
        with pytest.raises(StreamResetError):
            await optimistic.receive()
        assert conn.is_connected and b.statistics().connections == 1
        with pytest.raises(ValueError):
            await conn.open_substream(b"x" * 256)


async def test_shutdown_with_live_streams_and_handlers_meets_its_deadline(transport: str) -> None:
    running = 0
    cancelled = 0
    all_running = anyio.Event()

    async def stuck(conn: PeerConnection, stream: ByteStream) -> None:
        nonlocal running, cancelled
        running += 1
        if running == 6:
            all_running.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled += 1
            raise

    network = MemoryNetwork()
    config = NodeConfig(shutdown_timeout=1.0)
    async with Node(NodeIdentity.generate(), memory_network=network) as a:
        events = a.events()
        async with AsyncExitStack() as stack:
            b = await stack.enter_async_context(
                Node(NodeIdentity.generate(), config, memory_network=network)
            )
            b.add_protocol(P1, stuck)
            b.add_protocol(ECHO_PROTOCOL_ID, echo_handler)
            conn = await a.dial(await b.listen(listen_address(transport, "b")), b.peer_id)
            streams = [await conn.open_substream(P1) for _ in range(6)]
            for stream in streams:
                await stream.send(b"hold")
            echo = await conn.open_substream(ECHO_PROTOCOL_ID)
            await echo.send(b"half a conversation")
            with anyio.fail_after(5):
                await all_running.wait()
                assert await echo.receive() == b"half a conversation"
            started = anyio.current_time()
        elapsed = anyio.current_time() - started
        assert elapsed < config.shutdown_timeout
        assert cancelled == 6
        stats = b.statistics()
        assert stats.tasks == 0 and stats.connections == 0 and stats.closing == 0
        gone = await next_event(events, PeerDisconnected)
        assert gone.reason is DisconnectReason.REMOTE  # B's GO_AWAY(0)
        with pytest.raises(anyio.BrokenResourceError):
            await echo.send(b"after the shutdown")
        with pytest.raises(RuntimeError):
            await b.listen(listen_address(transport, "late"))
    assert a.statistics().tasks == 0


async def test_events_and_configuration_edges() -> None:
    network = MemoryNetwork()
    async with Node(NodeIdentity.generate(), memory_network=network) as node:
        async with node.events() as events:
            pass
        with pytest.raises(StopAsyncIteration):
            await events.__anext__()
        node.add_protocol(P1, echo_handler)
        with pytest.raises(ValueError, match="already registered"):
            node.add_protocol(P1, echo_handler)
        node.remove_protocol(P1)
        assert node.protocols == ()
        late = node.events()
    async with Node(NodeIdentity.generate()) as plain:
        with pytest.raises(ValueError, match="memory_network"):
            await plain.listen("memory://x")
    assert [e async for e in late] == []
    with pytest.raises(ValueError):
        NodeConfig(network_byte=0xA7)
    with pytest.raises(ValueError):
        NodeConfig(max_upgrading=0)
    with pytest.raises(ValueError):
        NodeConfig(user_agent="x" * 51)
    config = NodeConfig(advertised_addresses=("tcp://0.0.0.0:7000", "/ip4/10.1.2.3/tcp/7000"))
    assert dataclasses.replace(config, max_connections=3).max_connections == 3

"""``Node.stats()`` over real TCP on 127.0.0.1, on both anyio backends: the counts move as
connections open and close, substreams are opened, refused and fail, RPC sessions are
admitted, rejected and closed, bytes cross the wire, pings measure RTT; the rates are the
byte deltas over the span they report."""

from __future__ import annotations

import dataclasses
import math
import socket
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import pytest
from plait import Node, NodeConfig, NodeIdentity
from plait.negotiation import NegotiationError
from plait.node import (
    ECHO_PROTOCOL_ID,
    ConnectionDirection,
    ConnectionFailed,
    DisconnectReason,
    NodeStats,
    PeerConnected,
    PeerDisconnected,
    echo_handler,
)
from plait.rpc import RejectReason, RpcHandshakeRejected, RpcServerConfig
from plait.rpc.greeting import GREETING_PROTOCOL, Greeting
from plait.rpc.proto.greeting_pb2 import SayHelloRequest
from plait.transport import TransportError
from support.waiting import wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from plait.node import NodeEvent, NodeEvents, PeerConnection

pytestmark = [pytest.mark.anyio, pytest.mark.network]

GUARD = 30.0  # seconds any one test may take before it is failed as hung
PAYLOAD = bytes(range(256)) * 400  # 102400 bytes




async def next_event(events: NodeEvents, kind: type[NodeEvent]) -> NodeEvent:
    with anyio.fail_after(10):
        async for event in events:
            if isinstance(event, kind):
                return event
    raise AssertionError(f"no {kind.__name__}")


@asynccontextmanager
async def two_nodes(
    server_config: NodeConfig | None = None, client_config: NodeConfig | None = None
) -> AsyncIterator[tuple[Node, Node, str]]:
    """A server serving echo and Greeting on 127.0.0.1 and an idle client."""
    with anyio.fail_after(GUARD):
        async with (
            Node(NodeIdentity.generate(), server_config) as server,
            Node(NodeIdentity.generate(), client_config) as client,
        ):
            server.add_protocol(ECHO_PROTOCOL_ID, echo_handler)
            server.add_service(Greeting())
            address = await server.listen("tcp://127.0.0.1:0")
            yield server, client, address


async def connect(server: Node, client: Node, address: str) -> PeerConnection:
    """Dial and wait until the server has admitted the connection too."""
    async with server.events() as events:
        conn = await client.dial(address, server.peer_id)
        await next_event(events, PeerConnected)
    return conn


def zero_snapshot_checks(stats: NodeStats) -> None:
    assert stats.connections.current == 0
    assert stats.connections.opened_total == 0
    assert sum(stats.connections.closed_total.values()) == 0
    assert set(stats.connections.closed_total) == set(DisconnectReason)
    assert stats.streams.open == stats.streams.inbound_total == stats.streams.outbound_total == 0
    assert stats.traffic.bytes_in == stats.traffic.bytes_out == 0
    assert stats.traffic.bytes_in_rate == stats.traffic.bytes_out_rate == 0.0
    assert dict(stats.peers) == {}


async def test_counts_follow_connections_streams_sessions_and_bytes() -> None:
    rpc = RpcServerConfig(max_sessions=10, max_sessions_per_peer=1)
    async with two_nodes(NodeConfig(rpc_server=rpc)) as (server, client, address):
        await wait_until(lambda: server.stats().listeners == 1)  # its accept loop runs
        before = server.stats()
        zero_snapshot_checks(before)
        zero_snapshot_checks(client.stats())
        assert before.peer_id == server.peer_id and client.stats().listeners == 0
        assert before.uptime >= 0.0
        greeting = before.rpc[GREETING_PROTOCOL]
        assert greeting.protocol == GREETING_PROTOCOL
        assert greeting.server.active == greeting.server.admitted_total == 0
        assert dict(greeting.server.rejected_total) == {}
        assert client.stats().rpc == {}  # no service, no client session yet

        # -- a connection
        conn = await connect(server, client, address)
        s, c = server.stats(), client.stats()
        assert (s.connections.current, s.connections.inbound, s.connections.outbound) == (1, 1, 0)
        assert (c.connections.current, c.connections.inbound, c.connections.outbound) == (1, 0, 1)
        assert s.connections.opened_inbound_total == 1 and s.connections.opened_outbound_total == 0
        assert c.connections.opened_outbound_total == 1 and c.connections.opened_total == 1
        assert set(s.peers) == {client.peer_id} and set(c.peers) == {server.peer_id}
        peer = c.peers[server.peer_id]
        assert peer.direction is ConnectionDirection.OUTBOUND and peer.address == address
        assert s.peers[client.peer_id].direction is ConnectionDirection.INBOUND
        assert peer.connected_for >= 0.0 and peer.rtt == conn.muxer.rtt
        with pytest.raises(dataclasses.FrozenInstanceError):
            s.connections.current = 5  # type: ignore[misc]

        # -- a substream carrying 100 KiB both ways
        stream = await conn.open_substream(ECHO_PROTOCOL_ID)
        await stream.send(PAYLOAD)
        received = bytearray()
        while len(received) < len(PAYLOAD):
            received += await stream.receive()
        assert received == PAYLOAD
        s, c = server.stats(), client.stats()
        assert c.streams.outbound_total == 1 and c.peers[server.peer_id].outbound_substreams_total == 1
        assert s.streams.inbound_total == 1 and s.peers[client.peer_id].inbound_substreams_total == 1
        assert c.streams.open == 1 and c.peers[server.peer_id].streams == 1
        assert s.streams.open == 1 and s.streams.handlers == 1
        assert s.peers[client.peer_id].handlers == 1
        assert c.traffic.bytes_out > len(PAYLOAD) and c.traffic.bytes_in > len(PAYLOAD)
        assert s.traffic.bytes_in > len(PAYLOAD) and s.traffic.bytes_out > len(PAYLOAD)
        assert c.peers[server.peer_id].traffic.bytes_out == c.traffic.bytes_out  # one peer
        await stream.aclose()
        # every byte one end wrote, the other end read (window updates may still be flying)
        await wait_until(lambda: (
            client.stats().traffic.bytes_out == server.stats().traffic.bytes_in
            and server.stats().traffic.bytes_out == client.stats().traffic.bytes_in
        ))
        await wait_until(lambda: server.stats().streams.handlers == 0)

        # -- RTT from a ping
        rtt = await conn.muxer.ping()
        peer = client.stats().peers[server.peer_id]
        assert peer.rtt is not None and peer.rtt == conn.muxer.rtt and peer.rtt >= 0.0
        assert rtt >= 0.0

        # -- RPC sessions: one admitted, the second refused by the per-peer cap
        session = await conn.connect_rpc(Greeting.Client)
        reply = await session.say_hello(SayHelloRequest(name="stats"))
        assert reply.greeting == "Sawubona stats"
        s, c = server.stats(), client.stats()
        assert s.rpc[GREETING_PROTOCOL].server.active == 1
        assert s.rpc[GREETING_PROTOCOL].server.admitted_total == 1
        assert s.peers[client.peer_id].rpc_sessions == 1
        assert c.rpc[GREETING_PROTOCOL].client.active == 1
        assert c.rpc[GREETING_PROTOCOL].client.opened_total == 1
        with pytest.raises(RpcHandshakeRejected) as info:
            await conn.connect_rpc(Greeting.Client)
        assert info.value.reason is RejectReason.NO_CLIENT_SESSIONS_AVAILABLE
        s, c = server.stats(), client.stats()
        assert dict(s.rpc[GREETING_PROTOCOL].server.rejected_total) == {
            RejectReason.NO_CLIENT_SESSIONS_AVAILABLE: 1
        }
        assert s.rpc[GREETING_PROTOCOL].server.admitted_total == 1
        assert dict(c.rpc[GREETING_PROTOCOL].client.rejected_total) == {
            RejectReason.NO_CLIENT_SESSIONS_AVAILABLE: 1
        }
        assert c.rpc[GREETING_PROTOCOL].client.opened_total == 1
        await session.aclose()
        assert client.stats().rpc[GREETING_PROTOCOL].client.active == 0
        await wait_until(lambda: server.stats().rpc[GREETING_PROTOCOL].server.active == 0)
        assert server.stats().peers[client.peer_id].rpc_sessions == 0
        assert server.stats().streams.inbound_total == 3  # echo + two RPC substreams

        # -- disconnect: gauges drop to zero, totals stay
        last_in = server.stats().traffic.bytes_in
        async with server.events() as events:
            await conn.disconnect()
            await next_event(events, PeerDisconnected)
        s, c = server.stats(), client.stats()
        assert c.connections.current == 0 and s.connections.current == 0
        assert c.connections.closed_total[DisconnectReason.LOCAL] == 1
        assert s.connections.closed_total[DisconnectReason.REMOTE] == 1
        assert sum(s.connections.closed_total.values()) == 1
        assert dict(s.peers) == {} and dict(c.peers) == {}
        await wait_until(lambda: server.stats().streams.open == 0 and server.stats().tasks == 1)
        assert server.stats().traffic.bytes_in >= last_in  # closed connections still count
        assert c.connections.opened_total == 1


async def test_rates_are_byte_deltas_over_the_reported_interval() -> None:
    # a window longer than the test: every rate averages since the start
    async with two_nodes(client_config=NodeConfig(stats_rate_window=3600.0)) as (
        server, client, address
    ):
        conn = await connect(server, client, address)
        stream = await conn.open_substream(ECHO_PROTOCOL_ID)
        await stream.send(PAYLOAD)
        await stream.receive()
        stats = client.stats()
        traffic = stats.traffic
        assert traffic.interval == pytest.approx(stats.uptime)
        assert traffic.interval > 0.0
        assert math.isclose(traffic.bytes_out_rate * traffic.interval, traffic.bytes_out)
        assert math.isclose(traffic.bytes_in_rate * traffic.interval, traffic.bytes_in)
        peer = stats.peers[server.peer_id]
        assert peer.traffic.interval == pytest.approx(peer.connected_for)
        assert math.isclose(peer.traffic.bytes_out_rate * peer.traffic.interval,
                            peer.traffic.bytes_out)

    # a tiny window: each call's rates cover the span since the previous call
    async with two_nodes(client_config=NodeConfig(stats_rate_window=1e-9)) as (
        server, client, address
    ):
        conn = await connect(server, client, address)
        first = client.stats()
        stream = await conn.open_substream(ECHO_PROTOCOL_ID)
        await stream.send(PAYLOAD)
        await stream.receive()
        second = client.stats()
        assert second.time > first.time
        traffic = second.traffic
        assert traffic.interval == pytest.approx(second.time - first.time)
        sent = second.traffic.bytes_out - first.traffic.bytes_out
        assert sent > len(PAYLOAD)
        assert math.isclose(traffic.bytes_out_rate * traffic.interval, sent)
        peer_first, peer_second = first.peers[server.peer_id], second.peers[server.peer_id]
        assert peer_second.traffic.interval == pytest.approx(second.time - first.time)
        assert math.isclose(peer_second.traffic.bytes_in_rate * peer_second.traffic.interval,
                            peer_second.traffic.bytes_in - peer_first.traffic.bytes_in)


async def test_failures_bans_and_refused_substreams_are_counted() -> None:
    async with two_nodes() as (server, client, address):
        # a dial to a port nobody listens on
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with pytest.raises(TransportError):
            await client.dial(f"tcp://127.0.0.1:{port}")
        assert client.stats().connections.failed_outbound_total == 1

        # an inbound connection on the wrong network fails before admission
        async with Node(NodeIdentity.generate(), NodeConfig(network_byte=0x77)) as stranger:
            async with server.events() as events:
                with pytest.raises(Exception):  # noqa: B017 - whichever error the upgrade hits
                    await stranger.dial(address, server.peer_id)
                await next_event(events, ConnectionFailed)
            assert stranger.stats().connections.failed_outbound_total == 1
        assert server.stats().connections.failed_inbound_total == 1
        assert server.stats().connections.opened_total == 0

        # a negotiation the server cannot satisfy fails on both ends' counters
        conn = await connect(server, client, address)
        with pytest.raises(NegotiationError):
            await conn.open_substream(b"/no/such/protocol/1", optimistic=False)
        assert client.stats().streams.failed_total == 1
        assert client.stats().streams.outbound_total == 0

        # substreams to a node without protocols are reset unread
        async with Node(NodeIdentity.generate()) as bare:
            bare_address = await bare.listen("tcp://127.0.0.1:0")
            async with bare.events() as events:
                bare_conn = await client.dial(bare_address, bare.peer_id)
                await next_event(events, PeerConnected)
            with pytest.raises(Exception):  # noqa: B017 - a reset stream or a negotiation error
                await bare_conn.open_substream(ECHO_PROTOCOL_ID, optimistic=False)
            await wait_until(lambda: bare.stats().streams.refused_total == 1)
            assert bare.stats().streams.inbound_total == 0
            assert client.stats().streams.failed_total == 2

        # a ban drops the connection and is counted until lifted
        async with server.events() as events:
            server.ban(client.peer_id)
            await next_event(events, PeerDisconnected)
        stats = server.stats().connections
        assert stats.closed_total[DisconnectReason.BANNED] == 1
        assert stats.banned_peers == 1 and stats.bans_total == 1 and stats.current == 0
        assert server.unban(client.peer_id)
        stats = server.stats().connections
        assert stats.banned_peers == 0 and stats.bans_total == 1

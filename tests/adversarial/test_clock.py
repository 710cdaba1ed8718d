"""CLOCK (hardening.md §3.1): timeout cases at the **default** limits, in virtual time.

These run on trio with ``MockClock(autojump_threshold=0)`` over the in-process memory
transport (never real sockets), so the real defaults — 3 s to the first byte, a 10 s
upgrade, 10 s negotiations, a 15 s RPC handshake, 30 s + 10 s keep-alive — take
milliseconds, and the tests can assert *when*, in virtual seconds, each deadline fires.
The same cases run with shrunk limits over TCP on both backends in the other modules.

- T1 at the defaults → ``test_idle_connections_time_out_at_the_first_byte_deadline``;
  the honest dial meanwhile → ``test_honest_dial_during_a_slowloris_at_the_defaults``
- T2 at the defaults → ``test_dripping_handshake_is_cut_by_the_overall_deadline``
- P5 at the defaults (1000 streams) → ``test_1000_stalled_negotiations_at_the_defaults``
- R6/R7 at the defaults → ``test_silent_rpc_handshakes_time_out_at_15_s_and_free_their_slots``
- Y16 at the defaults → ``test_silent_peer_is_dropped_at_the_keepalive_timeout``
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import pytest
import trio.testing
from plait.identity import NodeIdentity
from plait.muxer import KeepaliveTimeoutError, MuxedConnection, StreamResetError
from plait.node import (
    ECHO_PROTOCOL_ID,
    ConnectionFailed,
    DisconnectReason,
    Node,
    PeerConnected,
    PeerDisconnected,
    echo_handler,
)
from plait.noise import HandshakeTimeoutError, StaticKeypair
from plait.rpc.greeting import GREETING_PROTOCOL, Greeting
from plait.transport import (
    DEFAULT_NETWORK_BYTE,
    MemoryNetwork,
    MemoryTransportConfig,
    PeerIdentity,
    UpgradeTimeoutError,
)
from plait.transport.upgrade import Upgrader
from support.adversary import next_event

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.anyio

ADDRESS = "memory://target"


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """trio with a virtual clock that jumps whenever every task is blocked."""
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


@asynccontextmanager
async def memory_node(**kwargs: Any) -> AsyncIterator[tuple[Node, MemoryNetwork]]:
    network = MemoryNetwork(MemoryTransportConfig(max_backlog=2048))
    async with Node(NodeIdentity.generate(), memory_network=network, **kwargs) as node:
        node.add_protocol(ECHO_PROTOCOL_ID, echo_handler)
        await node.listen(ADDRESS)
        yield node, network


@asynccontextmanager
async def muxed_attacker(network: MemoryNetwork) -> AsyncIterator[MuxedConnection]:
    stream = await network.dial(ADDRESS)
    upgraded = await Upgrader(StaticKeypair.generate(), PeerIdentity()).upgrade_outbound(stream)
    async with upgraded.muxer() as mux:
        yield mux


async def test_idle_connections_time_out_at_the_first_byte_deadline() -> None:
    """T1: 150 silent connections against the default cap of 100 upgrades: the first 100
    fail at exactly 3 s, the queued 50 at 6 s, and the node is left idle."""
    async with memory_node() as (node, network):
        events = node.events()
        start = anyio.current_time()
        idle = [await network.dial(ADDRESS) for _ in range(150)]
        failures = []
        while len(failures) < 150:
            event = await next_event(events, ConnectionFailed, timeout=60)
            assert isinstance(event.error, UpgradeTimeoutError), repr(event.error)
            failures.append(anyio.current_time() - start)
        assert failures[:100] == pytest.approx([3.0] * 100, abs=0.01)
        assert failures[100:] == pytest.approx([6.0] * 50, abs=0.01)
        assert node.statistics().upgrading == 0
        for stream in idle:
            await stream.aclose()


async def test_honest_dial_during_a_slowloris_at_the_defaults() -> None:
    """T1: 100 idle connections hold every upgrade slot; the first-byte deadline (3 s) frees
    them before the honest dialer's Noise deadline (6 s from its connect) runs out."""
    async with memory_node() as (node, network):
        idle = [await network.dial(ADDRESS) for _ in range(100)]
        try:
            async with Node(NodeIdentity.generate(), memory_network=network) as honest:
                start = anyio.current_time()
                conn = await honest.dial(ADDRESS, node.peer_id)
                assert anyio.current_time() - start < 10.0
                await conn.disconnect()
        finally:
            for stream in idle:
                await stream.aclose()


async def test_dripping_handshake_is_cut_by_the_overall_deadline() -> None:
    """T2: the wire byte, then message 1 one byte every 5.9 s (just under tari's 6 s
    per-read timeout): the Noise phase's overall 6 s deadline ends it; dripping never
    extends it."""
    async with memory_node() as (node, network):
        events = node.events()
        stream = await network.dial(ADDRESS)
        start = anyio.current_time()
        await stream.send(bytes([DEFAULT_NETWORK_BYTE]))
        async with anyio.create_task_group() as tg:

            async def drip() -> None:
                for byte in b"\x00\x20" + bytes(32):
                    await stream.send(bytes([byte]))
                    await anyio.sleep(5.9)

            tg.start_soon(drip)
            failed = await next_event(events, ConnectionFailed, timeout=60)
            tg.cancel_scope.cancel()
        assert isinstance(failed.error, HandshakeTimeoutError | UpgradeTimeoutError)
        assert anyio.current_time() - start == pytest.approx(6.0, abs=0.01)
        await stream.aclose()


async def test_1000_stalled_negotiations_at_the_defaults() -> None:
    """P5: 1000 streams opened and left silent. Yamux keeps 512 live streams (the rest are
    reset by the muxer), the node negotiates at most 128 at once (the rest reset at once),
    and the 128 are reset at exactly the 10 s negotiation deadline."""
    async with memory_node() as (node, network), muxed_attacker(network) as mux:
        start = anyio.current_time()
        streams = []
        for _ in range(1000):
            stream = await mux.open_stream()
            await stream.send(b"\x05")  # half a negotiation header, then silence
            streams.append(stream)
        resets: list[float] = []

        async def watch(stream: Any) -> None:
            try:
                await stream.receive()
            except (StreamResetError, anyio.BrokenResourceError, anyio.EndOfStream):
                resets.append(anyio.current_time() - start)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for stream in streams:
                    tg.start_soon(watch, stream)
        assert len(resets) == 1000
        late = [t for t in resets if t > 1.0]
        assert len(late) == 128
        assert late == pytest.approx([10.0] * 128, abs=0.05)
        assert node.statistics().negotiating == 0


async def test_silent_rpc_handshakes_time_out_at_15_s_and_free_their_slots() -> None:
    """R6/R7: ten negotiated RPC streams stay silent; each slot is held until the default
    15 s handshake timeout, then released; a session opened meanwhile works at once."""
    async with memory_node() as (node, network):
        node.add_service(Greeting())
        async with muxed_attacker(network) as mux:
            start = anyio.current_time()
            proposal = bytes([len(GREETING_PROTOCOL), 0]) + GREETING_PROTOCOL
            silent = []
            for _ in range(10):
                stream = await mux.open_stream()
                await stream.send(proposal)
                assert await stream.receive(len(proposal)) == proposal
                silent.append(stream)
            assert node.num_active_sessions() == 10
            async with Node(NodeIdentity.generate(), memory_network=network) as peer:
                conn = await peer.dial(ADDRESS, node.peer_id)
                client = await conn.connect_rpc(Greeting.Client)
                assert anyio.current_time() - start < 1.0  # not delayed by the silent ones
                await client.aclose()
                with anyio.fail_after(60):
                    for stream in silent:
                        with pytest.raises((anyio.EndOfStream, StreamResetError,
                                            anyio.BrokenResourceError)):
                            await stream.receive()
                assert anyio.current_time() - start == pytest.approx(15.0, abs=0.05)
                assert node.num_active_sessions() == 0
                await conn.disconnect()


async def test_silent_peer_is_dropped_at_the_keepalive_timeout() -> None:
    """Y16 at the defaults: a peer that never answers is dropped ``keepalive_timeout``
    (10 s) after the node's first ping, the RTT probe sent when the session starts
    (auto-tuning), long before the 30 s keep-alive interval."""
    async with memory_node() as (node, network):
        events = node.events()
        stream = await network.dial(ADDRESS)
        upgraded = await Upgrader(StaticKeypair.generate(), PeerIdentity()).upgrade_outbound(
            stream)
        connection = (await next_event(events, PeerConnected)).connection
        start = anyio.current_time()
        # the attacker holds the upgraded stream and never reads: no Yamux at all
        gone = await next_event(events, PeerDisconnected, timeout=120)
        assert gone.connection is connection and gone.reason is DisconnectReason.ERROR
        cause: BaseException | None = gone.error
        while cause is not None and not isinstance(cause, KeepaliveTimeoutError):
            cause = cause.__cause__ or cause.__context__
        assert isinstance(cause, KeepaliveTimeoutError), repr(gone.error)
        assert anyio.current_time() - start == pytest.approx(10.0, abs=0.05)
        await upgraded.stream.aclose()

"""The lazy client session pool over real Node connections (wire.md §3.13, §6.3): tari's
``lazy_pool`` and ``last_request_latency`` tests, plus the exclusive pool's
NO_CLIENT_SESSIONS_AVAILABLE and recovery. TCP and memory transports, both anyio backends.

``open_substreams`` (tari's ``num_open_substreams``) is the client connection's Yamux stream
count; the server's session count for the client peer must agree with it.
"""

from __future__ import annotations

import anyio
import pytest
from plait.rpc import RejectReason, RpcHandshakeRejected, RpcServerConfig, SessionClosedError
from plait.rpc.greeting import Greeting, GreetingClient
from plait.rpc.proto.greeting_pb2 import SayHelloRequest, SlowStreamRequest
from support.waiting import wait_until
from test_rpc_node_support import FAST, RpcPair, rpc_pair, transport

pytestmark = [pytest.mark.anyio, pytest.mark.network]

__all__ = ("transport",)


def server_config(max_sessions: int) -> RpcServerConfig:
    return RpcServerConfig(max_sessions=max_sessions, max_sessions_per_peer=None, min_deadline=0)


def open_substreams(p: RpcPair) -> int:
    return p.conn.muxer.statistics().streams


async def hello(client: GreetingClient) -> str:
    return (await client.say_hello(SayHelloRequest(name="pool"))).greeting


async def test_it_connects_lazily(transport: str) -> None:
    async with rpc_pair(transport, server_config(2)) as p:
        pool = p.conn.rpc_pool(Greeting.Client, size=2, config=FAST)
        assert open_substreams(p) == 0
        async with pool.lease() as first:
            assert open_substreams(p) == 1
            async with pool.lease() as second:
                assert open_substreams(p) == 2
                assert first is not second
                assert await hello(second) == "Sawubona pool"
            assert p.server.num_active_sessions(p.client.peer_id) == 2
        await pool.aclose()


async def test_it_reuses_unused_connections(transport: str) -> None:
    async with rpc_pair(transport, server_config(2)) as p:
        pool = p.conn.rpc_pool(Greeting.Client, size=2, config=FAST)
        async with pool.lease() as first:
            assert pool.statistics().open_sessions == 1
            async with pool.lease() as second:  # the first lease is held: a new session
                assert second is not first
                assert pool.statistics().open_sessions == 2
                assert open_substreams(p) == 2
                assert p.server.num_active_sessions() == 2
        async with pool.lease() as again:  # both idle now: reused, nothing opened
            assert again in (first, second)
        assert open_substreams(p) == 2
        await pool.aclose()


async def test_it_reuses_least_used_connections(transport: str) -> None:
    async with rpc_pair(transport, server_config(2)) as p:
        pool = p.conn.rpc_pool(Greeting.Client, size=2, config=FAST)
        async with pool.lease() as conn1, pool.lease() as conn2:
            assert open_substreams(p) == 2
            async with pool.lease() as conn3:
                assert pool.lease_count(conn3) == 2
                assert sorted((pool.lease_count(conn1), pool.lease_count(conn2))) == [1, 2]
                async with pool.lease() as conn4:
                    assert pool.lease_count(conn4) == 2
                    assert conn4 is not conn3
                    assert open_substreams(p) == 2
                    assert [pool.lease_count(c) for c in (conn1, conn2, conn3)] == [2, 2, 2]
                    assert await hello(conn4) == "Sawubona pool"
        assert pool.statistics().leases == 0
        await pool.aclose()


async def test_it_reuses_used_connections_if_necessary(transport: str) -> None:
    async with rpc_pair(transport, server_config(2)) as p:
        pool = p.conn.rpc_pool(Greeting.Client, size=1, config=FAST)
        async with pool.lease() as first, pool.lease() as second:
            assert first is second
            assert open_substreams(p) == 1
            assert pool.lease_count(first) == 2
        await pool.aclose()


async def test_it_gracefully_handles_insufficient_server_sessions(transport: str) -> None:
    async with rpc_pair(transport, server_config(1)) as p:
        pool = p.conn.rpc_pool(Greeting.Client, size=2, config=FAST)
        async with pool.lease() as first, pool.lease() as second:  # the server refuses (2)
            assert second is first
            # the refused session's substream is gone once both sides' FINs have crossed
            await wait_until(lambda: open_substreams(p) == 1)
            assert pool.lease_count(first) == pool.lease_count(second) == 2
            assert await hello(second) == "Sawubona pool"
        await pool.aclose()


async def test_it_prunes_disconnected_sessions(transport: str) -> None:
    async with rpc_pair(transport, server_config(2)) as p:
        pool = p.conn.rpc_pool(Greeting.Client, size=2, config=FAST)
        async with pool.lease() as client1, pool.lease() as client2:
            assert open_substreams(p) == 2
        await client1.aclose()
        await wait_until(lambda: open_substreams(p) == 1)
        await wait_until(lambda: p.server.num_active_sessions() == 1)
        async with pool.lease() as again:
            assert again is client2
            assert pool.statistics().open_sessions == 1  # the closed one was pruned
            async with pool.lease() as fresh:  # a new get opens a second session again
                assert fresh is not client2
                assert pool.statistics().open_sessions == 2
                assert open_substreams(p) == 2
        await pool.aclose()


async def test_it_fails_when_the_peer_connection_disconnects(transport: str) -> None:
    async with rpc_pair(transport, server_config(2)) as p:
        pool = p.conn.rpc_pool(Greeting.Client, size=2, config=FAST)
        async with pool.lease() as client:
            assert await hello(client) == "Sawubona pool"
        await p.conn.disconnect()
        with pytest.raises(SessionClosedError):
            async with pool.lease():
                pass
        assert pool.statistics().open_sessions == 0  # the dead session was pruned


async def test_last_request_latency_is_the_wait_for_the_latest_frame(transport: str) -> None:
    async with rpc_pair(transport, server_config(1)) as p:
        pool = p.conn.rpc_pool(Greeting.Client, size=1, config=FAST)
        async with pool.lease() as client:
            started = anyio.current_time()
            items = [
                item async for item in client.slow_stream(
                    SlowStreamRequest(num_items=50, item_size=10, delay_ms=10)
                )
            ]
            elapsed = anyio.current_time() - started
            assert len(items) == 50
            latency = client.last_request_latency
            assert latency is not None
            # per frame, not per call: far below the 50 x 10 ms the whole stream took
            assert 0 <= latency < elapsed / 5
        await pool.aclose()


async def test_exclusive_pool_exhaustion_and_recovery(transport: str) -> None:
    async with rpc_pair(transport, server_config(4)) as p:
        pool = p.conn.rpc_pool(Greeting.Client, size=2, exclusive=True, acquire_timeout=0.2,
                               config=FAST)
        async with pool.lease() as first, pool.lease() as second:
            assert first is not second
            with pytest.raises(RpcHandshakeRejected) as info:
                async with pool.lease():
                    pass
            assert info.value.reason is RejectReason.NO_CLIENT_SESSIONS_AVAILABLE
            assert open_substreams(p) == 2  # the rejection is local: nothing was opened
        async with pool.lease() as again:  # released: leasable at once
            assert again in (first, second)
            assert await hello(again) == "Sawubona pool"
        await pool.aclose()


async def test_exclusive_waiter_is_woken_by_a_release(transport: str) -> None:
    async with rpc_pair(transport, server_config(4)) as p:
        pool = p.conn.rpc_pool(Greeting.Client, size=1, exclusive=True, acquire_timeout=10,
                               config=FAST)
        leased, release = anyio.Event(), anyio.Event()
        seen: list[GreetingClient] = []

        async def holder() -> None:
            async with pool.lease() as client:
                seen.append(client)
                leased.set()
                await release.wait()

        async def waiter() -> None:
            await leased.wait()
            async with pool.lease() as client:
                seen.append(client)
                assert await hello(client) == "Sawubona pool"

        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            tg.start_soon(waiter)
            await leased.wait()
            assert pool.statistics().leases == 1
            release.set()
        assert len(seen) == 2 and seen[0] is seen[1]
        assert open_substreams(p) == 1
        await pool.aclose()

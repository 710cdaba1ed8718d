"""tari's RPC integration tests over real Node connections (wire.md §6.5):
``client_prematurely_ends_session`` and the quick ``rpc_stress`` scenario. TCP and memory
transports, both anyio backends.
"""

from __future__ import annotations

import anyio
import pytest
from plait.rpc import RpcClientConfig, RpcServerConfig
from plait.rpc.greeting import Greeting
from plait.rpc.proto.greeting_pb2 import SlowStreamRequest
from support.waiting import wait_until
from test_rpc_node_support import CountingGreeting, rpc_pair, transport

pytestmark = [pytest.mark.anyio, pytest.mark.network]

__all__ = ("transport",)

UNLIMITED = RpcServerConfig(max_sessions=None, max_sessions_per_peer=None)
ITEM_SIZE = 2300 * 1024  # 2355200 B, as tari's stream_large_items call


async def test_client_prematurely_ends_session(transport: str) -> None:
    service = CountingGreeting()
    async with rpc_pair(transport, UNLIMITED, service) as p:
        client = await p.conn.connect_rpc(Greeting.Client)
        assert p.server.num_active_sessions(p.client.peer_id) == 1
        stream = client.slow_stream(
            SlowStreamRequest(num_items=100, item_size=ITEM_SIZE, delay_ms=50)
        )
        received = 0
        async for item in stream:
            assert len(item.data) == ITEM_SIZE
            received += 1
            if received == 5:
                break
        # drop the stream and the client without a polite interrupt
        await client.aclose()
        del stream
        await wait_until(lambda: p.server.num_active_sessions(p.client.peer_id) == 0)
        with anyio.fail_after(10):
            await service.stream_ended.wait()  # the producer was stopped, not left running
        assert service.slow_stream_calls == 1
        assert p.conn.is_connected


async def test_rpc_stress_quick(transport: str) -> None:
    """tari rpc_stress ``quick``: 10 tasks over a pool of 10 sessions, 10 items of 1 KiB."""
    async with rpc_pair(transport, UNLIMITED) as p:
        pool = p.conn.rpc_pool(
            Greeting.Client, size=10, config=RpcClientConfig(deadline=5)
        )
        counts: list[int] = []

        async def task() -> None:
            async with pool.lease() as client:
                items = [
                    item async for item in client.slow_stream(
                        SlowStreamRequest(num_items=10, item_size=1024, delay_ms=0)
                    )
                ]
                assert all(len(item.data) == 1024 for item in items)
                counts.append(len(items))

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(task)
        assert counts == [10] * 10
        assert 1 <= pool.statistics().open_sessions <= 10
        await pool.aclose()
        await wait_until(lambda: p.server.num_active_sessions() == 0)

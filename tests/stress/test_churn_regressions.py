"""Small, deterministic reproductions of the RPC faults the churn scenario found, kept as
regression tests now that they are fixed in ``src/rpc``. Every hang is bounded by
``anyio.fail_after``. What each guards against:

1. ``_CallGate.acquire`` (``rpc/client.py``) took the gate on its fast path and *then*
   checkpointed; a cancellation delivered at that checkpoint left the gate taken with no
   owner, and every later call on the session waited forever (an exclusive pool kept handing
   that session out).
2. The client skipped late frames only of the request just before the one in flight, at
   most 20 in a row (tari's rule). plait's server keeps a session after an interrupt, and
   frames it sent before it read the FIN are still in the pipe: after two interrupted calls
   in a row, or one interrupted stream with more than 20 frames in flight, the next call
   failed with ``RpcProtocolViolation`` and the session was closed, although the server did
   nothing wrong. Interrupted requests are now tracked by id until their last frame.
3. The server's ``_dispatch`` (``rpc/server.py``) treated the ``SessionClosedError`` that
   ``send_item`` raises once the client has closed the session as a failure of the service:
   it logged an error, then ``send_error`` raised again out of the handler, the node logged
   "handler raised" and reset the substream. A client closing its session mid-stream is
   normal and now ends the call quietly.
4. An exclusive pool larger than what the server admits: after a refused open, every waiter
   was woken (one shared event for every change, failed opens included) and opened again
   while the pool was below its size, hammering the server with refused sessions (hundreds
   per second) until a lease was released or ``acquire_timeout`` passed. The pool now opens
   no more sessions than the server admitted (until one closes) and a release wakes one
   waiter.
"""

from __future__ import annotations

import logging

import anyio
import pytest
from plait.rpc import RejectReason, RpcClientConfig, RpcServerConfig

from .harness import stress_nodes, wait_until
from .service import STRESS_PROTOCOL, StressRequest, StressService, check_item

pytestmark = [pytest.mark.anyio, pytest.mark.network]

CONFIG = RpcClientConfig(deadline=5, deadline_grace_period=5, handshake_timeout=5)
SERVER = RpcServerConfig(max_sessions=None, max_sessions_per_peer=None)
HANG_GUARD = 2.0  # every call here takes milliseconds


async def test_call_cancelled_at_start_releases_the_session(anyio_backend: str) -> None:
    async with stress_nodes(StressService(), server_config=SERVER) as nodes:
        client = await nodes.outbound[0].connect_rpc(StressService.Client, config=CONFIG)
        with anyio.CancelScope() as scope:
            scope.cancel()  # the caller is cancelled just as its call starts
            async with client.stream_items(StressRequest(task=1, num_items=1, item_size=8)):
                raise AssertionError("not reached: the scope is cancelled")
        assert scope.cancelled_caught
        with anyio.fail_after(HANG_GUARD):
            request = StressRequest(task=2, num_items=2, item_size=8)
            items = [item async for item in client.stream_items(request)]
        assert [len(item.data) for item in items] == [8, 8]
        await client.aclose()
        await nodes.wait_idle()


async def test_two_interrupted_streams_in_a_row_keep_the_session(anyio_backend: str) -> None:
    service = StressService()
    async with stress_nodes(service, server_config=SERVER) as nodes:
        client = await nodes.outbound[0].connect_rpc(StressService.Client, config=CONFIG)
        with anyio.fail_after(HANG_GUARD):
            # 1: 5 items of 1 KiB; read one, let the server send the rest, interrupt.
            request = StressRequest(task=1, num_items=5, item_size=1024)
            async with client.stream_items(request) as items:
                check_item((await items.__anext__()).data, 1, 0, 1024)
                await wait_until(lambda: service.items_sent == 5, HANG_GUARD)
            # 2: sent, then interrupted before anything was read.
            async with client.stream_items(StressRequest(task=2, num_items=5, item_size=1024)):
                pass
            # 3: must get its own items; the late frames of 1 are not the server's fault.
            index = 0
            async for item in client.stream_items(StressRequest(task=3, num_items=3, item_size=64)):
                check_item(item.data, 3, index, 64)
                index += 1
        assert index == 3
        assert client.is_connected
        await client.aclose()
        await nodes.wait_idle()


async def test_interrupted_long_stream_keeps_the_session(anyio_backend: str) -> None:
    service = StressService()
    async with stress_nodes(service, server_config=SERVER) as nodes:
        client = await nodes.outbound[0].connect_rpc(StressService.Client, config=CONFIG)
        with anyio.fail_after(HANG_GUARD):
            # 1000 items of 100 bytes: read one, let the server send 50, interrupt.
            request = StressRequest(task=1, num_items=1000, item_size=100)
            async with client.stream_items(request) as items:
                check_item((await items.__anext__()).data, 1, 0, 100)
                await wait_until(lambda: service.items_sent >= 50, HANG_GUARD)
            index = 0
            async for item in client.stream_items(StressRequest(task=2, num_items=3, item_size=64)):
                check_item(item.data, 2, index, 64)
                index += 1
        assert index == 3
        assert client.is_connected
        await client.aclose()
        await nodes.wait_idle()


async def test_client_closing_mid_stream_is_not_a_server_error(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    service = StressService()
    async with stress_nodes(service, server_config=SERVER) as nodes:
        client = await nodes.outbound[0].connect_rpc(StressService.Client, config=CONFIG)
        with anyio.fail_after(HANG_GUARD):
            # An unpaced stream of 1000 items; the client closes the session after one.
            request = StressRequest(task=1, num_items=1000, item_size=100)
            async with client.stream_items(request) as items:
                check_item((await items.__anext__()).data, 1, 0, 100)
                await client.aclose()
        await nodes.wait_idle()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


STORM_TASKS = 10
STORM_PEER_CAP = 2
STORM_POOL_SIZE = 4


async def test_exclusive_pool_does_not_storm_a_capped_server(anyio_backend: str) -> None:
    """An exclusive pool larger than the server's per-peer cap: once the server refused a
    session, waiters should wait for a lease, not open (and be refused) again and again."""
    service = StressService()
    server_config = RpcServerConfig(max_sessions=None, max_sessions_per_peer=STORM_PEER_CAP)
    done = 0
    async with stress_nodes(service, server_config=server_config) as nodes:
        pool = nodes.outbound[0].rpc_pool(
            StressService.Client,
            size=STORM_POOL_SIZE,
            exclusive=True,
            acquire_timeout=10,
            config=CONFIG,
        )

        async def task(task_id: int) -> None:
            nonlocal done
            request = StressRequest(task=task_id, num_items=3, item_size=64, delay_ms=30)
            async with pool.lease() as client:
                async with client.stream_items(request) as items:  # type: ignore[attr-defined]
                    index = 0
                    async for item in items:
                        check_item(item.data, task_id, index, 64)
                        index += 1
            done += 1

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for task_id in range(STORM_TASKS):
                    tg.start_soon(task, task_id)
        await pool.aclose()
        await nodes.wait_idle()
        refused = nodes.refused(STRESS_PROTOCOL)
    assert done == STORM_TASKS  # every task got a session in the end
    assert refused[RejectReason.NO_CLIENT_SESSIONS_AVAILABLE] > 0  # the cap was hit
    # Each waiter may learn about the cap once; a storm is many refusals per waiter.
    assert refused.total() <= STORM_TASKS, dict(refused)

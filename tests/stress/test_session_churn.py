"""Session pools under churn: demand above the server's caps, with random cancellation.

Three client nodes connect to one server whose RPC caps (``SERVER_CAP`` sessions in all,
``PEER_CAP`` per peer) are below what the clients ask for: each client node runs
``POOLS_PER_NODE`` exclusive pools of ``POOL_SIZE`` sessions (8 sessions wanted per peer, 24
in all). ``TASKS`` tasks lease from those pools (seeded choices of pool, item count and size,
server pacing) and a seeded share of them is cancelled after a random delay, wherever it is:
waiting for a lease, opening a session, or in the middle of a stream.

Every task must end with its items intact, a ``NO_SERVER_SESSIONS_AVAILABLE`` /
``NO_CLIENT_SESSIONS_AVAILABLE`` rejection (from the server, or from an exclusive pool that
found no free session within ``ACQUIRE_TIMEOUT``), or its cancellation; nothing may hang.
The server never exceeds its caps. When the pools are closed, the server's active session
count returns to 0 and no substream is left open on any connection, at either end.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from plait.rpc import (
    RejectReason,
    RpcClientConfig,
    RpcClientPool,
    RpcHandshakeRejected,
    RpcServerConfig,
)

from .harness import MIB, measured, stress_nodes
from .service import STRESS_PROTOCOL, StressRequest, StressService, check_item

if TYPE_CHECKING:
    from plait.rpc import RequestContext

pytestmark = [pytest.mark.anyio, pytest.mark.network]

CLIENT_NODES = 3
POOLS_PER_NODE = 2
POOL_SIZE = 4
SERVER_CAP = 12  # < 3 peers x PEER_CAP < 3 x 2 pools x POOL_SIZE
PEER_CAP = 5  # < 2 pools x POOL_SIZE
TASKS = 200
ACQUIRE_TIMEOUT = 0.2
"""Seconds an exclusive pool waits for a free session before rejecting locally."""
CANCEL_SHARE = 0.3
"""Share of the tasks cancelled after a random delay."""
MAX_CANCEL_DELAY = 0.05
SEED = 20240917
ROUND_HANG_GUARD = 10.0
"""Seconds a round of 200 tasks may take before it counts as a hang (it takes well under
one); a guard, not a target."""
REJECTIONS = (RejectReason.NO_SERVER_SESSIONS_AVAILABLE, RejectReason.NO_CLIENT_SESSIONS_AVAILABLE)
CLIENT_CONFIG = RpcClientConfig(deadline=10, deadline_grace_period=10, handshake_timeout=10)


@dataclass(frozen=True)
class Plan:
    """What one task does (drawn from its own seeded generator)."""

    pool: int
    items: int
    item_size: int
    delay_ms: int
    cancel_after: float | None


def plans(round_no: int, item_sizes: tuple[int, ...]) -> list[Plan]:
    result = []
    for task in range(TASKS):
        rng = random.Random(SEED * 1000 + round_no * TASKS + task)
        cancel = rng.random() < CANCEL_SHARE
        result.append(
            Plan(
                pool=rng.randrange(CLIENT_NODES * POOLS_PER_NODE),
                items=rng.randint(1, 6),
                item_size=rng.choice(item_sizes),
                delay_ms=rng.randint(0, 3),
                cancel_after=rng.uniform(0.001, MAX_CANCEL_DELAY) if cancel else None,
            )
        )
    return result


class CapWatch:
    """Records the server's session counts each time the service is called."""

    def __init__(self) -> None:
        self.max_total = 0
        self.max_per_peer = 0
        self.count_total = lambda: 0
        self.count_peer = lambda key: 0

    def __call__(self, ctx: RequestContext) -> None:
        self.max_total = max(self.max_total, self.count_total())
        self.max_per_peer = max(self.max_per_peer, self.count_peer(ctx.peer_key))


async def run_churn(
    rounds: int, item_sizes: tuple[int, ...], memory_cap: int, label: str
) -> Counter[str]:
    watch = CapWatch()
    service = StressService(on_call=watch)
    server_config = RpcServerConfig(max_sessions=SERVER_CAP, max_sessions_per_peer=PEER_CAP)
    outcomes: Counter[str] = Counter()
    with measured(label) as measurement:
        async with stress_nodes(
            service, server_config=server_config, clients=CLIENT_NODES
        ) as nodes:
            watch.count_total = lambda: nodes.rpc_server.num_active_sessions
            watch.count_peer = nodes.rpc_server.num_active_sessions_for
            for round_no in range(rounds):
                pools = [
                    nodes.outbound[pool // POOLS_PER_NODE].rpc_pool(
                        StressService.Client,
                        size=POOL_SIZE,
                        exclusive=True,
                        acquire_timeout=ACQUIRE_TIMEOUT,
                        config=CLIENT_CONFIG,
                    )
                    for pool in range(CLIENT_NODES * POOLS_PER_NODE)
                ]

                async def task(task_id: int, plan: Plan, pool: RpcClientPool[Any]) -> None:
                    request = StressRequest(
                        task=task_id,
                        num_items=plan.items,
                        item_size=plan.item_size,
                        delay_ms=plan.delay_ms,
                    )
                    received = 0
                    with anyio.CancelScope() as scope:
                        if plan.cancel_after is not None:
                            scope.deadline = anyio.current_time() + plan.cancel_after
                        try:
                            async with pool.lease() as client:
                                async with client.stream_items(request) as items:  # type: ignore[attr-defined]
                                    async for item in items:
                                        check_item(item.data, task_id, received, plan.item_size)
                                        received += 1
                        except RpcHandshakeRejected as exc:
                            assert exc.reason in REJECTIONS, exc
                            outcomes[exc.reason.name] += 1
                            return
                    if scope.cancelled_caught:
                        outcomes["cancelled"] += 1
                    else:
                        assert received == plan.items, (task_id, received, plan)
                        outcomes["ok"] += 1

                with anyio.fail_after(ROUND_HANG_GUARD):
                    async with anyio.create_task_group() as tg:
                        for task_id, plan in enumerate(plans(round_no, item_sizes)):
                            tg.start_soon(task, round_no * TASKS + task_id, plan, pools[plan.pool])
                for pool in pools:
                    assert pool.statistics().leases == 0
                    assert pool.statistics().opening_sessions == 0
                    await pool.aclose()
                await nodes.wait_idle()
                assert nodes.rpc_server.num_active_sessions == 0
                assert nodes.streams_open() == 0
            refused = nodes.refused(STRESS_PROTOCOL)
        measurement.notes.append(
            f"outcomes {dict(outcomes)}, refused sessions "
            f"{ {reason.name: count for reason, count in refused.items()} }"
        )
    assert sum(outcomes.values()) == rounds * TASKS
    assert outcomes["ok"] > 0
    assert outcomes["cancelled"] > 0
    assert refused.total() > 0  # the caps were hit
    assert set(refused) <= set(REJECTIONS)
    assert 0 < watch.max_total <= SERVER_CAP
    assert 0 < watch.max_per_peer <= PEER_CAP
    assert measurement.peak_growth < memory_cap, measurement.line()
    return outcomes


async def test_session_pools_under_churn_quick(anyio_backend: str) -> None:
    await run_churn(3, (256, 4096), 64 * MIB, f"churn quick ({anyio_backend})")


# 10 rounds of 200 tasks with items up to 256 KiB, on fresh pools each round; asyncio only
# (the quick variant covers trio).
@pytest.mark.stress
@pytest.mark.timeout(900)
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_session_pools_under_churn_full(anyio_backend: str) -> None:
    await run_churn(10, (1024, 64 * 1024, 256 * 1024), 256 * MIB, f"churn full ({anyio_backend})")

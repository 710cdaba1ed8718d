"""RpcClientPool over real TCP sessions (ports of tari's lazy_pool tests, wire.md §6.3)."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from plait.rpc import PoolConfig, RejectReason, RpcServerConfig
from plait.rpc.client import RpcClient
from plait.rpc.errors import RpcHandshakeRejected, SessionClosedError
from plait.rpc.greeting import GREETING_PROTOCOL, Greeting, GreetingClient
from plait.rpc.pool import RpcClientPool
from plait.rpc.proto.greeting_pb2 import SayHelloRequest

from .test_client_server import FAST, PEER_A, Harness, harness

pytestmark = [pytest.mark.anyio, pytest.mark.network]


class Connector:
    """Opens sessions through the harness and counts them."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.opened = 0
        self.refused = 0

    async def __call__(self) -> RpcClient:
        stream, _ = await self.h.open(PEER_A)
        try:
            client = await RpcClient.connect(stream, config=FAST, protocol=GREETING_PROTOCOL)
        except RpcHandshakeRejected:
            self.refused += 1
            raise
        self.opened += 1
        return client


def make_pool(h: Harness, **config: object) -> tuple[RpcClientPool[GreetingClient], Connector]:
    connector = Connector(h)
    return RpcClientPool(connector, Greeting.Client, PoolConfig(**config)), connector  # type: ignore[arg-type]


async def hello(client: GreetingClient) -> str:
    return (await client.say_hello(SayHelloRequest(name="pool"))).greeting


async def test_it_connects_lazily() -> None:
    async with harness() as h:
        pool, connector = make_pool(h, size=2)
        assert connector.opened == 0
        async with pool.lease() as first:
            assert connector.opened == 1
            async with pool.lease() as second:
                assert connector.opened == 2
                assert first is not second
                assert await hello(second) == "Sawubona pool"
        await pool.aclose()


async def test_it_reuses_an_idle_session() -> None:
    async with harness() as h:
        pool, connector = make_pool(h, size=2)
        async with pool.lease() as first:
            pass
        async with pool.lease() as again:
            assert again is first
        assert connector.opened == 1
        await pool.aclose()


async def test_it_reuses_least_used_sessions_when_full() -> None:
    async with harness() as h:
        pool, connector = make_pool(h, size=2)
        async with pool.lease() as c1, pool.lease() as c2, pool.lease() as c3, pool.lease() as c4:
            assert connector.opened == 2
            assert {id(c3), id(c4)} == {id(c1), id(c2)}
            assert pool.statistics().leases == 4
            assert await hello(c3) == "Sawubona pool"
        assert pool.statistics().idle_sessions == 2
        await pool.aclose()


async def test_it_reuses_used_sessions_if_necessary() -> None:
    async with harness() as h:
        pool, connector = make_pool(h, size=1)
        async with pool.lease() as first, pool.lease() as second:
            assert first is second
        assert connector.opened == 1
        await pool.aclose()


async def test_it_falls_back_when_the_server_has_no_more_sessions() -> None:
    async with harness(RpcServerConfig(max_sessions=1)) as h:
        pool, _ = make_pool(h, size=2)
        async with pool.lease() as first, pool.lease() as second:
            assert second is first
            assert pool.statistics().open_sessions == 1
            assert pool.statistics().leases == 2
            assert await hello(second) == "Sawubona pool"
        await pool.aclose()


async def test_rejection_with_no_session_raises() -> None:
    async with harness(RpcServerConfig(max_sessions=0)) as h:
        pool, _ = make_pool(h, size=2)
        with pytest.raises(RpcHandshakeRejected) as info:
            async with pool.lease():
                pass
        assert info.value.reason is RejectReason.NO_SERVER_SESSIONS_AVAILABLE
        assert pool.statistics().opening_sessions == 0


async def test_it_prunes_closed_sessions() -> None:
    async with harness() as h:
        pool, connector = make_pool(h, size=2)
        async with pool.lease() as first, pool.lease() as second:
            pass
        await first.aclose()
        async with pool.lease() as third:
            assert third is second
            assert pool.statistics().open_sessions == 1
            async with pool.lease() as fourth:
                assert fourth is not second
                assert connector.opened == 3
        await pool.aclose()


async def test_exclusive_pool_times_out_with_no_client_sessions_available() -> None:
    async with harness() as h:
        pool, _ = make_pool(h, size=1, exclusive=True, acquire_timeout=0.2)
        async with pool.lease():
            with pytest.raises(RpcHandshakeRejected) as info:
                async with pool.lease():
                    pass
        assert info.value.reason is RejectReason.NO_CLIENT_SESSIONS_AVAILABLE
        await pool.aclose()


async def test_exclusive_waiter_gets_the_released_session() -> None:
    async with harness() as h:
        pool, connector = make_pool(h, size=1, exclusive=True, acquire_timeout=10)
        leased = anyio.Event()
        release = anyio.Event()
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
        assert seen[0] is seen[1]
        assert connector.opened == 1
        await pool.aclose()


async def test_many_tasks_over_a_small_pool() -> None:
    async with harness() as h:
        pool, connector = make_pool(h, size=3)
        results: list[str] = []

        async def worker(i: int) -> None:
            async with pool.lease() as client:
                reply = await client.say_hello(SayHelloRequest(name=str(i), language=i % 8))
                results.append(reply.greeting)

        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(worker, i)
        assert len(results) == 30
        assert connector.opened <= 3
        await pool.aclose()


async def test_closed_pool_refuses_leases() -> None:
    async with harness() as h:
        pool, _ = make_pool(h, size=1)
        async with pool.lease() as client:
            pass
        await pool.aclose()
        assert not client.is_connected
        with pytest.raises(SessionClosedError):
            async with pool.lease():
                pass
        assert "closed" in repr(pool)


async def test_exclusive_pool_larger_than_the_server_cap_does_not_storm_it() -> None:
    """Ten tasks over an exclusive pool of four, the server admitting two sessions per peer:
    once refused, the pool waits for leases instead of opening (and being refused) again."""
    async with harness(RpcServerConfig(max_sessions=10, max_sessions_per_peer=2)) as h:
        pool, connector = make_pool(h, size=4, exclusive=True, acquire_timeout=10)
        done = 0

        async def worker(i: int) -> None:
            nonlocal done
            async with pool.lease() as client:
                for _ in range(20):  # hold the session a while: refusals would pile up
                    assert await hello(client) == "Sawubona pool"
            done += 1

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for i in range(10):
                    tg.start_soon(worker, i)
        assert done == 10
        assert connector.opened == 2
        # The four first acquires open at once; the two beyond the cap are refused, no more.
        assert connector.refused <= 2
        await pool.aclose()


async def test_a_waiter_cancelled_as_it_is_woken_passes_the_session_on() -> None:
    """A release wakes one waiter; if that one is being cancelled, the next gets the
    session at once instead of waiting for ``acquire_timeout``."""
    async with harness() as h:
        pool, connector = make_pool(h, size=1, exclusive=True, acquire_timeout=10)
        first_scope = anyio.CancelScope()
        served: list[str] = []

        async def waiter(name: str, scope: anyio.CancelScope) -> None:
            with scope:
                async with pool.lease() as client:
                    served.append(name)
                    assert await hello(client) == "Sawubona pool"

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                async with pool.lease():
                    tg.start_soon(waiter, "first", first_scope)
                    tg.start_soon(waiter, "second", anyio.CancelScope())
                    while pool_waiters(pool) < 2:
                        await anyio.lowlevel.checkpoint()
                    first_scope.cancel()  # ...and the release below wakes it
        assert first_scope.cancelled_caught
        assert served == ["second"]
        assert pool.statistics().leases == 0
        assert connector.opened == 1
        await pool.aclose()


def pool_waiters(pool: RpcClientPool[GreetingClient]) -> int:
    return len(pool._waiters)

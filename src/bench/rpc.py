"""The RPC layer: plait.rpc sessions on Yamux substreams of the full stack.

Each measurement sets up one Yamux-over-Noise-over-TCP connection; the listening side runs
an :class:`~plait.rpc.RpcServer` with :class:`BenchService` on every inbound substream
(``serve_session``), the dialing side opens substreams and sessions with
:meth:`BenchService.Client.connect <plait.rpc.ServiceClient.connect>`. There is no protocol
negotiation on the substreams (a Node adds one optimistic frame per substream, wire.md §2.2).
The session caps are lifted (``max_sessions=None``): this measures speed, not admission.

========================  ==========================================================
rpc-unary                 sequential unary calls with a 100-byte payload, one session (/s)
rpc-unary-pool            the same from 64 concurrent callers leasing from a pool of 8
rpc-stream-1k             server-streaming items of 1 KiB, one call (items/s)
rpc-stream-1m             server-streaming items of 1 MiB, one call (items/s)
rpc-session               substream open + session handshake + close, sequential (/s)
========================  ==========================================================
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

import anyio

from ..rpc import (
    PoolConfig,
    RequestContext,
    ResponseStream,
    RpcClient,
    RpcClientPool,
    RpcError,
    RpcServer,
    RpcServerConfig,
    Service,
    ServiceClient,
    rpc,
)
from ..rpc.proto.greeting_pb2 import Blob, SlowStreamRequest
from ._net import MuxPair, mux_pair
from .model import Check, KiB, LayerParts, MiB, Settings, Variant

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from ..muxer import MuxedStream

__all__ = (
    "BENCH_PROTOCOL",
    "POOL_CALLERS",
    "POOL_SIZE",
    "UNARY_PAYLOAD",
    "BenchClient",
    "BenchService",
    "rpc_layer",
)

BENCH_PROTOCOL = b"/plait/bench/1"
UNARY_PAYLOAD = 100
"""Bytes of the unary request and reply payload (the raw ping-pong's message size)."""
POOL_SIZE = 8
"""Sessions in the pool of ``rpc-unary-pool``."""
POOL_CALLERS = 64
"""Concurrent callers of ``rpc-unary-pool``."""


class BenchClient(ServiceClient):
    """Typed client of :class:`BenchService`."""

    async def echo(self, request: Blob) -> Blob:
        return await self._unary(1, request, Blob)

    def items(self, request: SlowStreamRequest) -> ResponseStream[Blob]:
        return self._server_streaming(2, request, Blob)


class BenchService(Service, protocol=BENCH_PROTOCOL):
    """Echo (method 1) and a stream of ``num_items`` blobs of ``item_size`` bytes (2)."""

    Client: ClassVar[type[BenchClient]] = BenchClient

    @rpc(method=1)
    async def echo(self, request: Blob, ctx: RequestContext) -> Blob:
        return request

    @rpc(method=2, streaming=True)
    async def items(self, request: SlowStreamRequest, ctx: RequestContext) -> AsyncIterator[Blob]:
        item = Blob(data=bytes(request.item_size))
        for _ in range(request.num_items):
            yield item


async def _serve(pair: MuxPair, server: RpcServer) -> None:
    """Serve an RPC session on every inbound substream until cancelled."""
    async with anyio.create_task_group() as tg:

        async def session(stream: MuxedStream) -> None:
            try:
                await server.serve_session(stream, pair.client_key, BENCH_PROTOCOL)
            except (RpcError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # a client that left: not this benchmark's business

        while True:
            tg.start_soon(session, await pair.server.accept_stream())


async def _with_server(work: Callable[[MuxPair], Awaitable[float]]) -> float:
    server = RpcServer(RpcServerConfig(max_sessions=None, max_sessions_per_peer=None))
    server.add_service(BenchService())
    async with mux_pair(True) as pair, anyio.create_task_group() as tg:
        tg.start_soon(_serve, pair, server)
        result = await work(pair)
        tg.cancel_scope.cancel()
    return result


async def _open(pair: MuxPair) -> BenchClient:
    return await BenchClient.connect(await pair.client.open_stream())


async def unary_rate(settings: Settings) -> float:
    count = settings.pick(5000, 300)
    request = Blob(data=bytes(UNARY_PAYLOAD))

    async def work(pair: MuxPair) -> float:
        async with await _open(pair) as client:
            for _ in range(10):
                await client.echo(request)
            start = time.perf_counter()
            for _ in range(count):
                await client.echo(request)
            return count / (time.perf_counter() - start)

    return await _with_server(work)


async def pool_rate(settings: Settings) -> float:
    per_caller = settings.pick(100, 8)
    request = Blob(data=bytes(UNARY_PAYLOAD))

    async def work(pair: MuxPair) -> float:
        async def connect() -> RpcClient:
            stream = await pair.client.open_stream()
            return await RpcClient.connect(stream, protocol=BENCH_PROTOCOL)

        pool = RpcClientPool(connect, BenchClient, PoolConfig(size=POOL_SIZE))
        try:

            async def caller(calls: int) -> None:
                for _ in range(calls):
                    async with pool.lease() as client:
                        await client.echo(request)

            async with anyio.create_task_group() as tg:  # warm up: opens the sessions
                for _ in range(POOL_CALLERS):
                    tg.start_soon(caller, 1)
            start = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for _ in range(POOL_CALLERS):
                    tg.start_soon(caller, per_caller)
            elapsed = time.perf_counter() - start
        finally:
            await pool.aclose()
        return POOL_CALLERS * per_caller / elapsed

    return await _with_server(work)


async def stream_rate(item_size: int, count: int) -> float:
    request = SlowStreamRequest(num_items=count, item_size=item_size)

    async def work(pair: MuxPair) -> float:
        async with await _open(pair) as client:
            async for _ in client.items(SlowStreamRequest(num_items=2, item_size=item_size)):
                pass
            got = 0
            start = time.perf_counter()
            async for item in client.items(request):
                got += len(item.data)
            elapsed = time.perf_counter() - start
        if got != count * item_size:
            raise RuntimeError(f"streamed {got} bytes, expected {count * item_size}")
        return count / elapsed

    return await _with_server(work)


async def session_rate(settings: Settings) -> float:
    count = settings.pick(1000, 50)

    async def work(pair: MuxPair) -> float:
        for _ in range(5):
            await (await _open(pair)).aclose()
        start = time.perf_counter()
        for _ in range(count):
            await (await _open(pair)).aclose()
        return count / (time.perf_counter() - start)

    return await _with_server(work)


def rpc_layer(settings: Settings) -> LayerParts:
    big_items = max(2, settings.size // MiB)
    return LayerParts(
        variants=[
            Variant(
                name="rpc-unary", layer="rpc", unit="/s",
                note=f"unary {UNARY_PAYLOAD}-byte echo round trips, one session",
                run=unary_rate,
            ),
            Variant(
                name="rpc-unary-pool", layer="rpc", unit="/s",
                note=f"unary echo, {POOL_CALLERS} callers over a pool of {POOL_SIZE} sessions",
                run=pool_rate,
            ),
            Variant(
                name="rpc-stream-1k", layer="rpc", unit="items/s",
                note="server-streaming 1 KiB items, one call",
                run=lambda s: stream_rate(KiB, s.pick(20000, 1000)),
            ),
            Variant(
                name="rpc-stream-1m", layer="rpc", unit="items/s",
                note="server-streaming 1 MiB items, one call (items/s × 1.05 = MB/s)",
                run=lambda s: stream_rate(MiB, s.pick(big_items, 4)),
            ),
            Variant(
                name="rpc-session", layer="rpc", unit="/s",
                note="substream open + session handshake + close",
                run=session_rate,
            ),
        ],
        checks=[
            Check(layer="rpc", numerator="rpc-unary", denominator="tcp-pingpong", target=0.50),
            Check(layer="rpc", numerator="rpc-unary-pool", denominator="tcp-pingpong"),
            Check(layer="rpc", numerator="rpc-unary", denominator="stack-pingpong"),
            Check(layer="rpc", numerator="rpc-stream-1k", denominator="tcp-pingpong"),
            Check(layer="rpc", numerator="rpc-stream-1m", denominator="tcp-pingpong"),
            Check(layer="rpc", numerator="rpc-session", denominator="tcp-pingpong"),
        ],
    )

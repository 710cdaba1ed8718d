"""The RPC server's workers share one cancel scope across requests (src/rpc/server.py): a
cancelled handler that is still finishing when the next request starts must not take that
request's deadline or interrupts with it. Over Yamux on TCP and on Noise/TCP, both
backends."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from plait.bench._net import mux_pair
from plait.rpc import RpcClientConfig, RpcServer, RpcServerConfig
from plait.rpc.proto.greeting_pb2 import Text
from plait.rpc.service import RequestContext, Service, rpc

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from plait.bench._net import MuxPair

pytestmark = pytest.mark.anyio

SECURE = pytest.mark.parametrize("secure", [False, True], ids=["tcp", "noise"])


class Slow(Service, protocol="/test/worker-scope/1"):
    """Sleeps ``name:seconds``; a cancelled ``first`` request rolls back for 0.5 s under a
    shield, so it is still running when the next request starts."""

    def __init__(self) -> None:
        self.cancelled: dict[str, anyio.Event] = {}

    def was_cancelled(self, name: str) -> anyio.Event:
        return self.cancelled.setdefault(name, anyio.Event())

    @rpc(method=1)
    async def slow(self, request: Text, ctx: RequestContext) -> Text:
        name, seconds = request.value.split(":")
        try:
            await anyio.sleep(float(seconds))
        except anyio.get_cancelled_exc_class():
            self.was_cancelled(name).set()
            if name == "first":
                with anyio.CancelScope(shield=True):  # a roll-back
                    await anyio.sleep(0.5)
            raise
        return Text(value="ok")


@asynccontextmanager
async def _session(pair: MuxPair, service: Slow, config: RpcClientConfig) -> AsyncIterator[Any]:
    server = RpcServer(RpcServerConfig(min_deadline=1))
    server.add_service(service)
    async with anyio.create_task_group() as tg:
        client_stream = await pair.client.open_stream()
        tg.start_soon(
            server.serve_session, await pair.server.accept_stream(), b"k" * 32, Slow.protocol
        )
        client = await Slow.Client.connect(client_stream, config=config)
        yield client
        await client.aclose()
        tg.cancel_scope.cancel()


@SECURE
async def test_the_next_request_keeps_its_deadline(secure: bool) -> None:
    service = Slow()
    config = RpcClientConfig(deadline=1, deadline_grace_period=10)
    async with mux_pair(secure) as pair:
        async with _session(pair, service, config) as client:
            with anyio.move_on_after(0.2):
                await client.slow(Text(value="first:10"))  # interrupted by the client
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.slow, Text(value="second:5"))
                started = anyio.current_time()
                # the server's own 1 s deadline cancels it, long before the client gives up
                with anyio.fail_after(3):
                    await service.was_cancelled("second").wait()
                assert anyio.current_time() - started >= 0.9
                tg.cancel_scope.cancel()


@SECURE
async def test_the_next_request_stays_interruptible(secure: bool) -> None:
    service = Slow()
    config = RpcClientConfig(deadline=10, deadline_grace_period=3)
    async with mux_pair(secure) as pair:
        async with _session(pair, service, config) as client:
            with anyio.move_on_after(0.2):
                await client.slow(Text(value="first:10"))
            with anyio.move_on_after(0.8):
                await client.slow(Text(value="second:5"))
            # the client's interrupt reached the handler (it would otherwise run 5 s)
            with anyio.fail_after(2):
                await service.was_cancelled("second").wait()
            assert (await client.slow(Text(value="third:0"))).value == "ok"

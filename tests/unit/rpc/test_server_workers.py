"""The server session's two workers (server.py): a handler runs in the task that read its
request; the reader's role passes to the other worker only when the handler waits."""

from __future__ import annotations

import anyio
import pytest
from plait.rpc.proto.greeting_pb2 import Text
from plait.rpc.server import _inline
from plait.rpc.service import RequestContext, Service, rpc

from .test_client_server import FAST, harness

pytestmark = [pytest.mark.anyio, pytest.mark.network]


async def test_inline_without_waiting_never_calls_on_wait() -> None:
    calls: list[str] = []

    async def quick() -> None:
        calls.append("ran")

    await _inline(quick(), lambda: calls.append("wait"))
    assert calls == ["ran"]


async def test_inline_calls_on_wait_once_before_the_first_wait() -> None:
    calls: list[str] = []

    async def slow() -> None:
        calls.append("start")
        await anyio.sleep(0)
        calls.append("middle")
        await anyio.sleep(0)
        calls.append("end")

    await _inline(slow(), lambda: calls.append("wait"))
    assert calls == ["start", "wait", "middle", "end"]


async def test_inline_propagates_exceptions_and_cancellation() -> None:
    cleaned = anyio.Event()

    async def failing() -> None:
        await anyio.sleep(0)
        raise KeyError("boom")

    with pytest.raises(KeyError):
        await _inline(failing(), lambda: None)

    async def blocked() -> None:
        try:
            await anyio.sleep(60)
        finally:
            cleaned.set()

    with anyio.move_on_after(0.05) as scope:
        await _inline(blocked(), lambda: None)
    assert scope.cancelled_caught
    assert cleaned.is_set()


class MixedService(Service, protocol="/test/mixed/1"):
    """Method 1 answers without waiting; method 2 waits first."""

    @rpc(method=1)
    async def quick(self, request: Text, ctx: RequestContext) -> Text:
        return Text(value="quick " + request.value)

    @rpc(method=2)
    async def waiting(self, request: Text, ctx: RequestContext) -> Text:
        await anyio.sleep(0)
        return Text(value="waited " + request.value)


async def test_quick_and_waiting_handlers_alternate_on_one_session() -> None:
    """The reader's role stays with a worker whose handler never waits and moves to the
    other worker when one does; every reply still matches its call."""
    service = MixedService()
    async with harness(None, service) as h:
        stream, _ = await h.open(protocol=MixedService.protocol)
        client = await MixedService.Client.connect(stream, config=FAST)
        with anyio.fail_after(10):
            for i, kind in enumerate("qqwqwwqwq"):
                name = client.quick if kind == "q" else client.waiting  # type: ignore[attr-defined]
                reply = await name(Text(value=str(i)))
                assert reply.value == ("quick " if kind == "q" else "waited ") + str(i)

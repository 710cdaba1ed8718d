"""RpcClient and RpcServer over real TCP on 127.0.0.1 (ports of tari's smoke tests, wire.md §6.1).

Every test runs on both anyio backends; time figures are hang guards, not targets.
"""

from __future__ import annotations

import gc
import logging
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import pytest
from plait.rpc import (
    RejectReason,
    RpcClientConfig,
    RpcServerConfig,
    StatusCode,
)
from plait.rpc.client import RpcClient
from plait.rpc.errors import (
    RpcDeadlineExceeded,
    RpcHandshakeRejected,
    RpcProtocolViolation,
    RpcStatusError,
    SessionClosedError,
)
from plait.rpc.greeting import GREETING_PROTOCOL, Greeting, GreetingClient
from plait.rpc.proto.greeting_pb2 import (
    Blob,
    Empty,
    GetGreetingsRequest,
    ReplySizeRequest,
    SayHelloRequest,
    SlowStreamRequest,
    Text,
)
from plait.rpc.server import INTERNAL_ERROR_DETAILS, RpcServer
from plait.rpc.service import RequestContext, Service, rpc

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import SocketStream, TaskGroup

pytestmark = [pytest.mark.anyio, pytest.mark.network]

PEER_A = bytes(range(32))
PEER_B = bytes(range(1, 33))
FAST = RpcClientConfig(deadline=5, deadline_grace_period=5, handshake_timeout=5)


async def tcp_pair() -> tuple[SocketStream, SocketStream]:
    """A connected pair of TCP streams on 127.0.0.1."""
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with multi:
        listener = multi.listeners[0]
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        client = await anyio.connect_tcp("127.0.0.1", port)
        server = await listener.accept()  # type: ignore[attr-defined]
    return client, server


@dataclass
class Served:
    """One server-side session's outcome."""

    done: anyio.Event = field(default_factory=anyio.Event)
    error: BaseException | None = None


@dataclass
class Harness:
    server: RpcServer
    task_group: TaskGroup
    streams: list[SocketStream] = field(default_factory=list)

    async def open(
        self, peer_key: bytes = PEER_A, protocol: bytes = GREETING_PROTOCOL
    ) -> tuple[SocketStream, Served]:
        """A client stream whose server end is being served."""
        client_stream, server_stream = await tcp_pair()
        self.streams.append(client_stream)
        served = Served()

        async def serve() -> None:
            try:
                await self.server.serve_session(server_stream, peer_key, protocol)
            except RpcProtocolViolation as exc:
                served.error = exc
            finally:
                served.done.set()

        self.task_group.start_soon(serve)
        return client_stream, served

    async def connect(
        self,
        peer_key: bytes = PEER_A,
        config: RpcClientConfig = FAST,
        protocol: bytes = GREETING_PROTOCOL,
    ) -> tuple[GreetingClient, Served]:
        stream, served = await self.open(peer_key, protocol)
        return await Greeting.Client.connect(stream, config=config), served


@asynccontextmanager
async def harness(
    config: RpcServerConfig | None = None, *services: Service
) -> AsyncIterator[Harness]:
    server = RpcServer(config or RpcServerConfig(max_sessions=10, min_deadline=0))
    for service in services or (Greeting(),):
        server.add_service(service)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as task_group:
            h = Harness(server, task_group)
            try:
                yield h
            finally:
                for stream in h.streams:
                    await stream.aclose()
                task_group.cancel_scope.cancel()


async def test_request_response_errors_and_streaming() -> None:
    async with harness() as h:
        client, _ = await h.connect()
        assert client.last_request_latency is not None  # the handshake round trip
        reply = await client.say_hello(SayHelloRequest(name="Yathvan", language=1))
        assert reply.greeting == "Jambo Yathvan"

        items = [t.value async for t in client.get_greetings(GetGreetingsRequest(num=4))]
        assert items == ["Sawubona", "Jambo", "Bonjour", "Hello"]

        with pytest.raises(RpcStatusError) as info:
            await client.return_error()
        assert info.value.code is StatusCode.NOT_IMPLEMENTED
        assert info.value.details == "I haven't gotten to this yet :("

        with pytest.raises(RpcStatusError) as info:
            async for _ in client.streaming_error(Text(value="Gurglesplurb")):
                pass
        assert info.value.code is StatusCode.BAD_REQUEST
        assert info.value.details == "What does 'Gurglesplurb' mean?"

        results: list[object] = []
        with pytest.raises(RpcStatusError) as info:
            async for text in client.streaming_error2():
                results.append(text.value)
        assert results == ["This is ok"]
        assert (info.value.code, info.value.details) == (
            StatusCode.BAD_REQUEST,
            "This is a problem",
        )

        key = await client.get_public_key_hex()
        assert key.value == PEER_A.hex()

        with pytest.raises(RpcStatusError, match="`9` is not a valid language identifier"):
            await client.say_hello(SayHelloRequest(name="x", language=9))

        await client.aclose()
        assert not client.is_connected
        with pytest.raises(SessionClosedError):
            await client.say_hello(SayHelloRequest(name="x"))


async def test_concurrent_requests_on_one_session_queue_and_all_succeed() -> None:
    async with harness() as h:
        client, _ = await h.connect()
        results: dict[str, object] = {}

        async def hello(key: str, language: int, name: str) -> None:
            reply = await client.say_hello(SayHelloRequest(name=name, language=language))
            results[key] = reply.greeting

        async def greetings() -> None:
            stream = client.get_greetings(GetGreetingsRequest(num=5))
            results["stream"] = [t.value async for t in stream]

        async with anyio.create_task_group() as tg:
            tg.start_soon(hello, "a", 2, "Madeupington")
            tg.start_soon(greetings)
            tg.start_soon(hello, "b", 1, "Yathvan")
        assert results == {
            "a": "Bonjour Madeupington",
            "b": "Jambo Yathvan",
            "stream": ["Sawubona", "Jambo", "Bonjour", "Hello", "Molo"],
        }


async def test_response_too_big_and_the_session_survives() -> None:
    async with harness() as h:
        client, _ = await h.connect()
        with pytest.raises(RpcStatusError) as info:
            await client.reply_with_msg_of_size(ReplySizeRequest(size=4194280 - 4))
        assert info.value.code is StatusCode.MALFORMED_RESPONSE
        reply = await client.reply_with_msg_of_size(ReplySizeRequest(size=4194280 - 5))
        assert len(reply.data) == 4194275


async def test_ping() -> None:
    async with harness() as h:
        client, _ = await h.connect()
        latency = await client.ping()
        assert 0 <= latency < 5
        assert (await client.say_hello(SayHelloRequest(name="p"))).greeting == "Sawubona p"


async def test_server_closing_before_the_handshake() -> None:
    client_stream, server_stream = await tcp_pair()
    await server_stream.aclose()
    with anyio.fail_after(10), pytest.raises(SessionClosedError):
        await RpcClient.connect(client_stream, config=FAST)
    await client_stream.aclose()


async def test_unknown_protocol_is_rejected() -> None:
    async with harness() as h:
        with pytest.raises(RpcHandshakeRejected) as info:
            await h.connect(protocol=b"this-is-junk")
        assert info.value.reason is RejectReason.PROTOCOL_NOT_SUPPORTED


async def test_rejected_when_no_sessions_are_available() -> None:
    async with harness(RpcServerConfig(max_sessions=0)) as h:
        with pytest.raises(RpcHandshakeRejected) as info:
            await h.connect()
        assert info.value.reason is RejectReason.NO_SERVER_SESSIONS_AVAILABLE
        assert h.server.num_active_sessions == 0


async def test_max_global_sessions_and_prompt_release() -> None:
    async with harness(RpcServerConfig(max_sessions=1)) as h:
        first, served = await h.connect(PEER_A)
        assert h.server.num_active_sessions == 1
        with pytest.raises(RpcHandshakeRejected) as info:
            await h.connect(PEER_B)
        assert info.value.reason is RejectReason.NO_SERVER_SESSIONS_AVAILABLE
        await first.aclose()
        await served.done.wait()  # the server saw the close: the slot is free
        assert h.server.num_active_sessions == 0
        third, _ = await h.connect(PEER_B)
        assert (await third.say_hello(SayHelloRequest(name="3"))).greeting == "Sawubona 3"


async def test_max_per_peer_sessions() -> None:
    config = RpcServerConfig(max_sessions=3, max_sessions_per_peer=1)
    async with harness(config) as h:
        first, served = await h.connect(PEER_A)
        with pytest.raises(RpcHandshakeRejected) as info:
            await h.connect(PEER_A)
        assert info.value.reason is RejectReason.NO_CLIENT_SESSIONS_AVAILABLE
        await h.connect(PEER_B)  # another peer still gets one
        assert h.server.num_active_sessions_for(PEER_A) == 1
        await first.aclose()
        await served.done.wait()
        assert h.server.num_active_sessions_for(PEER_A) == 0
        await h.connect(PEER_A)


class CountingGreeting(Greeting):
    def __init__(self) -> None:
        super().__init__()
        self.slow_stream_calls = 0
        self.interrupted = anyio.Event()

    @rpc(method=8, streaming=True)
    async def slow_stream(
        self, request: SlowStreamRequest, ctx: RequestContext
    ) -> AsyncIterator[Blob]:
        self.slow_stream_calls += 1
        try:
            async with aclosing(super().slow_stream(request, ctx)) as items:
                async for item in items:
                    yield item
        finally:
            self.interrupted.set()


async def test_stream_still_works_after_cancel() -> None:
    service = CountingGreeting()
    async with harness(None, service) as h:
        client, _ = await h.connect()
        request = SlowStreamRequest(num_items=100, item_size=100, delay_ms=10)
        async with client.slow_stream(request):
            pass  # dropped at once
        with anyio.fail_after(10):
            await service.interrupted.wait()
        assert service.slow_stream_calls == 1
        items = [item async for item in client.slow_stream(request)]
        assert len(items) == 100
        assert all(item.data == bytes(100) for item in items)


async def test_stream_interruption_handling() -> None:
    async with harness() as h:
        client, _ = await h.connect()
        async with client.slow_stream(
            SlowStreamRequest(num_items=10000, item_size=100, delay_ms=100)
        ) as stream:
            async for _ in stream:
                break
        with anyio.fail_after(10):
            async with client.slow_stream(
                SlowStreamRequest(num_items=100, item_size=100, delay_ms=1)
            ) as stream:
                first = await stream.__anext__()
        assert first.data == bytes(100)


async def test_dropped_stream_is_interrupted_by_the_next_call() -> None:
    async with harness() as h:
        client, _ = await h.connect()
        stream = client.slow_stream(SlowStreamRequest(num_items=1000, item_size=10, delay_ms=5))
        await stream.__anext__()
        del stream
        gc.collect()
        reply = await client.say_hello(SayHelloRequest(name="after", language=3))
        assert reply.greeting == "Hello after"


class SlowService(Service, protocol="/test/slow/1"):
    def __init__(self) -> None:
        self.delay = 10.0
        self.cancelled = anyio.Event()

    @rpc(method=1)
    async def say_hello(self, request: Text, ctx: RequestContext) -> Text:
        try:
            await anyio.sleep(self.delay)
        except anyio.get_cancelled_exc_class():
            self.cancelled.set()
            raise
        return Text(value="took a while to load")

    @rpc(method=2)
    async def fail(self, request: Empty, ctx: RequestContext) -> Empty:
        raise KeyError("secret internals")


async def test_timeout_keeps_the_session() -> None:
    service = SlowService()
    config = RpcServerConfig(min_deadline=1)
    async with harness(config, service) as h:
        stream, _ = await h.open(protocol=SlowService.protocol)
        client = await SlowService.Client.connect(
            stream, config=RpcClientConfig(deadline=1, deadline_grace_period=0.25)
        )
        with anyio.fail_after(10), pytest.raises(RpcDeadlineExceeded) as info:
            await client.say_hello(Text(value="x"))  # type: ignore[attr-defined]
        assert info.value.code is StatusCode.TIMEOUT
        assert service.cancelled.is_set()  # the server gave up at its deadline
        service.delay = 0
        reply = await client.say_hello(Text(value="x"))  # type: ignore[attr-defined]
        assert reply.value == "took a while to load"


async def test_cancelled_call_interrupts_and_the_next_call_gets_its_own_reply() -> None:
    service = SlowService()
    async with harness(None, service) as h:
        stream, _ = await h.open(protocol=SlowService.protocol)
        client = await SlowService.Client.connect(stream, config=FAST)
        with anyio.move_on_after(0.1):
            await client.say_hello(Text(value="x"))  # type: ignore[attr-defined]
        with anyio.fail_after(10):
            await service.cancelled.wait()  # the FIN interrupt reached the handler
        service.delay = 0
        reply = await client.say_hello(Text(value="x"))  # type: ignore[attr-defined]
        assert reply.value == "took a while to load"


async def test_handler_exception_becomes_general_and_the_session_continues() -> None:
    service = SlowService()
    service.delay = 0
    async with harness(None, service) as h:
        stream, _ = await h.open(protocol=SlowService.protocol)
        client = await SlowService.Client.connect(stream, config=FAST)
        with pytest.raises(RpcStatusError) as info:
            await client.fail(Empty())  # type: ignore[attr-defined]
        assert (info.value.code, info.value.details) == (StatusCode.GENERAL, INTERNAL_ERROR_DETAILS)
        assert "secret" not in info.value.details
        assert (await client.say_hello(Text())).value == "took a while to load"  # type: ignore[attr-defined]


async def test_unknown_method_and_undecodable_request() -> None:
    async with harness() as h:
        client, _ = await h.connect()
        with pytest.raises(RpcStatusError) as info:
            await client.session.request(99, b"")
        assert (info.value.code, info.value.details) == (
            StatusCode.UNSUPPORTED_METHOD,
            "Method identifier `99` is not recognised or supported",
        )
        with pytest.raises(RpcStatusError) as info:
            await client.session.request(1, b"\xff\xff")
        assert (info.value.code, info.value.details) == (
            StatusCode.BAD_REQUEST,
            "Failed to decode request",
        )
        assert (await client.say_hello(SayHelloRequest(name="ok"))).greeting == "Sawubona ok"


async def test_silent_client_times_out_the_handshake_and_frees_the_slot() -> None:
    config = RpcServerConfig(handshake_timeout=0.2, max_sessions=1)
    async with harness(config) as h:
        stream, served = await h.open()
        await served.done.wait()
        assert h.server.num_active_sessions == 0
        with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            await stream.receive()
        client, _ = await h.connect()  # the only slot is free again
        assert client.is_connected


async def test_bad_flags_end_the_session_and_are_reported() -> None:
    async with harness() as h:
        stream, served = await h.open()
        await stream.send(bytes.fromhex("00000003 0a0100"))
        assert await stream.receive() == bytes.fromhex("00000002 0800")
        await stream.send(bytes.fromhex("00000006 0801 1804 2078"))  # flags 4
        await served.done.wait()
        assert isinstance(served.error, RpcProtocolViolation)
        assert h.server.num_active_sessions == 0


async def test_silent_handshakes_do_not_delay_other_peers() -> None:
    """hardening.md R7: each handshake runs in its own task with its own deadline."""
    config = RpcServerConfig(max_sessions=10, handshake_timeout=20)
    async with harness(config) as h:
        silent = [await h.open(PEER_A) for _ in range(5)]
        client, _ = await h.connect(PEER_B)
        assert await client.ping() >= 0
        assert not any(served.done.is_set() for _, served in silent)


async def test_stream_cancelled_while_queued_can_start_later() -> None:
    async with harness() as h:
        client, _ = await h.connect()
        first = client.get_greetings(GetGreetingsRequest(num=2))
        await first.start()  # owns the session
        second = client.get_greetings(GetGreetingsRequest(num=3))
        with anyio.move_on_after(0.05) as scope:
            await second.start()  # queued behind the first call
        assert scope.cancelled_caught
        assert [t.value async for t in first] == ["Sawubona", "Jambo"]
        assert [t.value async for t in second] == ["Sawubona", "Jambo", "Bonjour"]
        reply = await client.say_hello(SayHelloRequest(name="z", language=4))
        assert reply.greeting == "Molo z"


async def test_calls_cancelled_as_they_start_leave_the_session_free() -> None:
    """A cancellation delivered while a call takes the session (the call gate's fast path)
    must not leave the session owned by nobody."""
    async with harness() as h:
        client, _ = await h.connect()
        starts = (
            lambda: client.say_hello(SayHelloRequest(name="never")),
            lambda: client.get_greetings(GetGreetingsRequest(num=2)).start(),
            client.session.ping,
        )
        for start in starts:
            with anyio.CancelScope() as scope:
                scope.cancel()
                await start()
            assert scope.cancelled_caught
        with anyio.fail_after(5):
            reply = await client.say_hello(SayHelloRequest(name="after", language=3))
            assert [t.value async for t in client.get_greetings(GetGreetingsRequest(num=1))] == [
                "Sawubona"
            ]
            assert await client.session.ping() >= 0
        assert reply.greeting == "Hello after"


class FloodService(Service, protocol="/test/flood/1"):
    """Streams large items as fast as the stream takes them (no await between items)."""

    def __init__(self) -> None:
        self.ended = anyio.Event()

    @rpc(method=1, streaming=True)
    async def flood(self, request: Empty, ctx: RequestContext) -> AsyncIterator[Blob]:
        item = Blob(data=bytes(64 * 1024))
        try:
            for _ in range(100_000):
                yield item
        finally:
            self.ended.set()


@pytest.mark.parametrize("leave", ["close", "end_of_stream"])
async def test_client_leaving_mid_stream_ends_the_call_quietly(
    leave: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Closing the session (TCP resets: data is unread) or half-closing it while the server
    is blocked sending items is normal: no error is logged, the session just ends."""
    caplog.set_level(logging.DEBUG, logger="plait")
    service = FloodService()
    async with harness(None, service) as h:
        stream, served = await h.open(protocol=FloodService.protocol)
        client = await FloodService.Client.connect(stream, config=FAST)
        items = client.flood(Empty())  # type: ignore[attr-defined]
        assert len((await items.__anext__()).data) == 64 * 1024
        with anyio.fail_after(10):
            if leave == "close":
                await client.session.aclose()
            else:
                await stream.send_eof()
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    while True:  # read what the server still sends, until it closes
                        await stream.receive()
            await served.done.wait()
            await service.ended.wait()
        assert served.error is None
        assert h.server.num_active_sessions == 0
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == []

"""Service declarations: @rpc, method tables, generated and explicit clients (wire.md §3.11)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest
from plait.rpc import RpcServer, RpcServerConfig
from plait.rpc.client import ResponseStream
from plait.rpc.greeting import DEFAULT_GREETINGS, GREETING_PROTOCOL, Greeting, GreetingClient
from plait.rpc.proto.greeting_pb2 import Blob, Empty, Text
from plait.rpc.service import MethodInfo, RequestContext, Service, ServiceClient, rpc

from .test_client_server import PEER_A, tcp_pair

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class Echo(Service, protocol="/test/echo/1"):
    @rpc(method=1)
    async def echo(self, request: Text, ctx: RequestContext) -> Text:
        return Text(value=f"{request.value} from {ctx.peer_id[:4]} via {ctx.protocol.decode()}")

    @rpc(method=2, streaming=True)
    async def repeat(self, request: Text, ctx: RequestContext) -> AsyncIterator[Text]:
        for i in range(3):
            yield Text(value=f"{request.value}{i}")

    @rpc(method=3, request=Empty, response=Blob)
    async def explicit(self, request, ctx):  # type: ignore[no-untyped-def]
        return Blob(data=b"explicit")


def test_method_table_from_annotations_and_explicit_types() -> None:
    assert Echo.protocol == b"/test/echo/1"
    assert Echo.methods[1] == MethodInfo(
        number=1, name="echo", streaming=False, request_type=Text, response_type=Text
    )
    assert Echo.methods[2].streaming
    assert (Echo.methods[3].request_type, Echo.methods[3].response_type) == (Empty, Blob)
    assert Echo().method(9) is None
    info, bound = Echo().method(1)  # type: ignore[misc]
    assert info.name == "echo"
    assert callable(bound)


def test_generated_client_class() -> None:
    client_cls = Echo.Client
    assert issubclass(client_cls, ServiceClient)
    assert client_cls.service is Echo
    assert client_cls.__qualname__ == "Echo.Client"
    assert {"echo", "repeat", "explicit"} <= set(vars(client_cls))


def test_greeting_has_an_explicit_typed_client_and_taris_method_numbers() -> None:
    assert Greeting.Client is GreetingClient
    assert GreetingClient.service is Greeting
    assert Greeting.protocol == GREETING_PROTOCOL == b"/plait/greeting/1"
    assert {n: m.name for n, m in Greeting.methods.items()} == {
        1: "say_hello",
        2: "return_error",
        3: "get_greetings",
        4: "streaming_error",
        5: "streaming_error2",
        6: "get_public_key_hex",
        7: "reply_with_msg_of_size",
        8: "slow_stream",
    }
    assert Greeting().greetings == DEFAULT_GREETINGS


def test_blob_encodes_n_plus_5_bytes_in_the_response_too_big_range() -> None:
    assert Blob(data=bytes(4194275)).ByteSize() == 4194280
    assert Blob(data=bytes(4194276)).ByteSize() == 4194281


def test_subclass_inherits_and_overrides_methods() -> None:
    class LoudEcho(Echo):
        @rpc(method=1)
        async def echo(self, request: Text, ctx: RequestContext) -> Text:
            return Text(value=request.value.upper())

    assert LoudEcho.protocol == Echo.protocol
    assert set(LoudEcho.methods) == {1, 2, 3}
    assert LoudEcho.Client.service is LoudEcho
    assert Echo.Client.service is Echo


def test_definition_errors() -> None:
    with pytest.raises(ValueError, match="within 1"):
        rpc(method=0)
    with pytest.raises(TypeError, match="used by both"):

        class _Twice(Service, protocol="/x"):
            @rpc(method=1)
            async def a(self, request: Text, ctx: RequestContext) -> Text:
                return request

            @rpc(method=1)
            async def b(self, request: Text, ctx: RequestContext) -> Text:
                return request

    with pytest.raises(TypeError, match="async function"):

        class _Sync(Service, protocol="/x"):
            @rpc(method=1)
            def a(self, request: Text, ctx: RequestContext) -> Text:
                return request

    with pytest.raises(TypeError, match="async generator"):

        class _NotGen(Service, protocol="/x"):
            @rpc(method=1, streaming=True)
            async def a(self, request: Text, ctx: RequestContext) -> Text:
                return request

    with pytest.raises(TypeError, match="protobuf message type"):

        class _NotMessage(Service, protocol="/x"):
            @rpc(method=1)
            async def a(self, request: str, ctx: RequestContext) -> Text:
                return Text()

    with pytest.raises(TypeError, match="cannot resolve"):

        class _Unresolvable(Service, protocol="/x"):
            @rpc(method=1)
            async def a(self, request: Missing, ctx: RequestContext) -> Text:  # type: ignore[name-defined]  # noqa: F821
                return Text()

    with pytest.raises(TypeError, match="ServiceClient"):

        class _BadClient(Service, protocol="/x"):
            Client = int  # type: ignore[assignment]


def test_server_refuses_duplicate_or_missing_protocols() -> None:
    server = RpcServer()
    server.add_service(Echo())
    assert server.protocols == (b"/test/echo/1",)
    with pytest.raises(ValueError, match="already registered"):
        server.add_service(Echo())

    class Nameless(Service):
        pass

    with pytest.raises(ValueError, match="no protocol id"):
        server.add_service(Nameless())


@pytest.mark.anyio
@pytest.mark.network
async def test_generated_client_calls_a_custom_service() -> None:
    server = RpcServer(RpcServerConfig(max_sessions=2))
    server.add_service(Echo())
    client_stream, server_stream = await tcp_pair()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve_session, server_stream, PEER_A, Echo.protocol)
            async with await Echo.Client.connect(client_stream) as client:
                reply = await client.echo(Text(value="hi"))  # type: ignore[attr-defined]
                assert reply == Text(value="hi from 0001 via /test/echo/1")
                stream = client.repeat(Text(value="x"))  # type: ignore[attr-defined]
                assert isinstance(stream, ResponseStream)
                assert [t.value async for t in stream] == ["x0", "x1", "x2"]
                assert (await client.explicit(Empty())).data == b"explicit"  # type: ignore[attr-defined]
                assert "Echo.Client" in repr(client)
            assert not client.is_connected

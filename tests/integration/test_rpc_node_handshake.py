"""The RPC session handshake over real Node connections (wire.md §3.3, §6.2): tari's handshake
tests, ``run_service`` from comms_integration, every reject reason as a client sees it, and
the handshake timeouts on both sides. TCP and memory transports, both anyio backends."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest
from plait.rpc import (
    RejectReason,
    RequestContext,
    RpcClientConfig,
    RpcHandshakeRejected,
    RpcHandshakeTimeoutError,
    RpcServerConfig,
    RpcStatusError,
    Service,
    StatusCode,
    rpc,
)
from plait.rpc.greeting import GREETING_PROTOCOL, Greeting
from plait.rpc.proto.greeting_pb2 import Empty, SayHelloRequest
from plait.rpc.proto.rpc_pb2 import RpcSessionReply
from support.waiting import wait_until
from test_rpc_node_support import FAST, RawSession, rpc_pair, transport

if TYPE_CHECKING:
    from anyio.abc import ByteStream
    from plait import PeerConnection

pytestmark = [pytest.mark.anyio, pytest.mark.network]

__all__ = ("transport",)


async def test_it_performs_the_handshake(transport: str) -> None:
    async with rpc_pair(transport) as p:
        raw = RawSession(await p.conn.open_substream(GREETING_PROTOCOL))
        await raw.send(bytes.fromhex("0a0100"))  # RpcSession{supported_versions: [0]}
        reply = RpcSessionReply.FromString(await raw.read_frame())
        assert reply.WhichOneof("session_result") == "accepted_version"
        assert reply.accepted_version in (0,)
        assert p.server.num_active_sessions(p.client.peer_id) == 1
        await raw.stream.aclose()
        await wait_until(lambda: p.server.num_active_sessions() == 0)

        client = await p.conn.connect_rpc(Greeting.Client, config=FAST)  # the typed client
        assert client.is_connected


async def test_it_rejects_the_handshake_before_the_client_sends_anything(transport: str) -> None:
    async with rpc_pair(transport, RpcServerConfig(max_sessions=0)) as p:
        raw = RawSession(await p.conn.open_substream(GREETING_PROTOCOL))
        # the reply comes unprompted: the server never reads the client's RpcSession
        assert await raw.read_frame() == bytes.fromhex("10011802")
        await raw.expect_end()
        with pytest.raises(RpcHandshakeRejected) as info:
            await p.conn.connect_rpc(Greeting.Client, config=FAST)
        assert info.value.reason is RejectReason.NO_SERVER_SESSIONS_AVAILABLE


class MockService(Service, protocol="/test/mock/1"):
    """comms_integration's MockRpcService: one method, a settable answer, a call count."""

    def __init__(self) -> None:
        self.call_count = 0
        self.error: RpcStatusError | None = None

    @rpc(method=1)
    async def call(self, request: Empty, ctx: RequestContext) -> Empty:
        self.call_count += 1
        if self.error is not None:
            raise self.error
        return Empty()


async def test_run_service(transport: str) -> None:
    service = MockService()
    async with rpc_pair(transport, RpcServerConfig(max_sessions=None), service) as p:
        client = await p.conn.connect_rpc(MockService.Client, config=FAST)
        assert await client.call(Empty()) == Empty()  # type: ignore[attr-defined]
        assert service.call_count == 1
        service.error = RpcStatusError(StatusCode.BAD_REQUEST, "Insert 💾")
        with pytest.raises(RpcStatusError) as info:
            await client.call(Empty())  # type: ignore[attr-defined]
        assert (info.value.code, info.value.details) == (StatusCode.BAD_REQUEST, "Insert 💾")
        assert service.call_count == 2
        # tari's mock answers method 0; plait's services number methods from 1
        with pytest.raises(RpcStatusError) as info:
            await client.session.request(0, b"")
        assert info.value.code is StatusCode.UNSUPPORTED_METHOD
        assert service.call_count == 2


# ---------------------------------------------------------------- the four reject reasons


async def test_reject_unsupported_version(transport: str) -> None:
    async with rpc_pair(transport) as p:
        config = RpcClientConfig(handshake_timeout=5, supported_versions=(7, 9))
        with pytest.raises(RpcHandshakeRejected) as info:
            await p.conn.connect_rpc(Greeting.Client, config=config)
        assert info.value.reason is RejectReason.UNSUPPORTED_VERSION
        await wait_until(lambda: p.server.num_active_sessions() == 0)  # the slot is not leaked
        client = await p.conn.connect_rpc(Greeting.Client, config=FAST)
        assert (await client.say_hello(SayHelloRequest(name="v0"))).greeting == "Sawubona v0"


async def test_reject_no_server_sessions_available(transport: str) -> None:
    async with rpc_pair(transport, RpcServerConfig(max_sessions=1)) as p:
        first = await p.conn.connect_rpc(Greeting.Client, config=FAST)
        with pytest.raises(RpcHandshakeRejected) as info:
            await p.conn.connect_rpc(Greeting.Client, config=FAST)
        assert info.value.reason is RejectReason.NO_SERVER_SESSIONS_AVAILABLE
        assert first.is_connected and p.server.num_active_sessions() == 1


async def test_reject_no_client_sessions_available(transport: str) -> None:
    async with rpc_pair(transport, RpcServerConfig(max_sessions=5, max_sessions_per_peer=1)) as p:
        first = await p.conn.connect_rpc(Greeting.Client, config=FAST)
        raw = RawSession(await p.conn.open_substream(GREETING_PROTOCOL))
        assert await raw.read_frame() == bytes.fromhex("10011803")  # plait: reason 3
        await raw.expect_end()
        with pytest.raises(RpcHandshakeRejected) as info:
            await p.conn.connect_rpc(Greeting.Client, config=FAST)
        assert info.value.reason is RejectReason.NO_CLIENT_SESSIONS_AVAILABLE
        assert first.is_connected and p.server.num_active_sessions(p.client.peer_id) == 1


class Unrouted(Greeting, protocol="/test/unrouted/1"):
    """Negotiated by the server node, but its RPC server has no service for it."""


async def test_reject_protocol_not_supported(transport: str) -> None:
    async with rpc_pair(transport) as p:
        server = p.server.rpc_server

        async def route(conn: PeerConnection, stream: ByteStream) -> None:
            await server.serve_session(stream, conn.public_key, Unrouted.protocol)

        p.server.add_protocol(Unrouted.protocol, route)
        with pytest.raises(RpcHandshakeRejected) as info:
            await p.conn.connect_rpc(Unrouted.Client, config=FAST)
        assert info.value.reason is RejectReason.PROTOCOL_NOT_SUPPORTED
        assert p.server.num_active_sessions() == 0


# ---------------------------------------------------------------- handshake timeouts


async def test_silent_client_times_out_the_server_handshake_and_frees_the_slot(
    transport: str,
) -> None:
    config = RpcServerConfig(max_sessions=1, handshake_timeout=0.5)
    async with rpc_pair(transport, config) as p:
        raw = RawSession(await p.conn.open_substream(GREETING_PROTOCOL))
        await wait_until(lambda: p.server.num_active_sessions() == 1)  # admitted, then silence
        await raw.expect_end()  # the server gave up on us
        await wait_until(lambda: p.server.num_active_sessions() == 0)
        client = await p.conn.connect_rpc(Greeting.Client, config=FAST)
        assert client.is_connected


class Mute(Greeting, protocol="/test/mute/1"):
    """A protocol whose server never answers the handshake."""


async def test_silent_server_times_out_the_client_handshake(transport: str) -> None:
    async with rpc_pair(transport) as p:
        released = anyio.Event()

        async def mute(conn: PeerConnection, stream: ByteStream) -> None:
            try:
                await stream.receive()  # the RpcSession, never answered
                await released.wait()
            finally:
                released.set()

        p.server.add_protocol(Mute.protocol, mute)
        with pytest.raises(RpcHandshakeTimeoutError):
            await p.conn.connect_rpc(
                Mute.Client, config=RpcClientConfig(handshake_timeout=0.2)
            )
        released.set()
        assert p.conn.is_connected

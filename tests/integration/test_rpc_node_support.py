"""Shared harness of the RPC-over-Node tests (tests/integration/test_rpc_node_*.py).

Two real :class:`~plait.Node` objects connected over TCP on 127.0.0.1 or over the memory
transport; the server node serves RPC services through :meth:`Node.add_service`, the client
reaches them through :meth:`PeerConnection.connect_rpc` / :meth:`PeerConnection.rpc_pool`.
This module holds no tests of its own.
"""

from __future__ import annotations

import struct
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from plait import Node, NodeConfig, NodeIdentity, PeerConnection
from plait.rpc import RequestContext, RpcClientConfig, RpcServerConfig, Service, rpc
from plait.rpc.greeting import Greeting
from plait.rpc.proto.greeting_pb2 import Blob, SlowStreamRequest, Text
from plait.transport import MemoryNetwork

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import ByteStream
    from google.protobuf.message import Message

FAST = RpcClientConfig(deadline=5, deadline_grace_period=5, handshake_timeout=5)
"""tari's smoke-test client settings: deadline, grace and handshake timeout of 5 s."""
TEST_SERVER = RpcServerConfig(max_sessions=10, max_sessions_per_peer=None, min_deadline=0)
"""tari's smoke-test server: a session cap and minimum_client_deadline = 0."""
HANG_GUARD = 30.0
"""Seconds any one test may take before it is failed as hung."""


@pytest.fixture(params=["tcp", "memory"])
def transport(request: pytest.FixtureRequest) -> str:
    """Every RPC-over-Node test runs over real TCP and over the memory transport."""
    return str(request.param)


def listen_address(transport: str, name: str) -> str:
    return "tcp://127.0.0.1:0" if transport == "tcp" else f"memory://{name}"


@dataclass
class RpcPair:
    """A server node with RPC services, a client node and the client's connection."""

    server: Node
    client: Node
    conn: PeerConnection
    address: str
    network: MemoryNetwork

    @property
    def client_peer_id(self) -> str:
        return self.client.peer_id


@asynccontextmanager
async def rpc_pair(
    transport: str,
    server_config: RpcServerConfig = TEST_SERVER,
    *services: Service,
    client_config: NodeConfig | None = None,
) -> AsyncIterator[RpcPair]:
    """Two nodes, the server serving ``services`` (default: :class:`Greeting`), connected."""
    network = MemoryNetwork()
    with anyio.fail_after(HANG_GUARD):
        async with (
            Node(
                NodeIdentity.generate(),
                NodeConfig(rpc_server=server_config),
                memory_network=network,
            ) as server,
            Node(NodeIdentity.generate(), client_config, memory_network=network) as client,
        ):
            for service in services or (Greeting(),):
                server.add_service(service)
            address = await server.listen(listen_address(transport, "rpc-server"))
            conn = await client.dial(address, server.peer_id)
            yield RpcPair(server, client, conn, address, network)




class CountingGreeting(Greeting):
    """Greeting whose ``slow_stream`` counts its calls and signals when a stream ends."""

    def __init__(self) -> None:
        super().__init__()
        self.slow_stream_calls = 0
        self.stream_ended = anyio.Event()

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
            self.stream_ended.set()


class SlowService(Service, protocol="/test/slow/1"):
    """tari's ``SlowGreetingService``: ``say_hello`` sleeps ``delay`` seconds, then replies
    "took a while to load"; records the request ids it saw."""

    def __init__(self, delay: float = 10.0) -> None:
        self.delay = delay
        self.cancelled = anyio.Event()
        self.request_ids: list[int] = []

    @rpc(method=1)
    async def say_hello(self, request: Text, ctx: RequestContext) -> Text:
        self.request_ids.append(ctx.request_id)
        try:
            await anyio.sleep(self.delay)
        except anyio.get_cancelled_exc_class():
            self.cancelled.set()
            raise
        return Text(value="took a while to load")


@asynccontextmanager
async def extra_client(p: RpcPair) -> AsyncIterator[tuple[Node, PeerConnection]]:
    """A further client node (another peer key) connected to the pair's server."""
    async with Node(NodeIdentity.generate(), memory_network=p.network) as node:
        yield node, await node.dial(p.address, p.server.peer_id)


class RawSession:
    """An RPC substream driven byte by byte: ``u32 BE length ‖ body`` frames."""

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self.reader = BufferedByteReceiveStream(stream)

    async def send(self, body: Message | bytes) -> None:
        data = body if isinstance(body, bytes) else body.SerializeToString()
        await self.stream.send(struct.pack(">I", len(data)) + data)

    async def read_frame(self, timeout: float = 10.0) -> bytes:
        with anyio.fail_after(timeout):
            (length,) = struct.unpack(">I", await self.reader.receive_exactly(4))
            return await self.reader.receive_exactly(length)

    async def handshake(self) -> None:
        """The client's ``RpcSession{supported_versions:[0]}`` and the server's acceptance."""
        await self.send(bytes.fromhex("0a0100"))
        assert await self.read_frame() == bytes.fromhex("0800")

    async def expect_end(self, timeout: float = 10.0) -> None:
        """The server ended the session: end of stream (or a reset) and nothing else."""
        with anyio.fail_after(timeout):
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await self.reader.receive()

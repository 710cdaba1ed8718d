"""Bad and edge-case RPC input over real Node connections (wire.md §3.1, §3.4, §3.5):
malformed protobuf, frames over 4 MiB, flags other than FIN/ACK, request ids wrapping past
65535, in both directions where it applies. TCP and memory transports, both anyio backends.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import pytest
from plait.rpc import (
    RPC_MAX_FRAME_SIZE,
    RequestTooLargeError,
    RpcProtocolViolation,
    RpcServerConfig,
    SessionClosedError,
    StatusCode,
)
from plait.rpc.greeting import GREETING_PROTOCOL, Greeting
from plait.rpc.proto.greeting_pb2 import (
    Blob,
    ReplySizeRequest,
    SayHelloRequest,
    SayHelloResponse,
    Text,
)
from plait.rpc.proto.rpc_pb2 import RpcRequest, RpcResponse
from support.waiting import wait_until
from test_rpc_node_support import FAST, RawSession, SlowService, rpc_pair, transport

if TYPE_CHECKING:
    from anyio.abc import ByteStream
    from plait import PeerConnection
    from test_rpc_node_support import RpcPair

pytestmark = [pytest.mark.anyio, pytest.mark.network]

__all__ = ("transport",)

HELLO = SayHelloRequest(name="raw").SerializeToString()


def request(request_id: int, *, flags: int = 0, method: int = 1, payload: bytes = HELLO,
            deadline: int = 120) -> RpcRequest:
    return RpcRequest(request_id=request_id, method=method, flags=flags, deadline=deadline,
                      payload=payload)


async def open_raw(p: RpcPair) -> RawSession:
    """A raw substream to the pair's Greeting service, past the session handshake."""
    raw = RawSession(await p.conn.open_substream(GREETING_PROTOCOL))
    await raw.handshake()
    return raw


# ---------------------------------------------------------------- malformed protobuf


async def test_malformed_protobuf_request_ends_the_session(transport: str) -> None:
    async with rpc_pair(transport) as p:
        raw = await open_raw(p)
        await raw.send(bytes.fromhex("ffffff"))  # a truncated varint: not an RpcRequest
        await raw.expect_end()
        await wait_until(lambda: p.server.num_active_sessions() == 0)
        assert p.conn.is_connected  # the session ends, not the connection
        client = await p.conn.connect_rpc(Greeting.Client, config=FAST)
        assert (await client.say_hello(SayHelloRequest(name="ok"))).greeting == "Sawubona ok"


async def test_malformed_request_payload_is_bad_request_and_the_session_survives(
    transport: str,
) -> None:
    async with rpc_pair(transport) as p:
        raw = await open_raw(p)
        await raw.send(request(1, payload=b"\xff\xff"))
        reply = RpcResponse.FromString(await raw.read_frame())
        assert (reply.request_id, reply.status, reply.flags) == (1, StatusCode.BAD_REQUEST, 1)
        assert reply.payload == b"Failed to decode request"
        await raw.send(request(2))
        reply = RpcResponse.FromString(await raw.read_frame())
        assert (reply.request_id, reply.status, reply.flags) == (2, 0, 1)
        assert SayHelloResponse.FromString(reply.payload).greeting == "Sawubona raw"


async def test_malformed_protobuf_response_ends_the_client_session(transport: str) -> None:
    async with rpc_pair(transport) as p:
        async def serve(conn: PeerConnection, stream: ByteStream) -> None:
            raw = RawSession(stream)
            assert await raw.read_frame() == bytes.fromhex("0a0100")
            await raw.send(bytes.fromhex("0800"))
            await raw.read_frame()  # the request
            await raw.send(bytes.fromhex("ffffff"))
            await raw.expect_end()

        p.server.add_protocol(Rogue.protocol, serve)
        client = await p.conn.connect_rpc(Rogue.Client, config=FAST)
        with pytest.raises(RpcProtocolViolation):
            await client.say_hello(SayHelloRequest(name="x"))
        assert not client.is_connected


class Rogue(Greeting, protocol="/test/rogue/1"):
    """A protocol served by a hand-written, misbehaving server."""


# ---------------------------------------------------------------- frames over 4 MiB


async def test_request_frame_over_4_mib_ends_the_session_before_its_body(transport: str) -> None:
    async with rpc_pair(transport) as p:
        raw = await open_raw(p)
        await raw.stream.send(struct.pack(">I", RPC_MAX_FRAME_SIZE + 1))  # header only
        await raw.expect_end()  # refused on the header: no 4 MiB buffered first
        await wait_until(lambda: p.server.num_active_sessions() == 0)


def padded_request_of_size(size: int) -> RpcRequest:
    """A ``reply_with_msg_of_size(3)`` request whose encoded ``RpcRequest`` is exactly
    ``size`` bytes: the payload carries an unknown field (tag 15) that decoders skip."""
    base = ReplySizeRequest(size=3).SerializeToString()
    n = size
    while True:
        payload = base + b"\x7a" + _varint(n) + bytes(n)
        body = request(1, method=7, payload=payload)
        length = len(body.SerializeToString())
        if length == size:
            return body
        n -= max(1, length - size)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


async def test_request_frame_of_exactly_4_mib_is_accepted(transport: str) -> None:
    async with rpc_pair(transport) as p:
        raw = await open_raw(p)
        await raw.send(padded_request_of_size(RPC_MAX_FRAME_SIZE))
        reply = RpcResponse.FromString(await raw.read_frame(timeout=30))
        assert (reply.request_id, reply.status, reply.flags) == (1, StatusCode.OK, 1)
        assert Blob.FromString(reply.payload).data == bytes(3)


async def test_client_refuses_a_request_over_4_mib_and_keeps_the_session(transport: str) -> None:
    async with rpc_pair(transport) as p:
        client = await p.conn.connect_rpc(Greeting.Client, config=FAST)
        with pytest.raises(RequestTooLargeError):
            await client.say_hello(SayHelloRequest(name="x" * RPC_MAX_FRAME_SIZE))
        assert (await client.say_hello(SayHelloRequest(name="small"))).greeting == "Sawubona small"


async def test_response_frame_over_4_mib_ends_the_client_session(transport: str) -> None:
    async with rpc_pair(transport) as p:
        async def serve(conn: PeerConnection, stream: ByteStream) -> None:
            raw = RawSession(stream)
            await raw.read_frame()
            await raw.send(bytes.fromhex("0800"))
            await raw.read_frame()
            await stream.send(struct.pack(">I", RPC_MAX_FRAME_SIZE + 1))
            await raw.expect_end()

        p.server.add_protocol(Rogue.protocol, serve)
        client = await p.conn.connect_rpc(Rogue.Client, config=FAST)
        with pytest.raises(RpcProtocolViolation):
            await client.say_hello(SayHelloRequest(name="x"))
        assert not client.is_connected


# ---------------------------------------------------------------- flags


@pytest.mark.parametrize("flags", [0x04, 0x08, 0x80, 0x100, 0x05])
async def test_request_flags_other_than_fin_ack_end_the_session(transport: str, flags: int) -> None:
    async with rpc_pair(transport) as p:
        raw = await open_raw(p)
        await raw.send(request(1, flags=flags))
        await raw.expect_end()  # nothing is answered
        await wait_until(lambda: p.server.num_active_sessions() == 0)


async def test_fin_and_ack_requests_are_accepted(transport: str) -> None:
    async with rpc_pair(transport) as p:
        raw = await open_raw(p)
        await raw.send(request(0, flags=0x02, method=0, payload=b""))  # ping
        assert await raw.read_frame() == bytes.fromhex("1802")  # pong: flags ACK
        await raw.send(request(7, flags=0x01))  # an interrupt while idle: ignored
        await raw.send(request(8))
        reply = RpcResponse.FromString(await raw.read_frame())
        assert (reply.request_id, reply.status, reply.flags) == (8, 0, 1)


@pytest.mark.parametrize("flags", [0x04, 0x100])
async def test_response_flags_other_than_fin_ack_end_the_client_session(
    transport: str, flags: int
) -> None:
    async with rpc_pair(transport) as p:
        async def serve(conn: PeerConnection, stream: ByteStream) -> None:
            raw = RawSession(stream)
            await raw.read_frame()
            await raw.send(bytes.fromhex("0800"))
            got = RpcRequest.FromString(await raw.read_frame())
            await raw.send(RpcResponse(request_id=got.request_id, flags=flags, payload=b""))
            await raw.expect_end()

        p.server.add_protocol(Rogue.protocol, serve)
        client = await p.conn.connect_rpc(Rogue.Client, config=FAST)
        with pytest.raises(RpcProtocolViolation):
            await client.say_hello(SayHelloRequest(name="x"))
        assert not client.is_connected
        with pytest.raises(SessionClosedError):
            await client.say_hello(SayHelloRequest(name="x"))


# ---------------------------------------------------------------- request ids


async def test_client_request_ids_wrap_from_65535_to_1(transport: str) -> None:
    service = SlowService(delay=0)
    async with rpc_pair(transport, RpcServerConfig(max_sessions=2), service) as p:
        client = await p.conn.connect_rpc(SlowService.Client, config=FAST)
        # Skip 65532 round trips: advance the session's u16 counter (the core's state).
        client.session._core._last_id = 65533  # type: ignore[attr-defined]
        for _ in range(4):
            reply = await client.say_hello(Text(value="x"))  # type: ignore[attr-defined]
            assert reply.value == "took a while to load"
        assert service.request_ids == [65534, 65535, 1, 2]  # 0 is skipped (pings use it)
        assert await client.ping() >= 0


async def test_server_echoes_any_u32_request_id(transport: str) -> None:
    async with rpc_pair(transport) as p:
        raw = await open_raw(p)
        for request_id in (65534, 65535, 1, 65536, 0xFFFFFFFF):
            await raw.send(request(request_id))
            reply = RpcResponse.FromString(await raw.read_frame())
            assert (reply.request_id, reply.status, reply.flags) == (request_id, 0, 1)

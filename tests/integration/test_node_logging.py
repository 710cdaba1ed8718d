"""Logging: every record comes from the ``plait`` logger hierarchy, and INFO stays quiet.

At INFO a node logs its lifecycle (started, listening, stopped) and each connection and
disconnection, never per substream, per RPC session or per request: a busy node's INFO log
grows with its connections, not with its traffic.
"""

from __future__ import annotations

import logging

import anyio
import pytest
from plait import Node, NodeConfig, NodeIdentity
from plait.node import ECHO_PROTOCOL_ID, echo_handler
from plait.rpc import RejectReason, RpcHandshakeRejected, RpcServerConfig
from plait.rpc.greeting import Greeting
from plait.rpc.proto.greeting_pb2 import SayHelloRequest

pytestmark = pytest.mark.anyio


async def _traffic(substreams: int, sessions: int, caplog: pytest.LogCaptureFixture) -> list[
    logging.LogRecord
]:
    caplog.clear()
    config = NodeConfig(rpc_server=RpcServerConfig(max_sessions=2))
    with caplog.at_level(logging.DEBUG, logger="plait"), anyio.fail_after(30):
        async with Node(NodeIdentity.generate()) as client, \
                Node(NodeIdentity.generate(), config) as server:
            server.add_protocol(ECHO_PROTOCOL_ID, echo_handler)
            server.add_service(Greeting())
            address = await server.listen("tcp://127.0.0.1:0")
            conn = await client.dial(address)
            for i in range(substreams):
                stream = await conn.open_substream(ECHO_PROTOCOL_ID)
                await stream.send(b"ping %d" % i)
                assert await stream.receive() == b"ping %d" % i
                await stream.aclose()
            for _ in range(sessions):
                rpc = await conn.connect_rpc(Greeting.Client)
                reply = await rpc.say_hello(SayHelloRequest(name="Ada"))
                assert reply.greeting.endswith("Ada")
                # a third concurrent session is refused: that is load, not news
                second = await conn.connect_rpc(Greeting.Client)
                with pytest.raises(RpcHandshakeRejected) as rejected:
                    await conn.connect_rpc(Greeting.Client)
                assert rejected.value.reason is RejectReason.NO_SERVER_SESSIONS_AVAILABLE
                await second.aclose()
                await rpc.aclose()
                while server.num_active_sessions():  # the server frees slots as it sees closes
                    await anyio.sleep(0.001)
            await conn.disconnect()
    return list(caplog.records)


async def test_records_come_from_plait_loggers_and_info_does_not_grow_with_traffic(
    caplog: pytest.LogCaptureFixture,
) -> None:
    little = await _traffic(1, 1, caplog)
    much = await _traffic(40, 10, caplog)
    for record in little + much:
        assert record.name == "plait" or record.name.startswith("plait."), record.name
        # lazily formatted: the message template is kept apart from its arguments
        assert isinstance(record.msg, str)
    info = [r for r in much if r.levelno >= logging.INFO]
    info_little = [r for r in little if r.levelno >= logging.INFO]
    assert len(info) == len(info_little), [r.getMessage() for r in info]
    assert all(r.levelno < logging.WARNING for r in much), [r.getMessage() for r in much]
    messages = " | ".join(r.getMessage() for r in info)
    assert "connected to" in messages and "disconnected from" in messages

"""The client core writes ``RpcRequest`` frames by hand (the payload is not copied into a
message): the bytes must be exactly protobuf's."""

from __future__ import annotations

import itertools

from plait.rpc._session import _request_head
from plait.rpc.proto.rpc_pb2 import RpcRequest

from .helpers import frame, open_client


def test_request_head_matches_protobuf_serialisation() -> None:
    for request_id, method, flags, deadline, payload in itertools.product(
        (0, 1, 127, 128, 16383, 16384, 65535, 2**32 - 1),
        (0, 1, 300, 2**32 - 1),
        (0, 1, 2, 3),
        (0, 1, 120, 2**40),
        (b"", b"x", bytes(200), bytes(70000)),
    ):
        expected = RpcRequest(
            request_id=request_id, method=method, flags=flags, deadline=deadline, payload=payload
        ).SerializeToString()
        assert _request_head(request_id, method, flags, deadline, len(payload)) + payload == (
            expected
        )


def test_send_request_queues_protobufs_bytes() -> None:
    core = open_client()
    for payload in (b"", b"abc", bytearray(b"mutable"), memoryview(bytes(300))):
        request_id = core.send_request(7, payload, now=0.0)
        expected = RpcRequest(
            request_id=request_id,
            method=7,
            deadline=core.config.wire_deadline,
            payload=bytes(payload),
        )
        assert core.data_to_send() == frame(expected)
        assert core.interrupt()  # idle again for the next one
        core.data_to_send()

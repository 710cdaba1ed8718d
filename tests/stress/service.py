"""The RPC service of the stress tests and the deterministic content it streams.

tari's rpc_stress calls ``stream_large_items{id, num_items, item_size, delay_ms}`` on its
integration greeting service and checks only how many items arrive. Here every byte is
checked: item ``index`` of task ``task`` is a slice of one seeded random tape at an offset
derived from ``(task, index)``, so a corrupted, truncated, reordered or misdelivered item
(another task's, another index's) compares unequal. Items are ``Blob{data}`` messages, which
encode like tari's ``Vec<u8>`` items, so tari's payload_limit arithmetic holds: a
4 MiB - 100 byte item is a 4194209-byte message in an RPC frame just under 4 MiB.

The request message is built at run time from a descriptor (no generated code to keep in
step with a ``.proto`` file).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import anyio
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from plait.rpc import RequestContext, RpcStatusError, Service, StatusCode, rpc
from plait.rpc.proto.greeting_pb2 import Blob

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

__all__ = (
    "MAX_ITEM_SIZE",
    "STRESS_PROTOCOL",
    "TAPE_SEED",
    "StressRequest",
    "StressService",
    "check_item",
    "item_bytes",
)

STRESS_PROTOCOL = b"/plait/stress/1"
TAPE_SEED = 0x5EED_57E5
MAX_ITEM_SIZE = 4 * 1024 * 1024
"""The largest item (or raw frame) the tests make: one RPC/substream frame limit."""
_TAPE = random.Random(TAPE_SEED).randbytes(2 * MAX_ITEM_SIZE)


def _build_request_type() -> type[Any]:
    file = descriptor_pb2.FileDescriptorProto(
        name="plait_stress_tests.proto", package="plait.stress", syntax="proto3"
    )
    message = file.message_type.add(name="StressRequest")
    uint32 = descriptor_pb2.FieldDescriptorProto.TYPE_UINT32
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    for number, name in enumerate(("task", "num_items", "item_size", "delay_ms"), start=1):
        message.field.add(name=name, number=number, type=uint32, label=optional)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("plait.stress.StressRequest"))


StressRequest: type[Any] = _build_request_type()
"""``StressRequest{uint32 task = 1; uint32 num_items = 2; uint32 item_size = 3;
uint32 delay_ms = 4}``."""


def item_bytes(task: int, index: int, size: int, salt: int = 0) -> bytes:
    """The content of item ``index`` of ``task``: ``size`` bytes of the seeded tape."""
    if not 0 <= size <= MAX_ITEM_SIZE:
        raise ValueError(f"item size {size} outside 0..{MAX_ITEM_SIZE}")
    span = len(_TAPE) - size + 1
    offset = (task * 2_654_435_761 + index * 40_503 + salt * 97_531) % span
    return _TAPE[offset : offset + size]


def check_item(data: bytes, task: int, index: int, size: int, salt: int = 0) -> None:
    """Raise a short AssertionError (never a multi-megabyte diff) unless ``data`` is intact."""
    if len(data) != size:
        raise AssertionError(f"task {task} item {index}: {len(data)} bytes, expected {size}")
    if data != item_bytes(task, index, size, salt):
        expected = item_bytes(task, index, size, salt)
        first = next(i for i, (a, b) in enumerate(zip(data, expected, strict=True)) if a != b)
        raise AssertionError(f"task {task} item {index}: content differs from byte {first}")


class StressService(Service, protocol=STRESS_PROTOCOL):
    """Streams ``num_items`` items of ``item_size`` bytes for ``task``.

    :param max_item_size: the largest ``item_size`` accepted (``BAD_REQUEST`` above it).
    :param on_call: called with the request context at the start of every call (the tests
        record the server's session counts there).
    """

    def __init__(
        self,
        *,
        max_item_size: int = MAX_ITEM_SIZE,
        on_call: Callable[[RequestContext], None] | None = None,
    ) -> None:
        self.max_item_size = max_item_size
        self.on_call = on_call
        self.calls = 0
        self.items_sent = 0

    @rpc(method=1, streaming=True, request=StressRequest, response=Blob)
    async def stream_items(self, request: Any, ctx: RequestContext) -> AsyncIterator[Blob]:
        self.calls += 1
        if self.on_call is not None:
            self.on_call(ctx)
        if request.item_size > self.max_item_size:
            raise RpcStatusError(StatusCode.BAD_REQUEST, f"item_size {request.item_size}")
        for index in range(request.num_items):
            if request.delay_ms:
                await anyio.sleep(request.delay_ms / 1000)  # the service's pacing, as tari's
            yield Blob(data=item_bytes(request.task, index, request.item_size))
            self.items_sent += 1

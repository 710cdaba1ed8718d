"""Edge cases of the muxer's fast paths (synchronous writes, one-shot signals, pushed
reads): a cancellation racing a hand-off, and frames buffered before the muxer starts."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from anyio.abc import ByteStream
from plait.bench._net import noise_pair
from plait.muxer import MuxedConnection, YamuxConfig

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

pytestmark = pytest.mark.anyio


class Gated(ByteStream):
    """A transport whose every send waits until the test releases it."""

    def __init__(self) -> None:
        self.gate: anyio.Event | None = None
        self.closed = anyio.Event()
        self.open = False  # once True, sends no longer wait

    async def send(self, item: bytes) -> None:
        self.gate = anyio.Event()
        if not self.open:
            await self.gate.wait()

    async def receive(self, max_bytes: int = 65536) -> bytes:
        await self.closed.wait()
        raise anyio.EndOfStream

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        self.closed.set()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return {}


async def _settle() -> None:
    for _ in range(10):
        await anyio.lowlevel.checkpoint()


async def test_a_space_waiter_cancelled_as_it_is_handed_the_room() -> None:
    """The writer hands the queue's room to a sender in the same loop turn as that sender
    is cancelled: the sender ends cancelled (not with a ValueError) and the next waiter
    still gets the room, instead of every later sender stalling."""
    transport = Gated()
    config = YamuxConfig(
        max_write_queue_size=1000, write_batch_size=100_000, keepalive_interval=None
    )
    results: dict[str, str] = {}
    async with MuxedConnection(transport, is_client=True, config=config) as conn:
        s1, s2, s3 = [await conn.open_stream() for _ in range(3)]
        with anyio.fail_after(5):
            while conn._writer_waiting is None:  # the SYNs are written
                await _settle()
                if transport.gate is not None:
                    transport.gate.set()
        await s1.send(b"a" * 1000)  # the writer takes it and blocks in send
        await _settle()
        await s1.send(b"b" * 1000)  # the queue is full now
        first_gate = transport.gate
        assert first_gate is not None
        cancelled_sender = anyio.CancelScope()

        async def sender_a() -> None:
            with cancelled_sender:
                await s2.send(b"x" * 10)
            results["a"] = "cancelled" if cancelled_sender.cancelled_caught else "sent"

        async def sender_b() -> None:
            await s3.send(b"y" * 10)
            results["b"] = "sent"

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(sender_a)
                await _settle()
                tg.start_soon(sender_b)
                await _settle()
                assert len(conn._space_waiters) == 2
                first_gate.set()  # batch 1 written; the writer takes batch 2
                await _settle()
                assert transport.gate is not None
                transport.gate.set()  # batch 2 written: room is handed over ...
                cancelled_sender.cancel()  # ... as the first waiter is cancelled
                while len(results) < 2:
                    if transport.gate is not None and not transport.gate.is_set():
                        transport.gate.set()
                    await anyio.lowlevel.checkpoint()
        transport.open = True
        if transport.gate is not None:
            transport.gate.set()
    assert results["a"] in ("cancelled", "sent") and results["b"] == "sent"


def _ping(opaque: int) -> bytes:
    return struct.pack(">BBHII", 0, 2, 1, 0, opaque)


@pytest.mark.parametrize("pings", [10, 40])
async def test_pings_buffered_before_the_muxer_starts_are_all_answered(pings: int) -> None:
    """Yamux frames that arrived with the last message before the muxer started (here
    right behind a 1-byte preamble) are handed over at once when reads are pushed; 40
    pings fill the pong queue and pause reading right then, and the start still succeeds."""
    async with noise_pair() as (client, server):
        await client.send(b"P" + b"".join(_ping(i) for i in range(pings)))
        assert await server.receive(1) == b"P"  # the pings stay buffered in the NoiseStream
        config = YamuxConfig(keepalive_interval=None)
        with anyio.fail_after(5):
            async with MuxedConnection(server, is_client=False, config=config) as conn:
                buffer = bytearray()
                pongs: list[int] = []
                while len(pongs) < pings:
                    buffer += await client.receive(65536)
                    while len(buffer) >= 12:
                        _, kind, flags, _, value = struct.unpack_from(">BBHII", buffer)
                        body = value if kind == 0 else 0  # a DATA frame's body follows
                        if len(buffer) < 12 + body:
                            break
                        if kind == 2 and flags == 2:  # PING with ACK
                            pongs.append(value)
                        del buffer[: 12 + body]
                assert pongs == list(range(pings))
                assert not conn.core.is_reading_paused

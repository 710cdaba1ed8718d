"""tari_comms' ``substream_stress.rs :: many_at_frame_limit`` on two plait nodes over TCP
(wire.md §6.5), with the payloads tari meant to send.

20 substreams of ``test/dummy/protocol`` are opened on one connection through the full
negotiation (proposal and echo, not optimistic) and framed u32-BE length-delimited with a
4 MiB limit. On each, the client sends a frame and the server answers it, ``ROUND_TRIPS``
times; then the server's handler returns (closing its end) and the client closes. tari's
version built its sample with ``BytesMut::with_capacity`` and ``fill(1)``, so every frame was
empty; here every frame carries exactly 4 MiB, the largest body the codec admits, and both
ends check each frame's content: a 12-byte header (stream, round, direction) and a slice of
the seeded tape that depends on all three.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import TYPE_CHECKING

import anyio
import pytest
from plait.rpc import FrameDecoder, RpcServerConfig, frame_header

from .harness import MIB, measured, stress_nodes
from .service import MAX_ITEM_SIZE, check_item, item_bytes

if TYPE_CHECKING:
    from anyio.abc import ByteStream
    from plait.node import PeerConnection

pytestmark = [pytest.mark.anyio, pytest.mark.network]

DUMMY_PROTOCOL = b"test/dummy/protocol"  # tari's id
NUM_SUBSTREAMS = 20
FRAME_LIMIT = MAX_ITEM_SIZE  # 4 MiB: tari's LengthDelimitedCodec max_frame_length
FRAME_SIZE = FRAME_LIMIT  # a body exactly at the limit
_HEADER = struct.Struct(">III")
TO_SERVER, TO_CLIENT = 0, 1
RECEIVE_SIZE = 256 * 1024


def make_frame(stream_no: int, round_no: int, direction: int) -> bytes:
    body = item_bytes(stream_no, round_no, FRAME_SIZE - _HEADER.size, salt=direction + 1)
    return _HEADER.pack(stream_no, round_no, direction) + body


def check_frame(frame: bytes, stream_no: int | None, round_no: int, direction: int) -> int:
    """Check a frame; return its stream number (``stream_no=None``: taken from the header)."""
    if len(frame) != FRAME_SIZE:
        raise AssertionError(f"round {round_no}: a frame of {len(frame)} bytes")
    got_stream, got_round, got_direction = _HEADER.unpack_from(frame)
    expected_stream = got_stream if stream_no is None else stream_no
    if (got_stream, got_round, got_direction) != (expected_stream, round_no, direction):
        raise AssertionError(
            f"header {(got_stream, got_round, got_direction)}, "
            f"expected {(expected_stream, round_no, direction)}"
        )
    check_item(
        frame[_HEADER.size :], got_stream, round_no, FRAME_SIZE - _HEADER.size, direction + 1
    )
    return int(got_stream)


class FramedStream:
    """u32-BE length-delimited frames over a byte stream, at most ``FRAME_LIMIT`` bytes."""

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self._decoder = FrameDecoder(FRAME_LIMIT)
        self._frames: deque[bytes] = deque()

    async def send(self, body: bytes) -> None:
        await self.stream.send(frame_header(len(body), FRAME_LIMIT))
        await self.stream.send(body)

    async def receive(self) -> bytes | None:
        """The next frame, or ``None`` at a clean end of stream."""
        while not self._frames:
            try:
                data = await self.stream.receive(RECEIVE_SIZE)
            except anyio.EndOfStream:
                if not self._decoder.at_boundary:
                    raise AssertionError("end of stream inside a frame") from None
                return None
            self._frames.extend(self._decoder.feed(data))
        return self._frames.popleft()


class DummyServer:
    """The responder: answers every frame of a substream, stops after ``round_trips``."""

    def __init__(self, round_trips: int) -> None:
        self.round_trips = round_trips
        self.answered: dict[int, int] = {}
        self.errors: list[BaseException] = []

    async def handler(self, conn: PeerConnection, stream: ByteStream) -> None:
        framed = FramedStream(stream)
        stream_no: int | None = None
        try:
            for round_no in range(self.round_trips):
                frame = await framed.receive()
                if frame is None:
                    raise AssertionError(f"stream {stream_no}: EOF after {round_no} frames")
                stream_no = check_frame(frame, stream_no, round_no, TO_SERVER)
                del frame
                await framed.send(make_frame(stream_no, round_no, TO_CLIENT))
                self.answered[stream_no] = round_no + 1
        except Exception as exc:  # the node would only log it: keep it for the test
            self.errors.append(exc)
            raise


async def run_many_at_frame_limit(round_trips: int, memory_cap: int, label: str) -> None:
    server = DummyServer(round_trips)
    received = [0] * NUM_SUBSTREAMS
    with measured(label) as measurement:
        async with stress_nodes(
            server_config=RpcServerConfig(), protocols={DUMMY_PROTOCOL: server.handler}
        ) as nodes:
            conn = nodes.outbound[0]

            async def client(stream_no: int) -> None:
                stream = await conn.open_substream(DUMMY_PROTOCOL, optimistic=False)
                async with stream:
                    framed = FramedStream(stream)
                    for round_no in range(round_trips):
                        await framed.send(make_frame(stream_no, round_no, TO_SERVER))
                        frame = await framed.receive()
                        assert frame is not None, f"stream {stream_no}: EOF in round {round_no}"
                        check_frame(frame, stream_no, round_no, TO_CLIENT)
                        received[stream_no] += 1
                    assert await framed.receive() is None  # the server's handler returned

            with anyio.fail_after(30 + 5 * round_trips):  # a hang guard, not a target
                async with anyio.create_task_group() as tg:
                    for stream_no in range(NUM_SUBSTREAMS):
                        tg.start_soon(client, stream_no)
            await nodes.wait_idle()
            assert conn.statistics().normal_opens == NUM_SUBSTREAMS
            assert nodes.inbound[0].statistics().inbound_substreams == NUM_SUBSTREAMS
        total = 2 * NUM_SUBSTREAMS * round_trips * FRAME_SIZE
        measurement.notes.append(
            f"{total / MIB:.0f} MiB in {2 * NUM_SUBSTREAMS * round_trips} frames"
        )
    assert server.errors == []
    assert received == [round_trips] * NUM_SUBSTREAMS
    assert server.answered == dict.fromkeys(range(NUM_SUBSTREAMS), round_trips)
    assert measurement.peak_growth < memory_cap, measurement.line()


async def test_many_at_frame_limit_quick(anyio_backend: str) -> None:
    await run_many_at_frame_limit(
        2, 1024 * MIB, f"substream quick/many_at_frame_limit ({anyio_backend})"
    )


# asyncio only: 16 GiB cross the connection (both ends in this process); the quick variant
# covers trio.
@pytest.mark.stress
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_many_at_frame_limit_full(anyio_backend: str) -> None:
    await run_many_at_frame_limit(
        100, 2048 * MIB, f"substream full/many_at_frame_limit ({anyio_backend})"
    )

"""NoiseStream's synchronous writes (``send_nowait``) and pushed reads (``start_push``),
over real TCP on 127.0.0.1 (src/_nowait.py).

Both reach into anyio's socket streams; the first test fails if an anyio release moves
what they rely on, instead of letting plait fall back to the slow path unnoticed.
"""

from __future__ import annotations

import struct

import anyio
import pytest
from anyio.abc import ByteStream
from plait._nowait import nowait_writer, push_reader
from plait.noise import NoiseProtocolViolation, NoiseStream
from support.net import noise_pair, receive_exactly, tcp_pair

pytestmark = pytest.mark.anyio


async def test_anyio_socket_streams_get_the_fast_paths(anyio_backend: str) -> None:
    async with tcp_pair() as (client, server):
        assert nowait_writer(client) is not None
        assert nowait_writer(server) is not None
        # pushed reads need asyncio's transport callbacks; trio keeps the reader task
        assert (push_reader(client) is not None) == (anyio_backend == "asyncio")
        # any other stream keeps the ordinary paths
        assert nowait_writer(_Opaque(client)) is None
        assert push_reader(_Opaque(client)) is None


async def test_send_nowait_keeps_the_order_when_the_socket_fills_up() -> None:
    chunk = 60_000
    async with noise_pair() as (i, r):
        sent: list[bytes] = []
        # Nobody reads: synchronous writes go on until the socket's buffer is full, then
        # can_send_nowait() turns false (asyncio: the transport holds a backlog; trio: the
        # bytes the socket did not take wait in the stream).
        while i.can_send_nowait():
            assert len(sent) < 10_000, "the socket never filled up"
            message = struct.pack(">I", len(sent)) * (chunk // 4)
            i.send_nowait(message)
            sent.append(message)
        assert len(sent) > 1
        tail = b"the end"
        received = bytearray()
        total = sum(map(len, sent)) + len(tail)
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(i.send, tail)  # goes out after everything left over
                while len(received) < total:
                    received += await r.receive()
        assert bytes(received) == b"".join(sent) + tail
        assert not i.has_pending_send and i.can_send_nowait()


async def test_send_nowait_after_close_is_refused() -> None:
    async with noise_pair() as (i, _r):
        assert i.can_send_nowait()
        await i.aclose()
        assert not i.can_send_nowait()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # trio keeps a reader task
async def test_pushed_reads_start_with_what_was_read_before() -> None:
    async with noise_pair() as (i, r):
        await i.send(b"first message")
        await i.send(b"second message")
        # take part of the first message the ordinary way: the rest is held as leftover
        assert await receive_exactly(r, 5) == b"first"
        got = bytearray()
        waiting_for = [b"second message"]
        arrived = anyio.Event()
        ended: list[BaseException | None] = []
        ended_event = anyio.Event()

        def on_data(data: bytes | memoryview) -> None:
            got.extend(data)
            if got.endswith(waiting_for[0]):
                arrived.set()

        def on_end(error: BaseException | None) -> None:
            ended.append(error)
            ended_event.set()

        with anyio.fail_after(5):
            assert r.start_push(on_data, on_end)  # the leftover is handed over at once
            assert got.startswith(b" message")
            await arrived.wait()
            with pytest.raises(anyio.BusyResourceError):
                await r.receive()
            waiting_for[0], arrived = b"third message", anyio.Event()
            await i.send(b"third message")
            await arrived.wait()
            await i.aclose()
            await ended_event.wait()
        assert bytes(got) == b" messagesecond messagethird message"
        assert ended == [None]  # a clean end of stream


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # trio keeps a reader task
async def test_pushed_tampered_message_ends_with_a_violation() -> None:
    async with noise_pair() as (i, r):
        ended: list[BaseException | None] = []
        ended_event = anyio.Event()

        def on_end(error: BaseException | None) -> None:
            ended.append(error)
            ended_event.set()

        assert r.start_push(lambda data: None, on_end)
        # a well-framed message whose MAC cannot verify
        raw: ByteStream = i.transport_stream
        await raw.send(struct.pack(">H", 40) + bytes(40))
        with anyio.fail_after(5):
            await ended_event.wait()
            assert len(ended) == 1 and isinstance(ended[0], NoiseProtocolViolation)
            # the socket was aborted: the sender sees the connection end
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await i.receive()


async def test_start_push_is_refused_without_a_socket_underneath() -> None:
    async with tcp_pair() as (client, server):
        wrapped: dict[str, NoiseStream] = {}

        async def wrap(name: str, stream: ByteStream, initiator: bool) -> None:
            wrapped[name] = await NoiseStream.wrap(_Opaque(stream), initiator=initiator)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(wrap, "i", client, True)
                tg.start_soon(wrap, "r", server, False)
        i, r = wrapped["i"], wrapped["r"]
        assert not i.can_send_nowait()
        assert not r.start_push(lambda data: None, lambda error: None)
        await i.send(b"still works")  # the ordinary paths are unchanged
        with anyio.fail_after(5):
            assert await receive_exactly(r, 11) == b"still works"


class _Opaque(ByteStream):
    """A ByteStream wrapper the fast paths do not know (as a test proxy or TLS would be)."""

    def __init__(self, inner: ByteStream) -> None:
        self._inner = inner

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._inner.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        await self._inner.send(item)

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        await self._inner.aclose()

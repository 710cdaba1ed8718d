"""The MuxedConnection writer over real TCP: frames queued by many streams leave in few
transport writes, and a ping round trip completes while a stream's sender is blocked on a
full window (the stalled stream holds neither the reader nor the writer)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest
from anyio.abc import ByteStream
from plait.muxer import MuxedConnection
from support.net import tcp_pair

if TYPE_CHECKING:
    from collections.abc import Mapping

pytestmark = pytest.mark.anyio


class CountingStream(ByteStream):
    """Delegates to a transport stream and counts the writes made on it."""

    def __init__(self, inner: ByteStream) -> None:
        self.inner = inner
        self.writes = 0
        self.bytes = 0

    async def send(self, item: bytes) -> None:
        self.writes += 1
        self.bytes += len(item)
        await self.inner.send(item)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.inner.receive(max_bytes)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Any]:
        return self.inner.extra_attributes


async def test_small_writes_of_many_streams_coalesce_into_few_transport_writes() -> None:
    streams, messages = 50, 20
    async with tcp_pair() as (a, b):
        counting = CountingStream(a)
        async with MuxedConnection(counting, is_client=True) as client, \
                MuxedConnection(b, is_client=False) as server:
            opened = [await client.open_stream() for _ in range(streams)]
            accepted = []
            for stream in opened:  # the SYN goes with the first data: send before accepting
                await stream.send(b"open")
                peer = await server.accept_stream()
                assert await peer.receive() == b"open"
                accepted.append(peer)
            before = counting.writes

            async def chatter(index: int) -> None:
                for n in range(messages):
                    await opened[index].send(b"%d:%d;" % (index, n))

            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    for index in range(streams):
                        tg.start_soon(chatter, index)
                for index, peer in enumerate(accepted):
                    expected = b"".join(b"%d:%d;" % (index, n) for n in range(messages))
                    got = b""
                    while len(got) < len(expected):
                        got += await peer.receive()
                    assert got == expected
            frames = streams * messages
            writes = counting.writes - before
            # 1000 DATA frames queued by 50 tasks leave in far fewer writes than frames
            assert writes <= frames // 4, (writes, frames)


async def test_ping_is_answered_while_bulk_data_is_queued() -> None:
    async with tcp_pair() as (a, b):
        async with MuxedConnection(a, is_client=True) as client, \
                MuxedConnection(b, is_client=False) as server:
            stream = await client.open_stream()
            await stream.send(b"x")
            peer = await server.accept_stream()
            assert await peer.receive() == b"x"
            # the server never reads: the client's stream fills its window and the sender
            # blocks with data queued; the connection's pings still get answered
            blob = bytes(1024 * 1024)

            async def flood() -> None:
                await stream.send(blob)

            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(flood)
                    rtt = await client.ping()  # the point: this returns (fail_after bounds it)
                    assert rtt >= 0
                    tg.cancel_scope.cancel()

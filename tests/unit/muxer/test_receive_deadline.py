"""``MuxedStream.receive_deadline``: lazy receive timeouts kept by the connection's timer,
over Yamux on TCP and on Noise/TCP (where reads are pushed on asyncio), both backends."""

from __future__ import annotations

import anyio
import pytest
from plait.bench._net import mux_pair

pytestmark = pytest.mark.anyio

SECURE = pytest.mark.parametrize("secure", [False, True], ids=["tcp", "noise"])


@SECURE
async def test_receive_past_the_deadline_raises_timeout(secure: bool) -> None:
    async with mux_pair(secure) as pair:
        stream = await pair.client.open_stream()
        start = anyio.current_time()
        stream.receive_deadline = start + 0.2
        with anyio.fail_after(5), pytest.raises(TimeoutError):
            await stream.receive()
        assert anyio.current_time() - start >= 0.19
        # a deadline already passed raises as well, without waiting for it again
        with anyio.fail_after(5), pytest.raises(TimeoutError):
            await stream.receive()


@SECURE
async def test_data_that_arrived_wins_over_a_passed_deadline(secure: bool) -> None:
    async with mux_pair(secure) as pair:
        stream = await pair.client.open_stream()
        await stream.send(b"hello")
        peer = await pair.server.accept_stream()
        with anyio.fail_after(5):
            assert await peer.receive() == b"hello"
            await peer.send(b"reply")
            while stream.buffered_size < 5:
                await anyio.lowlevel.checkpoint()
        stream.receive_deadline = anyio.current_time() - 1
        assert await stream.receive() == b"reply"
        # with the deadline lifted, a receive waits for the next data
        stream.receive_deadline = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(peer.send, b"later")
            with anyio.fail_after(5):
                assert await stream.receive() == b"later"


@SECURE
async def test_a_deadline_moved_later_while_waiting_is_kept(secure: bool) -> None:
    async with mux_pair(secure) as pair:
        stream = await pair.client.open_stream()
        start = anyio.current_time()
        stream.receive_deadline = start + 0.1
        outcome: list[float] = []

        async def receive() -> None:
            with pytest.raises(TimeoutError):
                await stream.receive()
            outcome.append(anyio.current_time() - start)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(receive)
                await anyio.lowlevel.checkpoint()  # the receive is waiting now
                stream.receive_deadline = start + 0.5
        # the timer's entry for 0.1 s found the deadline moved and waited on
        assert outcome and outcome[0] >= 0.49


@SECURE
async def test_a_deadline_moved_earlier_while_waiting_is_kept(secure: bool) -> None:
    async with mux_pair(secure) as pair:
        stream = await pair.client.open_stream()
        start = anyio.current_time()
        stream.receive_deadline = start + 30
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:

                async def shorten() -> None:
                    stream.receive_deadline = start + 0.1

                tg.start_soon(shorten)
                with pytest.raises(TimeoutError):
                    await stream.receive()
        assert 0.09 <= anyio.current_time() - start < 5


@SECURE
async def test_many_streams_with_deadlines_each_time_out_once(secure: bool) -> None:
    async with mux_pair(secure) as pair:
        streams = [await pair.client.open_stream() for _ in range(20)]
        start = anyio.current_time()
        timed_out: list[int] = []

        async def wait(index: int) -> None:
            streams[index].receive_deadline = start + 0.05 * (index % 5 + 1)
            with pytest.raises(TimeoutError):
                await streams[index].receive()
            timed_out.append(index)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                for index in range(20):
                    tg.start_soon(wait, index)
        assert sorted(timed_out) == list(range(20))

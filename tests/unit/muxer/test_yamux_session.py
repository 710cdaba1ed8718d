"""MuxedConnection / MuxedStream over real TCP on 127.0.0.1, both anyio backends."""

from __future__ import annotations

import hashlib
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import pytest
from anyio.abc import ByteStream, SocketAttribute, SocketStream
from plait.muxer import (
    GoAwayError,
    KeepaliveTimeoutError,
    MuxedConnection,
    MuxedStream,
    MuxerAttribute,
    StreamLimitError,
    StreamResetError,
    YamuxConfig,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.anyio

FAST = YamuxConfig(keepalive_interval=None)


async def tcp_sockets() -> tuple[SocketStream, SocketStream]:
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    listener = multi.listeners[0]
    port = listener.extra(SocketAttribute.local_port)
    client = await anyio.connect_tcp("127.0.0.1", port)
    server = await listener.accept()
    await multi.aclose()
    return client, server


@asynccontextmanager
async def mux_pair(
    client_config: YamuxConfig = FAST, server_config: YamuxConfig = FAST
) -> AsyncIterator[tuple[MuxedConnection, MuxedConnection]]:
    client_sock, server_sock = await tcp_sockets()
    with anyio.fail_after(30):
        async with MuxedConnection(client_sock, is_client=True, config=client_config) as c, \
                MuxedConnection(server_sock, is_client=False, config=server_config) as s:
            yield c, s


async def read_all(stream: MuxedStream) -> bytes:
    parts = []
    try:
        while True:
            parts.append(await stream.receive())
    except anyio.EndOfStream:
        return b"".join(parts)


async def echo_server(mux: MuxedConnection, count: int) -> None:
    async def echo(stream: MuxedStream) -> None:
        try:
            while True:
                await stream.send(await stream.receive(262144))
        except anyio.EndOfStream:
            await stream.aclose()

    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(echo, await mux.accept_stream())


async def test_open_accept_echo_and_attributes() -> None:
    async with mux_pair() as (client, server), anyio.create_task_group() as tg:
        tg.start_soon(echo_server, server, 1)
        stream = await client.open_stream()
        assert stream.extra(MuxerAttribute.stream_id) == 1
        assert stream.extra(MuxerAttribute.is_outbound) is True
        assert stream.extra(SocketAttribute.remote_address)[0] == "127.0.0.1"
        await stream.send(b"hello")
        await stream.send_eof()
        assert await read_all(stream) == b"hello"
        await stream.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await stream.receive()


async def test_half_close_both_directions() -> None:
    async with mux_pair() as (client, server):
        a = await client.open_stream()
        await a.send(b"request")
        await a.send_eof()
        b = await server.accept_stream()
        assert await read_all(b) == b"request"
        with pytest.raises(anyio.ClosedResourceError):
            await a.send(b"after eof")
        # the server can still answer after the client's FIN, then half-closes itself
        await b.send(b"response")
        await b.send_eof()
        assert await read_all(a) == b"response"
        await a.aclose()
        await b.aclose()
        with anyio.fail_after(5):
            while client.core.stream_count or server.core.stream_count:
                await anyio.sleep(0.01)  # wait for the final frames to cross


async def test_server_half_closes_first() -> None:
    async with mux_pair() as (client, server):
        a = await client.open_stream()
        await a.send(b"x")
        b = await server.accept_stream()
        await b.send(b"bye")
        await b.send_eof()
        assert await read_all(a) == b"bye"
        await a.send(b"still writing")
        await a.send_eof()
        assert await read_all(b) == b"xstill writing"


@pytest.mark.parametrize("resetter", ["client", "server"])
async def test_reset_both_directions(resetter: str) -> None:
    async with mux_pair() as (client, server):
        a = await client.open_stream()
        await a.send(b"x")
        b = await server.accept_stream()
        assert await b.receive() == b"x"
        mine, theirs = (a, b) if resetter == "client" else (b, a)
        await mine.reset()
        with pytest.raises(anyio.ClosedResourceError):
            await mine.send(b"y")
        with pytest.raises(StreamResetError):
            await theirs.receive()
        with pytest.raises(StreamResetError):
            await theirs.send(b"z")
        assert isinstance(StreamResetError(), anyio.BrokenResourceError)
        # the connection itself is unharmed
        c = await client.open_stream()
        await c.send(b"again")
        d = await server.accept_stream()
        assert await d.receive() == b"again"


async def test_64_concurrent_streams_1mib_echo_byte_exact() -> None:
    size = 1024 * 1024
    async with mux_pair() as (client, server), anyio.create_task_group() as tg:
        tg.start_soon(echo_server, server, 64)

        async def one(i: int) -> None:
            stream = await client.open_stream()
            payload = hashlib.shake_256(i.to_bytes(4, "big")).digest(size)
            result = bytearray()

            async def reader() -> None:
                result.extend(await read_all(stream))

            async with anyio.create_task_group() as inner:
                inner.start_soon(reader)
                for off in range(0, size, 100_000):
                    await stream.send(payload[off:off + 100_000])
                await stream.send_eof()
            assert bytes(result) == payload
            await stream.aclose()

        async with anyio.create_task_group() as clients:
            for i in range(64):
                clients.start_soon(one, i)


async def test_slow_reader_does_not_stall_other_streams() -> None:
    async with mux_pair() as (client, server):
        slow = await client.open_stream()
        fast = await client.open_stream()
        slow_in = await server.accept_stream()
        fast_in = await server.accept_stream()
        # fill the slow stream's window completely; nobody reads it
        with anyio.move_on_after(0.5):
            while True:
                await slow.send(b"s" * 65536)
        assert client.core.outbound_window(slow.stream_id) == 0
        assert slow_in.buffered_size == 256 * 1024  # bounded by the window
        assert client.statistics().zero_window_waits >= 1
        total = 8 * 1024 * 1024
        got = 0

        async def drain() -> None:
            nonlocal got
            got = len(await read_all(fast_in))

        async with anyio.create_task_group() as tg:
            tg.start_soon(drain)
            for _ in range(total // 65536):
                await fast.send(b"f" * 65536)
            await fast.send_eof()
        assert got == total
        stats = client.statistics()
        assert stats.bytes_written >= total + 256 * 1024 and stats.batches_written > 0
        assert server.statistics().bytes_read > total
        # the slow stream resumes once read
        assert len(await slow_in.receive(1 << 20)) > 0


async def test_keepalive_timeout_closes_dead_connection() -> None:
    client_sock, server_sock = await tcp_sockets()
    config = YamuxConfig(keepalive_interval=0.05, keepalive_timeout=0.2, auto_tune=False)
    with anyio.fail_after(10):
        async with server_sock, MuxedConnection(client_sock, is_client=True,
                                                config=config) as client:
            stream = await client.open_stream()
            # the server socket is never read: no pong ever comes back
            with pytest.raises(anyio.BrokenResourceError) as info:
                await stream.receive()
            assert isinstance(info.value.__cause__, KeepaliveTimeoutError)
            with pytest.raises(anyio.BrokenResourceError):
                await client.accept_stream()
            with pytest.raises(anyio.BrokenResourceError):
                await client.open_stream()


async def test_keepalive_answered_keeps_connection_and_ping_measures_rtt() -> None:
    config = YamuxConfig(keepalive_interval=0.02, keepalive_timeout=0.5)
    async with mux_pair(config, config) as (client, server):
        rtt = await client.ping()
        assert rtt >= 0 and client.rtt is not None
        await anyio.sleep(0.3)  # many keep-alive rounds must pass without a timeout
        assert not client.is_closed and not server.is_closed
        assert await server.ping() >= 0


async def test_aclose_sends_goaway_and_all_streams_error() -> None:
    async with mux_pair() as (client, server):
        a = await client.open_stream()
        await a.send(b"data before close")
        b = await server.accept_stream()
        await client.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await a.receive()
        with pytest.raises(anyio.ClosedResourceError):
            await client.open_stream()
        with pytest.raises(anyio.ClosedResourceError):
            await client.accept_stream()
        # the peer still reads what was sent, then sees the connection gone
        assert await b.receive() == b"data before close"
        with pytest.raises(anyio.BrokenResourceError) as info:
            await b.receive()
        assert isinstance(info.value.__cause__, GoAwayError)
        assert info.value.__cause__.code == 0
        with pytest.raises(anyio.EndOfStream):
            await server.accept_stream()
        with pytest.raises(anyio.BrokenResourceError):
            await b.send(b"x")


async def test_accept_stream_raises_when_peer_disconnects() -> None:
    client_sock, server_sock = await tcp_sockets()
    with anyio.fail_after(10):
        async with MuxedConnection(server_sock, is_client=False, config=FAST) as server:
            async with anyio.create_task_group() as tg:
                async def close_later() -> None:
                    await client_sock.aclose()

                tg.start_soon(close_later)
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await server.accept_stream()


async def test_concurrent_receive_is_busy() -> None:
    async with mux_pair() as (client, _server):
        a = await client.open_stream()
        async def blocked() -> None:
            with pytest.raises(anyio.ClosedResourceError):
                await a.receive()  # woken by the local reset below

        async with anyio.create_task_group() as tg:
            tg.start_soon(blocked)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(anyio.BusyResourceError):
                await a.receive()
            await a.reset()


async def test_ack_backlog_makes_open_wait_until_accept() -> None:
    config = YamuxConfig(keepalive_interval=None, max_ack_backlog=2)
    async with mux_pair(config, FAST) as (client, server):
        await client.open_stream()
        await client.open_stream()
        with anyio.move_on_after(0.2) as scope:
            await client.open_stream()
        assert scope.cancelled_caught
        await server.accept_stream()
        with anyio.fail_after(5):
            third = await client.open_stream()
        assert third.stream_id == 5


async def test_local_stream_limit_raises() -> None:
    config = YamuxConfig(keepalive_interval=None, max_streams=2,
                         max_connection_window=2 * 256 * 1024)
    async with mux_pair(config, FAST) as (client, _server):
        await client.open_stream()
        await client.open_stream()
        with pytest.raises(StreamLimitError):
            await client.open_stream()


async def test_excess_inbound_streams_reset_and_connection_lives() -> None:
    server_config = YamuxConfig(keepalive_interval=None, accept_backlog=2)
    async with mux_pair(FAST, server_config) as (client, server):
        streams = [await client.open_stream() for _ in range(3)]
        with pytest.raises(StreamResetError):
            await streams[2].receive()
        first = await server.accept_stream()
        await streams[0].send(b"ok")
        assert await first.receive() == b"ok"


async def test_over_noise_stream_echo() -> None:
    from plait.noise import NoiseStream

    client_sock, server_sock = await tcp_sockets()
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            results: dict[str, NoiseStream] = {}

            async def responder() -> None:
                results["server"] = await NoiseStream.wrap(server_sock, initiator=False)

            tg.start_soon(responder)
            client_noise = await NoiseStream.wrap(client_sock, initiator=True)
        async with MuxedConnection(client_noise, is_client=True, config=FAST) as client, \
                MuxedConnection(results["server"], is_client=False, config=FAST) as server, \
                anyio.create_task_group() as tg:
            tg.start_soon(echo_server, server, 4)

            async def one(i: int) -> None:
                stream = await client.open_stream()
                payload = bytes([i]) * (300 * 1024 + i)
                await stream.send(payload)
                await stream.send_eof()
                assert await read_all(stream) == payload

            async with anyio.create_task_group() as clients:
                for i in range(4):
                    clients.start_soon(one, i)


async def test_aclose_without_entering_closes_transport() -> None:
    client_sock, server_sock = await tcp_sockets()
    mux = MuxedConnection(client_sock, is_client=True)
    await mux.aclose()
    with pytest.raises(anyio.ClosedResourceError):
        await client_sock.send(b"x")
    await server_sock.aclose()


async def test_many_waiters_on_ack_backlog_and_accept_all_wake() -> None:
    config = YamuxConfig(keepalive_interval=None, max_ack_backlog=2)
    async with mux_pair(config, FAST) as (client, server):
        opened: list[MuxedStream] = []
        accepted: list[MuxedStream] = []
        async with anyio.create_task_group() as tg:
            async def opener() -> None:
                opened.append(await client.open_stream())

            async def acceptor() -> None:
                accepted.append(await server.accept_stream())

            for _ in range(6):
                tg.start_soon(acceptor)  # six concurrent accept_stream callers
            for _ in range(6):
                tg.start_soon(opener)  # four of them wait on the ACK backlog
        assert len(opened) == 6 and sorted(s.stream_id for s in accepted) == [1, 3, 5, 7, 9, 11]


class _BreakingStream(ByteStream):
    """Wraps a stream; after ``broken`` is set every send fails like a closed peer."""

    def __init__(self, inner: ByteStream) -> None:
        self.inner = inner
        self.broken = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.inner.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        if self.broken:
            raise anyio.BrokenResourceError
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_aclose_does_not_wait_for_a_writer_that_failed() -> None:
    client_sock, server_sock = await tcp_sockets()
    wrapped = _BreakingStream(client_sock)
    config = YamuxConfig(keepalive_interval=None, close_timeout=10.0)
    async with server_sock, MuxedConnection(wrapped, is_client=True, config=config) as client:
        await client.open_stream()
        wrapped.broken = True
        start = anyio.current_time()
        await client.aclose()
        assert anyio.current_time() - start < 2  # far below close_timeout


async def memory_sockets() -> tuple[ByteStream, ByteStream]:
    from plait.transport import MemoryNetwork

    network = MemoryNetwork()
    listener = await network.listen("memory://muxer-test")
    client = await network.dial("memory://muxer-test")
    server = await listener.accept()
    await listener.aclose()
    return client, server


@pytest.mark.parametrize("transport", ["tcp", "memory"])
@pytest.mark.parametrize("closer", ["aclose", "send_eof"])
async def test_peer_gone_before_enter_exits_without_hanging(transport: str, closer: str) -> None:
    """The peer closes before ``async with`` started the background tasks: the reader sees
    EOF while the writer and timer are still starting; all of them must end on exit."""
    make = tcp_sockets if transport == "tcp" else memory_sockets
    for _ in range(5):  # the race is decided by scheduling: try it a few times
        client_sock, server_sock = await make()
        if closer == "aclose":
            await server_sock.aclose()
        else:
            await server_sock.send_eof()
        with anyio.fail_after(10):
            async with MuxedConnection(client_sock, is_client=True,
                                       config=YamuxConfig(keepalive_interval=5.0)) as mux:
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await mux.accept_stream()
                assert mux.is_closed
        await server_sock.aclose()


class _Boom(ValueError):
    pass


async def test_error_in_body_propagates_unwrapped() -> None:
    with pytest.raises(_Boom) as info:
        async with mux_pair() as (client, server):
            stream = await client.open_stream()
            await stream.send(b"x")
            assert await (await server.accept_stream()).receive() == b"x"
            raise _Boom("from the application")
    assert type(info.value) is _Boom and str(info.value) == "from the application"
    assert client.is_closed and server.is_closed


async def test_error_in_body_is_caught_by_a_plain_except() -> None:
    client_sock, server_sock = await tcp_sockets()
    caught = None
    with anyio.fail_after(10):
        try:
            async with MuxedConnection(client_sock, is_client=True, config=FAST):
                int("not a number")
        except ValueError as exc:  # not an ExceptionGroup
            caught = exc
        # the peer sees a graceful end (GO_AWAY(0)) of the connection
        async with MuxedConnection(server_sock, is_client=False, config=FAST) as server:
            with pytest.raises(anyio.EndOfStream):
                await server.accept_stream()
    assert isinstance(caught, ValueError) and "not a number" in str(caught)


async def test_cancellation_of_the_body_still_cancels() -> None:
    with anyio.fail_after(10):
        with anyio.CancelScope() as scope:
            async with mux_pair() as (client, _server):
                scope.cancel()
                await anyio.sleep_forever()
        assert scope.cancelled_caught and client.is_closed


async def test_ack_of_an_accepted_stream_rides_with_the_first_reply() -> None:
    async with mux_pair() as (client, server):
        warm = await client.open_stream()  # settle the start-up pings first
        await warm.send(b"w")
        warm_in = await server.accept_stream()
        assert await warm_in.receive() == b"w"
        await warm_in.send(b"w")
        assert await warm.receive() == b"w"
        stream = await client.open_stream()
        await stream.send(b"request")
        with anyio.fail_after(5):
            while not server.statistics().accept_queue:  # the SYN and data arrived
                await anyio.sleep(0.001)
        before = server.statistics().batches_written
        inbound = await server.accept_stream()
        assert await inbound.receive() == b"request"
        await inbound.send(b"reply")
        assert await stream.receive() == b"reply"
        # one write carried WINDOW_UPDATE+ACK and the reply
        assert server.statistics().batches_written - before == 1
        assert client.core.ack_backlog == 0


async def test_ack_of_an_idle_accepted_stream_is_flushed_by_max_ack_delay() -> None:
    client_config = YamuxConfig(keepalive_interval=None, max_ack_backlog=1)
    server_config = YamuxConfig(keepalive_interval=None, max_ack_delay=0.02)
    async with mux_pair(client_config, server_config) as (client, server):
        await client.open_stream()
        held = await server.accept_stream()  # accepted, then neither read nor written
        with anyio.fail_after(5):
            second = await client.open_stream()  # needs the ACK of the first
        assert second.stream_id == 3 and held.stream_id == 1


async def test_ack_is_flushed_when_the_acceptor_waits_again() -> None:
    client_config = YamuxConfig(keepalive_interval=None, max_ack_backlog=1)
    server_config = YamuxConfig(keepalive_interval=None, max_ack_delay=3600.0)
    async with mux_pair(client_config, server_config) as (client, server), \
            anyio.create_task_group() as tg:
        accepted: list[MuxedStream] = []

        async def acceptor() -> None:
            while True:
                accepted.append(await server.accept_stream())

        tg.start_soon(acceptor)
        with anyio.fail_after(5):
            for _ in range(3):  # each open waits for the previous stream's ACK
                await client.open_stream()
        assert [s.stream_id for s in accepted][:2] == [1, 3]
        tg.cancel_scope.cancel()


async def test_senders_waiting_for_queue_space_all_finish_in_turn() -> None:
    """A write queue far smaller than what 20 concurrent senders queue: they wait for room
    and are handed it one at a time; every byte arrives, in order, on every stream."""
    config = YamuxConfig(keepalive_interval=None, max_write_queue_size=64 * 1024)
    size = 256 * 1024
    async with mux_pair(config, FAST) as (client, server), anyio.create_task_group() as tg:
        tg.start_soon(echo_server, server, 20)

        async def one(i: int) -> None:
            stream = await client.open_stream()
            payload = hashlib.shake_256(b"q" + i.to_bytes(4, "big")).digest(size)
            result = bytearray()

            async def reader() -> None:
                result.extend(await read_all(stream))

            async with anyio.create_task_group() as inner:
                inner.start_soon(reader)
                await stream.send(payload)
                await stream.send_eof()
            assert bytes(result) == payload

        async with anyio.create_task_group() as senders:
            for i in range(20):
                senders.start_soon(one, i)
        assert client.statistics().bytes_written >= 20 * size

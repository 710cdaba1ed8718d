"""The in-process ``memory://`` transport: echo, back-pressure, close semantics."""

from __future__ import annotations

import anyio
import pytest
from plait.transport import (
    DialError,
    InvalidAddressError,
    ListenError,
    MemoryAddress,
    MemoryNetwork,
    MemoryTransportConfig,
    Transport,
)

pytestmark = pytest.mark.anyio


async def test_echo_over_a_memory_connection() -> None:
    network = MemoryNetwork()
    assert isinstance(network, Transport)
    listener = await network.listen("memory://echo")
    assert listener.address == MemoryAddress("echo")

    async def echo_once() -> None:
        stream = await listener.accept()
        async with stream:
            while True:
                try:
                    data = await stream.receive()
                except anyio.EndOfStream:
                    return
                await stream.send(data)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(echo_once)
            client = await network.dial("memory://echo")
            payload = bytes(range(256)) * 1000  # larger than the buffer: back-pressure both ways
            received = bytearray()

            async def reader() -> None:
                while len(received) < len(payload):
                    received.extend(await client.receive())

            async with anyio.create_task_group() as inner:
                inner.start_soon(reader)
                await client.send(payload)
            assert bytes(received) == payload
            await client.send_eof()
            with pytest.raises(anyio.EndOfStream):
                await client.receive()  # the echo side closed after our EOF
        await client.aclose()
    await listener.aclose()


async def test_serve_runs_a_handler_per_connection() -> None:
    network = MemoryNetwork()
    listener = await network.listen("memory://srv")
    done = anyio.Event()
    seen: list[bytes] = []

    async def handler(stream: anyio.abc.ByteStream) -> None:
        seen.append(await stream.receive())
        if len(seen) == 2:
            done.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handler)
            for tag in (b"a", b"b"):
                stream = await network.dial("memory://srv")
                await stream.send(tag)
            await done.wait()
            tg.cancel_scope.cancel()
    assert sorted(seen) == [b"a", b"b"]
    await listener.aclose()


async def test_aclose_semantics() -> None:
    network = MemoryNetwork()
    listener = await network.listen("memory://x")
    client = await network.dial("memory://x")
    server = await listener.accept()
    await client.send(b"last words")
    await client.aclose()
    with pytest.raises(anyio.ClosedResourceError):
        await client.send(b"more")
    with pytest.raises(anyio.ClosedResourceError):
        await client.receive()
    await client.aclose()  # idempotent
    assert await server.receive() == b"last words"
    with pytest.raises(anyio.EndOfStream):
        await server.receive()
    with pytest.raises(anyio.BrokenResourceError):
        await server.send(b"nobody reads this")


async def test_send_eof_half_closes() -> None:
    network = MemoryNetwork()
    listener = await network.listen("memory://h")
    client = await network.dial("memory://h")
    server = await listener.accept()
    await client.send_eof()
    with pytest.raises(anyio.ClosedResourceError):
        await client.send(b"x")
    with pytest.raises(anyio.EndOfStream):
        await server.receive()
    await server.send(b"reply still flows")
    assert await client.receive() == b"reply still flows"


async def test_close_wakes_a_blocked_receiver_and_a_blocked_sender() -> None:
    network = MemoryNetwork(MemoryTransportConfig(max_buffer_size=4))
    listener = await network.listen("memory://w")
    client = await network.dial("memory://w")
    server = await listener.accept()
    results: dict[str, type[BaseException]] = {}

    async def blocked_receive() -> None:
        try:
            await server.receive()
        except anyio.EndOfStream as exc:
            results["receive"] = type(exc)

    async def blocked_send() -> None:
        try:
            await server.send(b"0123456789")  # more than the 4-byte buffer
        except anyio.BrokenResourceError as exc:
            results["send"] = type(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(blocked_receive)
            tg.start_soon(blocked_send)
            await anyio.wait_all_tasks_blocked()
            await client.aclose()
    assert results == {"receive": anyio.EndOfStream, "send": anyio.BrokenResourceError}


async def test_bounded_buffer_applies_back_pressure() -> None:
    network = MemoryNetwork(MemoryTransportConfig(max_buffer_size=8))
    listener = await network.listen("memory://bp")
    client = await network.dial("memory://bp")
    server = await listener.accept()
    with anyio.move_on_after(0.2) as scope:
        await client.send(b"x" * 9)
    assert scope.cancelled_caught  # the 9th byte found no room
    assert await server.receive(100) == b"x" * 8


async def test_concurrent_receivers_are_refused() -> None:
    network = MemoryNetwork()
    listener = await network.listen("memory://busy")
    client = await network.dial("memory://busy")
    await listener.accept()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.receive)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(anyio.BusyResourceError):
                await client.receive()
            tg.cancel_scope.cancel()


async def test_names_are_per_network_and_freed_on_close() -> None:
    first, second = MemoryNetwork(), MemoryNetwork()
    listener = await first.listen("memory://same")
    await (await second.listen("memory://same")).aclose()  # no clash across networks
    with pytest.raises(ListenError):
        await first.listen("memory://same")
    with pytest.raises(DialError):
        await second.dial("memory://same")
    await listener.aclose()
    with pytest.raises(DialError):
        await first.dial("memory://same")
    again = await first.listen("memory://same")
    await again.aclose()


async def test_listener_close_refuses_pending_and_wakes_accept() -> None:
    network = MemoryNetwork()
    listener = await network.listen("memory://p")
    pending = await network.dial("memory://p")
    await listener.aclose()
    with pytest.raises(anyio.EndOfStream):
        await pending.receive()
    with pytest.raises(anyio.ClosedResourceError):
        await listener.accept()

    other = await network.listen("memory://q")
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def accept() -> None:
                with pytest.raises(anyio.ClosedResourceError):
                    await other.accept()

            tg.start_soon(accept)
            await anyio.wait_all_tasks_blocked()
            await other.aclose()


async def test_backlog_is_bounded() -> None:
    network = MemoryNetwork(MemoryTransportConfig(max_backlog=2))
    listener = await network.listen("memory://b")
    await network.dial("memory://b")
    await network.dial("memory://b")
    with pytest.raises(DialError, match="backlog"):
        await network.dial("memory://b")
    await listener.accept()
    await network.dial("memory://b")


async def test_receive_needs_a_positive_max_bytes() -> None:
    network = MemoryNetwork()
    listener = await network.listen("memory://m")
    client = await network.dial("memory://m")
    with pytest.raises(ValueError):
        await client.receive(0)
    await listener.aclose()


async def test_wrong_scheme() -> None:
    with pytest.raises(InvalidAddressError):
        await MemoryNetwork().listen("tcp://127.0.0.1:0")


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        MemoryTransportConfig(max_buffer_size=0)
    with pytest.raises(ValueError):
        MemoryTransportConfig(max_backlog=0)

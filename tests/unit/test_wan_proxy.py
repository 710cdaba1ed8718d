"""The WAN shaping proxy (benchmarks/wan_proxy.py): byte-exact forwarding both ways, the
configured delay, an approximate bandwidth cap, EOF propagation and abort on error."""

from __future__ import annotations

import importlib.util
import os
import socket
import struct
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketStream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from types import ModuleType

pytestmark = [pytest.mark.anyio, pytest.mark.network]

DELAY = 0.02  # one way, seconds


def _load_proxy() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "wan_proxy.py"
    spec = importlib.util.spec_from_file_location("wan_proxy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("wan_proxy", module)
    spec.loader.exec_module(module)
    return module


wan_proxy = _load_proxy()
WanProxy = wan_proxy.WanProxy


@asynccontextmanager
async def proxied(
    **kwargs: float | None,
) -> AsyncIterator[tuple[SocketStream, SocketStream, object]]:
    """(client, server, proxy): client connects through a WanProxy to server."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with listener:
        port = listener.extra(SocketAttribute.local_port)
        async with WanProxy("127.0.0.1", port, **kwargs) as proxy:
            client = await anyio.connect_tcp("127.0.0.1", proxy.port)
            with anyio.fail_after(5):
                server = await listener.listeners[0].accept()
            async with client, server:
                yield client, server, proxy


async def receive_exactly(stream: SocketStream, n: int) -> bytes:
    chunks = []
    while n:
        chunk = await stream.receive(n)
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


async def test_forwards_byte_exact_both_ways() -> None:
    up = os.urandom(3 * 1024 * 1024 + 17)
    down = os.urandom(2 * 1024 * 1024 + 5)
    async with proxied(one_way_delay=DELAY) as (client, server, _):
        got: dict[str, bytes] = {}

        async def pump(src: SocketStream, dst: SocketStream, data: bytes, key: str) -> None:
            async with anyio.create_task_group() as tg:

                async def send() -> None:
                    for i in range(0, len(data), 100_000):
                        await src.send(data[i : i + 100_000])

                tg.start_soon(send)
                got[key] = await receive_exactly(dst, len(data))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(pump, client, server, up, "up")
                tg.start_soon(pump, server, client, down, "down")
    assert got["up"] == up
    assert got["down"] == down


async def test_round_trip_is_twice_the_delay() -> None:
    async with proxied(one_way_delay=DELAY) as (client, server, _):

        async def echo() -> None:
            while True:
                await server.send(await server.receive())

        async with anyio.create_task_group() as tg:
            tg.start_soon(echo)
            rtts = []
            with anyio.fail_after(10):
                for i in range(5):
                    start = anyio.current_time()
                    await client.send(b"%d" % i)
                    assert await client.receive() == b"%d" % i
                    rtts.append(anyio.current_time() - start)
            tg.cancel_scope.cancel()
    # every sample pays both delays; the median stays well under a generous margin
    assert min(rtts) >= 2 * DELAY
    assert sorted(rtts)[2] < 2 * DELAY + 0.05


async def test_caps_bandwidth_approximately() -> None:
    bandwidth = 4_000_000.0  # bytes per second
    total = 1_000_000
    async with proxied(one_way_delay=0.0, bandwidth=bandwidth) as (client, server, _):

        async def send() -> None:
            await client.send(os.urandom(total))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(send)
                await receive_exactly(server, 1)
                start = anyio.current_time()
                await receive_exactly(server, total - 1)
                elapsed = anyio.current_time() - start
    rate = (total - 1) / elapsed
    # the cap is a ceiling (pacing) and is not far above what is achieved
    assert rate <= bandwidth * 1.15
    assert rate >= bandwidth * 0.5


async def test_unshaped_direction_is_not_capped_by_delay() -> None:
    # with only a delay the proxy streams many MB/s (it is never the bottleneck)
    total = 16 * 1024 * 1024
    async with proxied(one_way_delay=DELAY) as (client, server, proxy):
        payload = os.urandom(256 * 1024)

        async def send() -> None:
            for _ in range(total // len(payload)):
                await client.send(payload)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                start = anyio.current_time()
                tg.start_soon(send)
                await receive_exactly(server, total)
                elapsed = anyio.current_time() - start
    assert elapsed >= DELAY
    assert total / elapsed > 20e6
    assert proxy.bytes_up == total


async def test_eof_propagates_after_the_data_and_half_close_keeps_the_other_way() -> None:
    async with proxied(one_way_delay=DELAY) as (client, server, _):
        with anyio.fail_after(10):
            await client.send(b"last words")
            await client.send_eof()
            assert await receive_exactly(server, 10) == b"last words"
            with pytest.raises(anyio.EndOfStream):
                await server.receive()
            # the other direction still works after the half-close
            await server.send(b"reply")
            assert await receive_exactly(client, 5) == b"reply"
            await server.send_eof()
            with pytest.raises(anyio.EndOfStream):
                await client.receive()


async def test_reset_by_one_side_aborts_the_other() -> None:
    async with proxied(one_way_delay=DELAY) as (client, server, _):
        with anyio.fail_after(10):
            await client.send(b"x")
            assert await receive_exactly(server, 1) == b"x"
            sock = server.extra(SocketAttribute.raw_socket)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await server.aclose()
            with pytest.raises(anyio.BrokenResourceError):
                await client.receive()


async def test_unreachable_target_closes_the_client() -> None:
    # a port that was just free: connecting to it is refused
    probe = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = probe.extra(SocketAttribute.local_port)
    await probe.aclose()
    async with WanProxy("127.0.0.1", port, one_way_delay=DELAY) as proxy:
        client = await anyio.connect_tcp("127.0.0.1", proxy.port)
        async with client:
            with anyio.fail_after(5), pytest.raises(
                (anyio.BrokenResourceError, anyio.EndOfStream)
            ):
                await client.receive()
        assert proxy.connections == 1


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="one_way_delay"):
        WanProxy("127.0.0.1", 1, one_way_delay=-1)
    with pytest.raises(ValueError, match="bandwidth"):
        WanProxy("127.0.0.1", 1, bandwidth=0)
    capped = WanProxy("127.0.0.1", 1, one_way_delay=0.05, bandwidth=1e6)
    # bounded memory: the bytes on the wire plus a short bottleneck queue
    assert capped.max_buffered == int(1e6 * (0.05 + 0.05))
    assert capped.read_size <= 16 * 1024

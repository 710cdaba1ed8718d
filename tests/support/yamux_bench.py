"""Quick Yamux-over-plaintext-TCP loopback throughput check (not a test, not the benchmark).

Usage: ``python tests/support/yamux_bench.py [asyncio|trio] [MiB] [streams]``. Both ends run
in one event loop; one or more streams send MiB each, the receiver reads to EOF and
acknowledges with one byte; the figure is bytes over the sender's time to that ack.
"""

from __future__ import annotations

import sys
import time

import anyio
from anyio.abc import SocketAttribute
from plait.muxer import MuxedConnection, YamuxConfig


async def tcp_pair() -> tuple[anyio.abc.SocketStream, anyio.abc.SocketStream]:
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    listener = multi.listeners[0]
    port = listener.extra(SocketAttribute.local_port)
    client = await anyio.connect_tcp("127.0.0.1", port)
    server = await listener.accept()
    await multi.aclose()
    return client, server


async def run(total_mib: int, streams: int, config: YamuxConfig) -> float:
    client_sock, server_sock = await tcp_pair()
    chunk = b"x" * (256 * 1024)
    per_stream = total_mib * 1024 * 1024 // streams

    async def serve_one(stream) -> None:  # type: ignore[no-untyped-def]
        got = 0
        try:
            while True:
                got += len(await stream.receive(262144))
        except anyio.EndOfStream:
            pass
        assert got == per_stream
        await stream.send(b"!")
        await stream.aclose()

    async def send_one(mux: MuxedConnection) -> None:
        s = await mux.open_stream()
        sent = 0
        while sent < per_stream:
            await s.send(chunk)
            sent += len(chunk)
        await s.send_eof()
        assert await s.receive() == b"!"
        await s.aclose()

    async with MuxedConnection(client_sock, is_client=True, config=config) as c, \
            MuxedConnection(server_sock, is_client=False, config=config) as srv:
        async with anyio.create_task_group() as tg:
            async def acceptor() -> None:
                async with anyio.create_task_group() as inner:
                    for _ in range(streams):
                        inner.start_soon(serve_one, await srv.accept_stream())
            tg.start_soon(acceptor)
            start = time.perf_counter()
            async with anyio.create_task_group() as senders:
                for _ in range(streams):
                    senders.start_soon(send_one, c)
            elapsed = time.perf_counter() - start
    return total_mib * 1024 * 1024 / elapsed / 1e6


async def run_rate(count: int, config: YamuxConfig) -> float:
    """Sequential stream open + 1-byte echo + close; return streams per second."""
    client_sock, server_sock = await tcp_pair()

    async def echo(stream) -> None:  # type: ignore[no-untyped-def]
        data = await stream.receive()
        await stream.send(data)
        await stream.aclose()

    async with MuxedConnection(client_sock, is_client=True, config=config) as c, \
            MuxedConnection(server_sock, is_client=False, config=config) as srv:
        async with anyio.create_task_group() as tg:
            async def acceptor() -> None:
                while True:
                    tg.start_soon(echo, await srv.accept_stream())
            tg.start_soon(acceptor)
            start = time.perf_counter()
            for _ in range(count):
                s = await c.open_stream()
                await s.send(b"x")
                assert await s.receive() == b"x"
                await s.aclose()
            elapsed = time.perf_counter() - start
            tg.cancel_scope.cancel()
    return count / elapsed


def main() -> None:
    backend = sys.argv[1] if len(sys.argv) > 1 else "asyncio"
    mib = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    streams = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    config = YamuxConfig()
    if streams == 0:
        for _ in range(3):
            rate = anyio.run(run_rate, mib, config, backend=backend)
            print(f"{backend} open+echo+close: {rate:.0f} streams/s")
        return
    for _ in range(3):
        rate = anyio.run(run, mib, streams, config, backend=backend)
        print(f"{backend} {streams} stream(s) x {mib // streams} MiB: {rate:.0f} MB/s")


if __name__ == "__main__":
    main()

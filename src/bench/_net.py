"""Connected pairs on 127.0.0.1 and the transfer loops the measurements share.

Every pair is an async context manager entered and left in the caller's task, so its task
groups nest properly on every backend (trio requires it).
"""

from __future__ import annotations

import os
import time
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, NamedTuple, cast

import anyio
from anyio.abc import SocketAttribute

from ..muxer import MuxedConnection, YamuxConfig
from ..noise import NoiseConfig, NoiseStream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import ByteStream, SocketListener, SocketStream

__all__ = (
    "HOST",
    "RECEIVE_SIZE",
    "MuxPair",
    "bulk_transfer",
    "mux_pair",
    "noise_pair",
    "receive_exactly",
    "tcp_pair",
)

HOST = "127.0.0.1"
RECEIVE_SIZE = 262144
"""Bytes asked per receive by every benchmark reader (performance.md §4 rule 4)."""


@asynccontextmanager
async def tcp_pair() -> AsyncIterator[tuple[SocketStream, SocketStream]]:
    """A connected (client, server) pair of anyio TCP streams; both closed on exit."""
    listener = await anyio.create_tcp_listener(local_host=HOST, local_port=0)
    async with listener:
        port = listener.extra(SocketAttribute.local_port)
        client = await anyio.connect_tcp(HOST, port)
        server = await cast("SocketListener", listener.listeners[0]).accept()
    async with client, server:
        yield client, server


@asynccontextmanager
async def noise_pair(
    i_config: NoiseConfig | None = None, r_config: NoiseConfig | None = None
) -> AsyncIterator[tuple[NoiseStream, NoiseStream]]:
    """(initiator, responder) NoiseStreams over a fresh TCP pair, handshake done (fresh
    static keys unless the configs say otherwise)."""
    async with tcp_pair() as (client, server):
        secured: dict[bool, NoiseStream] = {}

        async def wrap(stream: ByteStream, initiator: bool) -> None:
            config = i_config if initiator else r_config
            secured[initiator] = await NoiseStream.wrap(stream, config, initiator=initiator)

        async with anyio.create_task_group() as tg:
            tg.start_soon(wrap, server, False)
            await wrap(client, True)
        async with secured[True], secured[False]:
            yield secured[True], secured[False]


class MuxPair(NamedTuple):
    client: MuxedConnection
    """The dialer's Yamux session (odd stream ids)."""
    server: MuxedConnection
    """The listener's Yamux session."""
    client_key: bytes
    """The dialer's authenticated static key (32 zero bytes over plaintext TCP)."""


@asynccontextmanager
async def mux_pair(secure: bool, config: YamuxConfig | None = None) -> AsyncIterator[MuxPair]:
    """Entered Yamux sessions over TCP, or over Noise over TCP when ``secure``.

    Both sessions are entered with ``async with`` (through an exit stack), never with a bare
    ``__aenter__``/``aclose``: a session owns a task group that must be left in the task
    that entered it.
    """
    async with AsyncExitStack() as stack:
        a: ByteStream
        b: ByteStream
        if secure:
            na, nb = await stack.enter_async_context(noise_pair())
            a, b, key = na, nb, nb.remote_static_key
        else:
            a, b = await stack.enter_async_context(tcp_pair())
            key = bytes(32)
        client = await stack.enter_async_context(MuxedConnection(a, is_client=True, config=config))
        server = await stack.enter_async_context(
            MuxedConnection(b, is_client=False, config=config)
        )
        yield MuxPair(client, server, key)


async def receive_exactly(stream: ByteStream, size: int) -> bytes:
    """Read exactly ``size`` bytes (one receive in the common case)."""
    data = await stream.receive(size)
    if len(data) == size:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = await stream.receive(size - got)
        parts.append(more)
        got += len(more)
    return b"".join(parts)


async def bulk_transfer(sender: ByteStream, receiver: ByteStream, total: int, write: int) -> float:
    """MB/s (1e6 bytes/s) from the first send until the receiver acknowledges the last byte.

    The receiver reads in :data:`RECEIVE_SIZE` pieces and answers one byte once it has
    ``total`` bytes; the clock runs at the sender (performance.md §5).
    """
    payload = os.urandom(write)

    async def receive_all() -> None:
        got = 0
        while got < total:
            got += len(await receiver.receive(RECEIVE_SIZE))
        if got != total:
            raise RuntimeError(f"received {got} bytes, expected {total}")
        await receiver.send(b"k")

    async with anyio.create_task_group() as tg:
        tg.start_soon(receive_all)
        start = time.perf_counter()
        sent = 0
        while sent < total:
            n = min(write, total - sent)
            await sender.send(payload if n == write else payload[:n])
            sent += n
        if await sender.receive(1) != b"k":
            raise RuntimeError("bad acknowledgement")
        elapsed = time.perf_counter() - start
    return total / elapsed / 1e6

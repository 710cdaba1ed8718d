"""Real TCP on 127.0.0.1 for adapter tests."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from anyio.abc import ByteStream, SocketAttribute, SocketStream
from plait.noise import NoiseConfig, NoiseStream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@asynccontextmanager
async def tcp_pair() -> AsyncIterator[tuple[SocketStream, SocketStream]]:
    """A connected (client, server) pair of TCP streams on 127.0.0.1; both closed on exit."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with listener:
        port = listener.extra(SocketAttribute.local_port)
        client = await anyio.connect_tcp("127.0.0.1", port)
        server = await listener.listeners[0].accept()
    async with client, server:
        yield client, server


@asynccontextmanager
async def noise_pair(
    i_config: NoiseConfig | None = None, r_config: NoiseConfig | None = None
) -> AsyncIterator[tuple[NoiseStream, NoiseStream]]:
    """A (initiator, responder) pair of NoiseStreams over :func:`tcp_pair`."""
    async with tcp_pair() as (client, server):
        result: dict[str, NoiseStream] = {}

        async def wrap(name: str, stream: ByteStream, initiator: bool, cfg: NoiseConfig | None) -> None:
            result[name] = await NoiseStream.wrap(stream, cfg, initiator=initiator)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(wrap, "i", client, True, i_config)
                tg.start_soon(wrap, "r", server, False, r_config)
        yield result["i"], result["r"]


async def receive_exactly(stream: ByteStream, size: int) -> bytes:
    """Exactly ``size`` bytes from ``stream``."""
    buf = bytearray()
    while len(buf) < size:
        buf += await stream.receive(size - len(buf))
    return bytes(buf)

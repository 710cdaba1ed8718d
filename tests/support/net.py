"""Real TCP on 127.0.0.1 for adapter tests."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from anyio.abc import SocketAttribute, SocketStream

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

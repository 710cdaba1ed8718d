"""anyio adapter for the identity exchange (wire.md §1.4): write ours, then read theirs.

Runs once per connection directly on the Noise stream, before Yamux. As in tari, our frame
is written (and flushed) first, then the peer's frame is read under
``IdentityConfig.timeout`` (10 s). Reads ask for exactly the bytes the frame still needs, so
the Yamux bytes a peer may send right behind its frame stay in the stream for the muxer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from ._identity import IdentityConfig, IdentityFrameReader, PeerIdentity, encode_identity_frame
from .errors import IdentityTimeoutError

if TYPE_CHECKING:
    from anyio.abc import ByteStream

__all__ = ("exchange_identity",)


async def exchange_identity(
    stream: ByteStream, local: PeerIdentity, *, config: IdentityConfig | None = None
) -> PeerIdentity:
    """Send ``local`` and return the peer's validated identity.

    :param stream: the authenticated (Noise) stream.
    :param local: what we advertise.
    :param config: limits, our version and the read timeout.
    :raises ValueError: if our own message exceeds the size limit.
    :raises TransportProtocolViolation: a subclass with its ``ban`` tier, if the peer's frame
        is refused (see :class:`~plait.transport.IdentityFrameReader`).
    :raises IdentityTimeoutError: if the peer's frame did not arrive within the timeout.
    """
    config = config if config is not None else IdentityConfig()
    await stream.send(encode_identity_frame(local, config=config))
    reader = IdentityFrameReader(config)
    with anyio.move_on_after(config.timeout):
        while True:
            try:
                data = await stream.receive(reader.next_read_size)
            except anyio.EndOfStream:
                data = b""
            identity = reader.receive_data(data)
            if identity is not None:
                if reader.trailing_data:
                    raise RuntimeError("the stream returned more bytes than were asked for")
                return identity
    raise IdentityTimeoutError(f"no identity frame from the peer within {config.timeout} s")

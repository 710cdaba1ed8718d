"""Events produced by the sans-IO :class:`~plait.noise.connection.NoiseConnection`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias, final

__all__ = ("HandshakeCompleted", "NoiseEvent", "PlaintextReceived")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeCompleted:
    """The handshake finished; transport messages may flow."""

    remote_static_key: bytes
    """The peer's static public key, authenticated by the handshake."""
    handshake_hash: bytes
    """``h`` after the last handshake message, for channel binding."""


@final
@dataclass(frozen=True, slots=True)
class PlaintextReceived:
    """Decrypted application bytes of one transport message."""

    data: bytes
    """The plaintext (never empty)."""


NoiseEvent: TypeAlias = HandshakeCompleted | PlaintextReceived

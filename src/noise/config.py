"""Configuration of the Noise layer."""

from __future__ import annotations

from dataclasses import dataclass, field

from .keys import StaticKeypair

__all__ = (
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_PROLOGUE",
    "DEFAULT_PROTOCOL_NAME",
    "MAX_MESSAGE_SIZE",
    "MAX_PLAINTEXT_SIZE",
    "NoiseConfig",
)

DEFAULT_PROTOCOL_NAME = "Noise_XX_25519_ChaChaPoly_BLAKE2b"  # tari comms/core/src/noise/config.rs
DEFAULT_PROLOGUE = b"com.tari.comms.noise.prologue"  # tari comms/core/src/noise/config.rs
DEFAULT_HANDSHAKE_TIMEOUT = 10.0  # overall deadline; tari has only a 6 s per-read timeout
MAX_MESSAGE_SIZE = 65535  # Noise rev. 34 §3; tari MAX_PAYLOAD_LENGTH
MAX_PLAINTEXT_SIZE = MAX_MESSAGE_SIZE - 16  # 65519; tari MAX_WRITE_BUFFER_LENGTH


@dataclass(frozen=True, slots=True, kw_only=True)
class NoiseConfig:
    """How a :class:`~plait.noise.NoiseStream` secures a connection."""

    static_key: StaticKeypair = field(default_factory=StaticKeypair.generate)
    """The local static key pair; its public half is this node's identity."""
    prologue: bytes = DEFAULT_PROLOGUE
    """Bytes both sides must agree on; a mismatch fails the handshake at message 2."""
    protocol_name: str = DEFAULT_PROTOCOL_NAME
    """The Noise protocol name. The stream layer supports the XX pattern only."""
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    """Seconds for the whole handshake (not per read), so a dripping peer is cut off."""
    max_plaintext_size: int = MAX_PLAINTEXT_SIZE
    """Largest plaintext per transport message, 1..65519 bytes (the spec's maximum)."""
    receive_size: int = 262144
    """Bytes asked of the transport per receive; large reads parse many messages at once."""
    rekey_interval: int | None = None
    """Rekey (Noise rev. 34 §11.3, ``REKEY()``; the nonce keeps counting) each direction's
    cipher after every this many transport messages in that direction. Both sides must use
    the same value: tari and most Noise peers never rekey, so the default ``None`` does not
    either. A key then protects at most this many messages."""

    def __post_init__(self) -> None:
        if not 0 < self.handshake_timeout:
            raise ValueError("handshake_timeout must be positive")
        if not 0 < self.max_plaintext_size <= MAX_PLAINTEXT_SIZE:
            raise ValueError(f"max_plaintext_size must be within 1..{MAX_PLAINTEXT_SIZE}")
        if self.receive_size < 2:
            raise ValueError("receive_size must be at least 2")
        if self.rekey_interval is not None and self.rekey_interval < 1:
            raise ValueError("rekey_interval must be at least 1 or None")
        if "_XX_" not in self.protocol_name:
            raise ValueError("the Noise stream layer implements the XX pattern only")

"""The wire-mode byte: the one unframed byte a dialer sends first (wire.md §1.2).

Straight after the TCP (or memory) connection opens, the dialer writes one raw byte: its
*network byte*. The listener reads exactly one byte and

- continues with Noise when it equals its own network byte;
- switches to the liveness line-echo mode when it is :data:`LIVENESS_BYTE` (0xA7);
- otherwise drops the connection without sending anything (:class:`WrongNetworkError`).

tari's network bytes are listed in :class:`Network`. plait's default network byte is
:data:`DEFAULT_NETWORK_BYTE` = **0xF0**: plait's default Noise suite (X25519) cannot
interoperate with tari's (Ristretto255 DH, wire.md top section), so a distinct byte makes a
tari node and a plait node that meet fail at the first byte, with a clear wrong-network
error on the listener, instead of at the first AEAD check of the handshake. 0xF0 (240) is
the first value above every range tari reserves (0..240, plus the legacy values of
:class:`Network`). A node that runs a tari-compatible suite sets the tari network's byte.
"""

from __future__ import annotations

import enum

from .errors import WrongNetworkError

__all__ = (
    "DEFAULT_NETWORK_BYTE",
    "LIVENESS_BYTE",
    "LIVENESS_MAX_LINE_LENGTH",
    "Network",
    "WireMode",
    "classify_wire_byte",
    "encode_wire_byte",
    "validate_network_byte",
)

LIVENESS_BYTE = 0xA7  # connection_manager/wire_mode.rs; never a network byte
LIVENESS_MAX_LINE_LENGTH = 50  # self_liveness.rs: the liveness echo's maximum line, bytes
DEFAULT_NETWORK_BYTE = 0xF0  # plait's own: above tari's reserved ranges (module docstring)


class Network(enum.IntEnum):
    """tari's networks, valued by their wire bytes (``network.rs`` ``as_wire_byte``)."""

    MAINNET = 0x00
    STAGENET = 0x01
    NEXTNET = 0x50
    LOCALNET = 0x10
    IGOR = 0x24
    ESMERALDA = 0xC9


class WireMode(enum.Enum):
    """What an inbound connection's first byte asks for."""

    NETWORK = "network"
    """Our network byte: continue with the Noise handshake."""
    LIVENESS = "liveness"
    """0xA7: the liveness line-echo mode (wire.md §1.2.2)."""


def validate_network_byte(network_byte: int) -> int:
    """Return ``network_byte`` if it is usable as a network byte.

    :raises ValueError: if it is outside 0..255 or is the liveness byte 0xA7.
    """
    if not 0 <= network_byte <= 0xFF:
        raise ValueError(f"a network byte is one byte, got {network_byte!r}")
    if network_byte == LIVENESS_BYTE:
        raise ValueError("0xA7 is reserved for liveness and is never a network byte")
    return network_byte


def encode_wire_byte(network_byte: int) -> bytes:
    """The single byte a dialer writes first."""
    return bytes((validate_network_byte(network_byte),))


def classify_wire_byte(received: int, *, network_byte: int) -> WireMode:
    """Decide what an inbound connection whose first byte is ``received`` gets.

    Whether a liveness connection is then *admitted* (self-check running, or a free permit and
    an allow-listed address) is the listener's decision, not this function's.

    :raises WrongNetworkError: if ``received`` is neither ``network_byte`` nor 0xA7.
    """
    if received == network_byte:
        return WireMode.NETWORK
    if received == LIVENESS_BYTE:
        return WireMode.LIVENESS
    raise WrongNetworkError(received, network_byte)

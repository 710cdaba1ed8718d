"""Errors of the Noise layer.

Every Noise failure, the handshake deadline included, is a :class:`NoiseError`. Failures
caused by the remote peer (malformed or truncated messages, invalid keys, MAC failures) are
:class:`NoiseProtocolViolation`; they are fatal for the connection.
"""

from __future__ import annotations

from ..errors import PlaitError, ProtocolViolation

__all__ = (
    "HandshakeTimeoutError",
    "NoiseError",
    "NoiseProtocolViolation",
    "NoiseStateError",
    "NonceExhaustedError",
)


class NoiseError(PlaitError):
    """Base class of every Noise-layer error."""


class NoiseProtocolViolation(NoiseError, ProtocolViolation):
    """The peer sent a malformed, truncated or unauthentic Noise message, or an invalid key."""


class HandshakeTimeoutError(NoiseError, TimeoutError):
    """The handshake did not complete within its overall deadline."""


class NonceExhaustedError(NoiseError):
    """A cipher state's counter reached 2**64 - 1; the connection must end (Noise §5.1)."""


class NoiseStateError(NoiseError, RuntimeError):
    """Local misuse: an operation out of turn, before Split, or on a failed state."""

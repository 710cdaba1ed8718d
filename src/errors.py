"""The root of plait's error hierarchy.

Two axes, combined by multiple inheritance: *which layer* raised the error (one
subclass branch per layer: ``NoiseError``, ``MuxerError``, ...) and *who is to blame*.
:class:`ProtocolViolation` marks errors caused by the remote peer breaking the protocol;
everything else is local (timeouts, closed resources, limits, misuse).
"""

from __future__ import annotations

import enum

__all__ = ("BanTier", "PlaitError", "ProtocolViolation")


class PlaitError(Exception):
    """Base class of every error plait raises on purpose."""


class ProtocolViolation(PlaitError):
    """The remote peer broke the protocol.

    :param message: a human-readable description of what was wrong.
    :param seen: the offending bytes or value, when that helps debugging (never secrets).
    """

    def __init__(self, message: str, *, seen: object = None) -> None:
        super().__init__(message)
        self.seen = seen


class BanTier(enum.Enum):
    """How long tari bans a peer for an offence (``bans.rs``; wire.md §1.4.5)."""

    NONE = None
    """No ban: local or I/O trouble, or data that is odd but not provably malicious."""
    SHORT = 120.0
    """2 minutes: timeouts, unexpected close, unsupported version."""
    LONG = 7200.0
    """2 hours: provable protocol abuse (oversize or undecodable messages, bad flags, limits)."""

    @property
    def duration(self) -> float | None:
        """The ban length in seconds, or ``None`` for no ban."""
        value: float | None = self.value
        return value

"""The root of plait's error hierarchy.

Two axes, combined by multiple inheritance: *which layer* raised the error (one
subclass branch per layer: ``NoiseError``, ``MuxerError``, ...) and *who is to blame*.
:class:`ProtocolViolation` marks errors caused by the remote peer breaking the protocol;
everything else is local (timeouts, closed resources, limits, misuse).
"""

from __future__ import annotations

__all__ = ("PlaitError", "ProtocolViolation")


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

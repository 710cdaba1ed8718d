"""Errors of the Yamux layer (style.md §7).

Two axes: *local* conditions (:class:`StreamStateError`, :class:`StreamLimitError`,
:class:`KeepaliveTimeoutError`) versus *the remote broke the protocol*
(:class:`MuxerProtocolViolation` and its subclasses). Every violation class names the
GO_AWAY code the core sends before raising it as the class attribute ``error_code``.
Stream-level conditions seen by applications use anyio's own exceptions; see
:mod:`plait.muxer.stream`.
"""

from __future__ import annotations

from typing import ClassVar

from ..errors import PlaitError, ProtocolViolation
from ._frames import GoAwayCode

__all__ = (
    "FlowControlViolation",
    "GoAwayError",
    "KeepaliveTimeoutError",
    "MuxerError",
    "MuxerFloodError",
    "MuxerProtocolViolation",
    "StreamLimitError",
    "StreamStateError",
    "UnknownStreamFloodError",
)


class MuxerError(PlaitError):
    """Base class of every Yamux error."""


class MuxerProtocolViolation(MuxerError, ProtocolViolation):
    """The peer sent something Yamux forbids; the connection ends with GO_AWAY(1).

    Raised for: version ≠ 0, an unknown frame type, a DATA body over the frame cap, a SYN
    with the wrong parity, on id 0 or for a live id, a PING or GO_AWAY on a stream id,
    a pong that was never requested.
    """

    error_code: ClassVar[GoAwayCode] = GoAwayCode.PROTOCOL_ERROR


class FlowControlViolation(MuxerProtocolViolation):
    """The peer overran a receive window or granted credit beyond 2³²−1 (GO_AWAY(1))."""


class MuxerFloodError(MuxerProtocolViolation):
    """The peer exceeded a rate budget (received RSTs, resets before accept, empty frames).

    Like HTTP/2's ENHANCE_YOUR_CALM (hardening.md §1.5); answered with GO_AWAY(2).
    """

    error_code: ClassVar[GoAwayCode] = GoAwayCode.INTERNAL_ERROR


class UnknownStreamFloodError(MuxerFloodError):
    """The peer sent frames for unknown or closed stream ids faster than
    ``YamuxConfig.unknown_frame_rate`` allows (hardening.md Y10).

    A few such frames are normal (they cross a close or reset in flight) and are ignored;
    a flood of them is a protocol error, answered with GO_AWAY(1).
    """

    error_code: ClassVar[GoAwayCode] = GoAwayCode.PROTOCOL_ERROR


class StreamStateError(MuxerError):
    """Local misuse: a command on an unknown, closed or reset stream."""


class StreamLimitError(MuxerError):
    """Local: no stream can be opened (ids exhausted, too many streams, ACK backlog full,
    or the connection is closing)."""


class KeepaliveTimeoutError(MuxerError, TimeoutError):
    """A ping stayed unanswered for longer than ``YamuxConfig.keepalive_timeout``."""


class GoAwayError(MuxerError):
    """The peer ended the connection with GO_AWAY.

    :param code: the GO_AWAY code the peer sent (:class:`GoAwayCode` or another u32).
    """

    def __init__(self, code: int) -> None:
        try:
            name = GoAwayCode(code).name
        except ValueError:
            name = hex(code)
        super().__init__(f"peer sent GO_AWAY({name})")
        self.code = code

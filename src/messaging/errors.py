"""Errors of the messaging protocol (wire.md §4; style.md §7).

Everything is a :class:`MessagingError`. Blame is in the type: a
:class:`MessagingProtocolViolation` means the remote peer broke the framing (a frame above
the maximum, an undecodable envelope); its ``ban`` class attribute says whether tari bans
for it. The other errors are local conditions met by the sending application.
"""

from __future__ import annotations

from typing import ClassVar

from ..errors import BanTier, PlaitError, ProtocolViolation

__all__ = (
    "EnvelopeDecodeError",
    "FrameTooLargeError",
    "MessageTooLargeError",
    "MessagingClosedError",
    "MessagingError",
    "MessagingProtocolViolation",
    "OutboundQueueFullError",
    "PeerUnreachableError",
    "TruncatedFrameError",
)


class MessagingError(PlaitError):
    """Base class of every messaging error."""


class MessagingProtocolViolation(MessagingError, ProtocolViolation):
    """The remote peer sent bytes that break the messaging framing."""

    ban: ClassVar[BanTier] = BanTier.LONG
    """The ban this offence earns the peer (the messaging adapter applies
    ``MessagingConfig.violation_ban_duration`` when it is not ``NONE``)."""


class FrameTooLargeError(MessagingProtocolViolation):
    """A frame header announces a body above the maximum (tari: decode ``InvalidData``, a
    ban offence, wire.md §4). Raised on the header, before the body is buffered;
    ``seen`` is the announced length."""

    ban = BanTier.LONG


class TruncatedFrameError(MessagingProtocolViolation):
    """The stream ended inside a frame. tari treats it as an I/O error: no ban."""

    ban = BanTier.NONE


class EnvelopeDecodeError(MessagingProtocolViolation):
    """Bytes that are not a valid ``EnvelopeBody`` protobuf (wire.md §4)."""

    ban = BanTier.LONG


class MessageTooLargeError(MessagingError, ValueError):
    """A message body is above ``MessagingConfig.max_message_size``; refused before it is
    queued, so nothing is sent.

    :param size: the body's size in bytes.
    :param limit: the maximum.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds the maximum of {limit}")
        self.size = size
        self.limit = limit


class OutboundQueueFullError(MessagingError):
    """The destination peer's outbound queue is full and the send was not allowed to wait.

    :param peer_id: the destination.
    """

    def __init__(self, peer_id: str) -> None:
        super().__init__(f"the outbound message queue for {peer_id[:16]} is full")
        self.peer_id = peer_id


class PeerUnreachableError(MessagingError):
    """The peer is not connected and no address of it is known, so it cannot be dialled.

    :param peer_id: the destination.
    """

    def __init__(self, peer_id: str) -> None:
        super().__init__(f"peer {peer_id[:16]} is not connected and has no known address")
        self.peer_id = peer_id


class MessagingClosedError(MessagingError):
    """The messaging service is not running (not started yet, or stopped)."""

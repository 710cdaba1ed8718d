"""Errors of per-substream protocol negotiation (wire.md §2).

Local outcomes (the peer supports none of our protocols, the peer gave up, the deadline
passed, the stream closed) are plain :class:`NegotiationError` subclasses and only drop the
substream. Frames that break the format are :class:`NegotiationProtocolViolation`; each
subclass states the ban tari applies as the class attribute ``ban`` (wire.md §2.4: an unknown
flag bit and an over-long id are ban offences, 2 h).
"""

from __future__ import annotations

from typing import ClassVar

from ..errors import BanTier, PlaitError, ProtocolViolation

__all__ = (
    "EmptyProtocolIdError",
    "InvalidFlagError",
    "NegotiationClosedError",
    "NegotiationError",
    "NegotiationProtocolViolation",
    "NegotiationTerminatedError",
    "NegotiationTimeoutError",
    "ProtocolIdTooLongError",
    "ProtocolNotSupportedError",
)


class NegotiationError(PlaitError):
    """Base class of every negotiation error."""


class ProtocolNotSupportedError(NegotiationError):
    """No protocol was agreed.

    Raised by the initiator when the peer rejected every candidate (tari
    ``ProtocolOutboundNegotiationFailed``), and by the responder when an optimistic proposal
    names an unsupported protocol (``ProtocolOptimisticNegotiationFailed``) or when the last
    permitted proposal was unsupported (``ProtocolInboundNegotiationFailed``).

    :param protocols: the protocol ids that were proposed and not agreed.
    """

    def __init__(self, message: str, *, protocols: tuple[bytes, ...] = ()) -> None:
        super().__init__(message)
        self.protocols = protocols


class NegotiationTerminatedError(NegotiationError):
    """The peer sent a frame with TERMINATE (tari ``ProtocolNegotiationTerminatedByPeer``)."""


class NegotiationClosedError(NegotiationError):
    """The stream ended before negotiation finished (an I/O condition in tari: no ban)."""


class NegotiationTimeoutError(NegotiationError, TimeoutError):
    """Negotiation did not finish within ``NegotiationConfig.timeout`` (10 s in tari)."""


class NegotiationProtocolViolation(NegotiationError, ProtocolViolation):
    """The peer sent a malformed negotiation frame."""

    ban: ClassVar[BanTier] = BanTier.LONG
    """The ban this offence earns the peer."""


class InvalidFlagError(NegotiationProtocolViolation):
    """The flags byte has a bit outside OPTIMISTIC|TERMINATE|NOT_SUPPORTED (``InvalidFlag``)."""

    ban = BanTier.LONG


class ProtocolIdTooLongError(NegotiationProtocolViolation):
    """A frame announces an id above ``NegotiationConfig.max_protocol_id_length``.

    tari's ``ProtocolIdTooLong`` ban offence (wire.md §2.4, hardening.md P2).
    """

    ban = BanTier.LONG


class EmptyProtocolIdError(NegotiationProtocolViolation):
    """A proposal or an acceptance carries an empty id.

    An empty id is meaningful only in a TERMINATE or NOT_SUPPORTED frame. tari would treat an
    empty proposal as merely unsupported, so plait refuses it without a ban.
    """

    ban = BanTier.NONE

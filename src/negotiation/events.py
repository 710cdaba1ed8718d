"""Events produced by :class:`~plait.negotiation.ProtocolNegotiator` (wire.md §2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias, final

__all__ = ("NegotiationEvent", "NegotiationEvents", "ProtocolRejected", "ProtocolSelected")


class NegotiationEvent:
    """Base class of negotiation events."""

    __slots__ = ()


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolSelected(NegotiationEvent):
    """Both sides agreed on a protocol; the substream now speaks it."""

    protocol: bytes
    """The agreed protocol id."""
    optimistic: bool
    """True when agreed optimistically: one OPTIMISTIC frame, no reply (wire.md §2.2)."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolRejected(NegotiationEvent):
    """One proposal was not agreed and negotiation goes on with the next round.

    The initiator reports the candidate the peer answered with NOT_SUPPORTED (or with a
    different id); the responder reports a proposal it does not support.
    """

    protocol: bytes
    """The rejected protocol id."""


NegotiationEvents: TypeAlias = ProtocolSelected | ProtocolRejected
"""Union of the concrete negotiation events, for exhaustive ``match``."""

"""Configuration of per-substream protocol negotiation (wire.md §2)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = (
    "DEFAULT_MAX_PROPOSALS",
    "DEFAULT_NEGOTIATION_TIMEOUT",
    "MAX_PROTOCOL_ID_LENGTH",
    "NegotiationConfig",
)

DEFAULT_NEGOTIATION_TIMEOUT = 10.0  # tari PROTOCOL_NEGOTIATION_TIMEOUT (wire.md §2.4)
DEFAULT_MAX_PROPOSALS = 5  # tari MAX_ROUNDS_ALLOWED, protocol/negotiation.rs
MAX_PROTOCOL_ID_LENGTH = 255  # the frame's length field is one byte (wire.md §2.1)


@dataclass(frozen=True, slots=True, kw_only=True)
class NegotiationConfig:
    """Limits and deadline of one negotiation."""

    timeout: float = DEFAULT_NEGOTIATION_TIMEOUT
    """Seconds the anyio adapter allows for a whole negotiation, inbound or outbound."""
    max_proposals: int = DEFAULT_MAX_PROPOSALS
    """Unsupported proposals a responder answers before it replies NOT_SUPPORTED|TERMINATE
    and gives up (the last one is answered with TERMINATE)."""
    max_protocol_id_length: int = MAX_PROTOCOL_ID_LENGTH
    """Longest protocol id accepted in a received frame, in bytes (1..255). A longer one is a
    ban offence (:class:`~plait.negotiation.ProtocolIdTooLongError`). At the default, 255, no
    frame can exceed it; set it to 50 (tari's advertised limit) to be strict."""

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"timeout must be positive, got {self.timeout!r}")
        if self.max_proposals < 1:
            raise ValueError(f"max_proposals must be at least 1, got {self.max_proposals!r}")
        if not 1 <= self.max_protocol_id_length <= MAX_PROTOCOL_ID_LENGTH:
            raise ValueError(
                f"max_protocol_id_length must be in 1..{MAX_PROTOCOL_ID_LENGTH}, "
                f"got {self.max_protocol_id_length!r}"
            )

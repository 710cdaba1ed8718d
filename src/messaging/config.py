"""Configuration of the messaging protocol (wire.md §4; style.md §9).

Every limit is a named field with its unit; defaults are module constants that say where the
number comes from. Times are float seconds, sizes bytes, rates per second.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..negotiation import normalize_protocol_id

__all__ = (
    "DEFAULT_FLOOD_BAN_DURATION",
    "DEFAULT_MAX_CONNECT_ATTEMPTS",
    "DEFAULT_MAX_KNOWN_ADDRESSES",
    "DEFAULT_MAX_KNOWN_PEERS",
    "DEFAULT_MAX_MESSAGE_RATE",
    "DEFAULT_MAX_PENDING_INBOUND",
    "DEFAULT_MAX_PENDING_INBOUND_BYTES",
    "DEFAULT_MAX_PENDING_INBOUND_PER_PEER",
    "DEFAULT_MAX_QUEUED_BYTES",
    "DEFAULT_MAX_QUEUED_MESSAGES",
    "DEFAULT_MESSAGE_BURST",
    "DEFAULT_VIOLATION_BAN_DURATION",
    "DEFAULT_WRITE_BATCH_SIZE",
    "MAX_MESSAGE_SIZE",
    "MESSAGING_PROTOCOL_ID",
    "MessagingConfig",
)

MESSAGING_PROTOCOL_ID = b"t/msg/0.1"  # tari base_layer/p2p initialization.rs MESSAGING_PROTOCOL_ID
MAX_MESSAGE_SIZE = 8 * 1024 * 1024  # tari protocol/messaging MAX_FRAME_LENGTH (8 MiB)
DEFAULT_MAX_CONNECT_ATTEMPTS = 2  # tari outbound.rs: MAX_SEND_RETRIES = 1, so two tries in all
DEFAULT_VIOLATION_BAN_DURATION = 600.0  # tari MessagingProtocolExtension: 10 min ban
DEFAULT_MAX_QUEUED_MESSAGES = 1024  # plait: tari's queue is unbounded (hardening.md §5 rule 1)
DEFAULT_MAX_QUEUED_BYTES = 32 * 1024 * 1024  # plait: four maximum-size messages per peer
DEFAULT_WRITE_BATCH_SIZE = 64 * 1024  # plait: small messages coalesced into one send
DEFAULT_MAX_PENDING_INBOUND = 1024  # plait: tari's pipeline channel holds 10 per stage
DEFAULT_MAX_PENDING_INBOUND_PER_PEER = 128  # plait: one peer cannot fill the shared queue
DEFAULT_MAX_PENDING_INBOUND_BYTES = 64 * 1024 * 1024  # plait: eight maximum-size messages
DEFAULT_MAX_MESSAGE_RATE = 10_000.0  # plait: sustained messages/s per peer before a flood
DEFAULT_MESSAGE_BURST = 20_000  # plait: messages a peer may send at once above the rate
DEFAULT_FLOOD_BAN_DURATION = 120.0  # tari's short ban tier (bans.rs), plait's choice here
DEFAULT_MAX_KNOWN_PEERS = 4096  # plait: bound on the address book
DEFAULT_MAX_KNOWN_ADDRESSES = 8  # plait: addresses kept per peer (tari's identity allows 5)


@dataclass(frozen=True, slots=True, kw_only=True)
class MessagingConfig:
    """Limits and policies of :class:`~plait.messaging.Messaging`.

    Outbound, each destination peer has one queue and one substream; inbound, each peer has at
    most one substream, whose messages wait in a shared bounded queue for the application.
    When that queue is full the peer's substream is simply not read, so Yamux flow control
    pushes back on the sender, whose queue fills in turn.

    :raises ValueError: from the constructor when a value is out of range.
    """

    protocol_id: bytes = MESSAGING_PROTOCOL_ID
    """The negotiated protocol id, supplied by the application (wire.md §4; tari uses
    ``t/msg/0.1``); 1 to 255 bytes."""
    max_message_size: int = MAX_MESSAGE_SIZE
    """Largest message body in either direction, bytes (one frame's body). A larger outbound
    body raises :class:`~plait.messaging.MessageTooLargeError` before it is queued; a larger
    inbound frame is a protocol violation (checked on its 4-byte header, before anything is
    allocated for the body)."""
    max_queued_messages: int = DEFAULT_MAX_QUEUED_MESSAGES
    """Messages waiting in one peer's outbound queue at most (the message being written is no
    longer counted)."""
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES
    """Body bytes waiting in one peer's outbound queue at most; a message always fits an
    empty queue, so this must be at least ``max_message_size``."""
    block_when_full: bool = True
    """What :meth:`~plait.messaging.Messaging.send_message` does when the peer's queue is
    full: wait for room (True) or raise :class:`~plait.messaging.OutboundQueueFullError`
    (False). A call may override it with ``block=``."""
    write_batch_size: int = DEFAULT_WRITE_BATCH_SIZE
    """Queued frames are joined into one write of up to this many bytes; a larger message is
    written on its own without copying."""
    max_connect_attempts: int = DEFAULT_MAX_CONNECT_ATTEMPTS
    """Tries at reaching a peer (dial if needed, then open the substream) before every message
    queued for it is dropped (tari: 2)."""
    max_pending_inbound: int = DEFAULT_MAX_PENDING_INBOUND
    """Received messages waiting for :meth:`~plait.messaging.Messaging.messages`, over all
    peers; when reached, no inbound substream is read."""
    max_pending_inbound_per_peer: int = DEFAULT_MAX_PENDING_INBOUND_PER_PEER
    """Received messages of one peer waiting for the application; when reached, that peer's
    substream is not read (its inbound concurrency bound)."""
    max_pending_inbound_bytes: int = DEFAULT_MAX_PENDING_INBOUND_BYTES
    """Body bytes of received messages waiting for the application, over all peers; a message
    is admitted while the total is below this, so one maximum-size message always fits."""
    max_message_rate: float = DEFAULT_MAX_MESSAGE_RATE
    """Sustained inbound messages per second one peer may send (a token bucket refilled at
    this rate); a peer above it is flooding and is disconnected."""
    message_burst: int = DEFAULT_MESSAGE_BURST
    """The token bucket's size: messages a peer may send back to back before the rate
    applies."""
    flood_ban_duration: float | None = DEFAULT_FLOOD_BAN_DURATION
    """Seconds a flooding peer is banned for; ``None`` only disconnects it."""
    violation_ban_duration: float | None = DEFAULT_VIOLATION_BAN_DURATION
    """Seconds a peer is banned for after a protocol violation (an oversize frame); ``None``
    only disconnects it."""
    max_known_peers: int = DEFAULT_MAX_KNOWN_PEERS
    """Peers in the address book at most; beyond it the least recently added is forgotten."""
    max_known_addresses: int = DEFAULT_MAX_KNOWN_ADDRESSES
    """Addresses kept per peer; beyond it the oldest is forgotten."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "protocol_id", normalize_protocol_id(self.protocol_id))
        if not 0 <= self.max_message_size <= 0xFFFFFFFF:
            raise ValueError("max_message_size must fit in a u32")
        for name in ("max_queued_messages", "write_batch_size", "max_connect_attempts",
                     "max_pending_inbound", "max_pending_inbound_per_peer",
                     "max_pending_inbound_bytes", "message_burst", "max_known_peers",
                     "max_known_addresses"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.max_queued_bytes < self.max_message_size:
            raise ValueError("max_queued_bytes must be at least max_message_size")
        if not self.max_message_rate > 0:
            raise ValueError("max_message_rate must be positive")
        for name in ("flood_ban_duration", "violation_ban_duration"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive or None, got {value!r}")

"""plait.messaging: one-way messages between peers on a negotiated substream (wire.md §4).

Sans-IO parts: :class:`MessageDecoder` and :func:`frame_header` (``u32 BE length ‖ body``
frames, 8 MiB at most, the length checked before anything is allocated for the body) and
:class:`EnvelopeBody` (tari's multi-part ``envelope.proto`` message). The anyio adapter,
:class:`Messaging`, attaches to a :class:`~plait.node.Node`: ``send_message`` queues to a
bounded per-peer queue and dials the peer when needed, ``messages()`` yields
:class:`InboundMessage` values with the sender's identity. Limits are in
:class:`MessagingConfig`, errors in :mod:`plait.messaging.errors`.
"""

from __future__ import annotations

from ._framing import HEADER_SIZE as HEADER_SIZE
from ._framing import MessageDecoder as MessageDecoder
from ._framing import frame_header as frame_header
from .config import MAX_MESSAGE_SIZE as MAX_MESSAGE_SIZE
from .config import MESSAGING_PROTOCOL_ID as MESSAGING_PROTOCOL_ID
from .config import MessagingConfig as MessagingConfig
from .envelope import EnvelopeBody as EnvelopeBody
from .errors import EnvelopeDecodeError as EnvelopeDecodeError
from .errors import FrameTooLargeError as FrameTooLargeError
from .errors import MessageTooLargeError as MessageTooLargeError
from .errors import MessagingClosedError as MessagingClosedError
from .errors import MessagingError as MessagingError
from .errors import MessagingProtocolViolation as MessagingProtocolViolation
from .errors import OutboundQueueFullError as OutboundQueueFullError
from .errors import PeerUnreachableError as PeerUnreachableError
from .errors import TruncatedFrameError as TruncatedFrameError
from .protocol import InboundMessage as InboundMessage
from .protocol import InboundMessages as InboundMessages
from .protocol import Messaging as Messaging
from .protocol import MessagingStatistics as MessagingStatistics

__all__ = (
    "HEADER_SIZE",
    "MAX_MESSAGE_SIZE",
    "MESSAGING_PROTOCOL_ID",
    "EnvelopeBody",
    "EnvelopeDecodeError",
    "FrameTooLargeError",
    "InboundMessage",
    "InboundMessages",
    "MessageDecoder",
    "MessageTooLargeError",
    "Messaging",
    "MessagingClosedError",
    "MessagingConfig",
    "MessagingError",
    "MessagingProtocolViolation",
    "MessagingStatistics",
    "OutboundQueueFullError",
    "PeerUnreachableError",
    "TruncatedFrameError",
    "frame_header",
)

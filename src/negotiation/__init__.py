"""plait.negotiation: per-substream protocol negotiation (wire.md §2).

A sans-IO core, :class:`ProtocolNegotiator`, and an anyio adapter,
:func:`negotiate_outbound` / :func:`negotiate_inbound`, usable over any anyio ByteStream.
"""

from __future__ import annotations

from .config import DEFAULT_MAX_PROPOSALS as DEFAULT_MAX_PROPOSALS
from .config import DEFAULT_NEGOTIATION_TIMEOUT as DEFAULT_NEGOTIATION_TIMEOUT
from .config import MAX_PROTOCOL_ID_LENGTH as MAX_PROTOCOL_ID_LENGTH
from .config import NegotiationConfig as NegotiationConfig
from .errors import EmptyProtocolIdError as EmptyProtocolIdError
from .errors import InvalidFlagError as InvalidFlagError
from .errors import NegotiationClosedError as NegotiationClosedError
from .errors import NegotiationError as NegotiationError
from .errors import NegotiationProtocolViolation as NegotiationProtocolViolation
from .errors import NegotiationTerminatedError as NegotiationTerminatedError
from .errors import NegotiationTimeoutError as NegotiationTimeoutError
from .errors import ProtocolIdTooLongError as ProtocolIdTooLongError
from .errors import ProtocolNotSupportedError as ProtocolNotSupportedError
from .events import NegotiationEvent as NegotiationEvent
from .events import NegotiationEvents as NegotiationEvents
from .events import ProtocolRejected as ProtocolRejected
from .events import ProtocolSelected as ProtocolSelected
from .negotiator import NegotiationFlag as NegotiationFlag
from .negotiator import NegotiationState as NegotiationState
from .negotiator import ProtocolNegotiator as ProtocolNegotiator
from .negotiator import Role as Role
from .negotiator import encode_frame as encode_frame
from .negotiator import normalize_protocol_id as normalize_protocol_id
from .select import PrefixedStream as PrefixedStream
from .select import negotiate_inbound as negotiate_inbound
from .select import negotiate_outbound as negotiate_outbound

__all__ = (
    "DEFAULT_MAX_PROPOSALS",
    "DEFAULT_NEGOTIATION_TIMEOUT",
    "MAX_PROTOCOL_ID_LENGTH",
    "EmptyProtocolIdError",
    "InvalidFlagError",
    "NegotiationClosedError",
    "NegotiationConfig",
    "NegotiationError",
    "NegotiationEvent",
    "NegotiationEvents",
    "NegotiationFlag",
    "NegotiationProtocolViolation",
    "NegotiationState",
    "NegotiationTerminatedError",
    "NegotiationTimeoutError",
    "PrefixedStream",
    "ProtocolIdTooLongError",
    "ProtocolNegotiator",
    "ProtocolNotSupportedError",
    "ProtocolRejected",
    "ProtocolSelected",
    "Role",
    "encode_frame",
    "negotiate_inbound",
    "negotiate_outbound",
    "normalize_protocol_id",
)

"""plait.muxer: Yamux stream multiplexing (yamux.md).

The sans-IO core is :class:`YamuxConnection`; :class:`MuxedConnection` runs it over any
anyio ``ByteStream`` and hands out :class:`MuxedStream` objects.
"""

from __future__ import annotations

from ._frames import Flag as Flag
from ._frames import FrameType as FrameType
from ._frames import GoAwayCode as GoAwayCode
from ._stream_state import HalfState as HalfState
from ._stream_state import StreamPhase as StreamPhase
from .config import YamuxConfig as YamuxConfig
from .connection import ConnectionState as ConnectionState
from .connection import Role as Role
from .connection import YamuxConnection as YamuxConnection
from .errors import FlowControlViolation as FlowControlViolation
from .errors import GoAwayError as GoAwayError
from .errors import KeepaliveTimeoutError as KeepaliveTimeoutError
from .errors import MuxerError as MuxerError
from .errors import MuxerFloodError as MuxerFloodError
from .errors import MuxerProtocolViolation as MuxerProtocolViolation
from .errors import StreamLimitError as StreamLimitError
from .errors import StreamStateError as StreamStateError
from .errors import UnknownStreamFloodError as UnknownStreamFloodError
from .events import ConnectionTerminated as ConnectionTerminated
from .events import GoAwayReceived as GoAwayReceived
from .events import MuxerEvent as MuxerEvent
from .events import MuxerEventType as MuxerEventType
from .events import PingAcknowledged as PingAcknowledged
from .events import StreamDataReceived as StreamDataReceived
from .events import StreamEnded as StreamEnded
from .events import StreamOpened as StreamOpened
from .events import StreamReset as StreamReset
from .events import WindowUpdated as WindowUpdated
from .session import MuxedConnection as MuxedConnection
from .session import MuxerStatistics as MuxerStatistics
from .stream import MuxedStream as MuxedStream
from .stream import MuxerAttribute as MuxerAttribute
from .stream import StreamResetError as StreamResetError

__all__ = (
    "ConnectionState",
    "ConnectionTerminated",
    "Flag",
    "FlowControlViolation",
    "FrameType",
    "GoAwayCode",
    "GoAwayError",
    "GoAwayReceived",
    "HalfState",
    "KeepaliveTimeoutError",
    "MuxedConnection",
    "MuxedStream",
    "MuxerAttribute",
    "MuxerError",
    "MuxerEvent",
    "MuxerEventType",
    "MuxerFloodError",
    "MuxerProtocolViolation",
    "MuxerStatistics",
    "PingAcknowledged",
    "Role",
    "StreamDataReceived",
    "StreamEnded",
    "StreamLimitError",
    "StreamOpened",
    "StreamPhase",
    "StreamReset",
    "StreamResetError",
    "StreamStateError",
    "UnknownStreamFloodError",
    "WindowUpdated",
    "YamuxConfig",
    "YamuxConnection",
)

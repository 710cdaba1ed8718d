"""Events emitted by the sans-IO Yamux core (style.md §6).

:meth:`YamuxConnection.receive_data` and :meth:`YamuxConnection.handle_timer` return a
list of these past-tense facts. They are frozen, slotted, keyword-only dataclasses and
must not be subclassed. Pings from the peer are answered inside the core and produce no
event. :data:`MuxerEventType` is the union adapters match exhaustively.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias, final

__all__ = (
    "ConnectionTerminated",
    "GoAwayReceived",
    "MuxerEvent",
    "MuxerEventType",
    "PingAcknowledged",
    "StreamDataReceived",
    "StreamEnded",
    "StreamOpened",
    "StreamReset",
    "WindowUpdated",
)


class MuxerEvent:
    """Base class of every muxer event."""

    __slots__ = ()


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class StreamOpened(MuxerEvent):
    """The peer opened a stream (SYN) and it was admitted to the accept backlog."""

    stream_id: int
    """Id of the new inbound stream."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class StreamDataReceived(MuxerEvent):
    """A DATA body arrived on a stream. Credit is returned only when the application
    reports it consumed the bytes (:meth:`YamuxConnection.acknowledge_received_data`)."""

    stream_id: int
    """The stream the bytes belong to."""
    data: bytes | memoryview
    """The body, never empty: usually a read-only ``memoryview`` slice of the input given
    to ``receive_data`` (zero-copy); use ``bytes(data)`` to keep an independent copy."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class StreamEnded(MuxerEvent):
    """The peer half-closed the stream (FIN): it will send no more data."""

    stream_id: int
    """The stream the peer finished writing to."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class StreamReset(MuxerEvent):
    """The stream was aborted and its state released."""

    stream_id: int
    """The reset stream."""
    by_peer: bool
    """True when the peer sent RST; False when the core reset it itself (the peer sent
    data after its FIN, hardening.md Y19)."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class WindowUpdated(MuxerEvent):
    """The peer granted more send credit on a stream."""

    stream_id: int
    """The stream whose send window grew."""
    delta: int
    """Bytes of credit added (> 0)."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class PingAcknowledged(MuxerEvent):
    """One of our pings was answered."""

    opaque: int
    """The value our ping carried."""
    rtt: float
    """Seconds between sending the ping and receiving the pong."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class GoAwayReceived(MuxerEvent):
    """The peer sent GO_AWAY; a :class:`ConnectionTerminated` follows at once."""

    code: int
    """The code the peer sent (see :class:`~plait.muxer.GoAwayCode`)."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionTerminated(MuxerEvent):
    """The connection reached its terminal state; every stream is gone."""

    code: int
    """The GO_AWAY code that ended it (sent or received)."""
    by_peer: bool
    """True when the peer ended it (GO_AWAY received or EOF)."""
    error: Exception | None
    """Why, when it was not a clean close: :class:`~plait.muxer.GoAwayError`,
    :class:`~plait.muxer.KeepaliveTimeoutError`, or ``None`` for a clean EOF."""


MuxerEventType: TypeAlias = (
    StreamOpened
    | StreamDataReceived
    | StreamEnded
    | StreamReset
    | WindowUpdated
    | PingAcknowledged
    | GoAwayReceived
    | ConnectionTerminated
)

"""The sans-IO Yamux connection: bytes in, events and bytes out, time as an argument.

Theory of operation (yamux.md §1, §2, §7; wire.md §1.5; hardening.md §3.4; style.md §4):

**Input.** :meth:`YamuxConnection.receive_data` parses every complete frame of its input
in place (``HEADER.unpack_from`` on a ``memoryview`` of the caller's ``bytes``); a DATA
body is delivered as a zero-copy ``memoryview`` slice, so the only copy a received payload
byte takes is when the application reads it. A header split across calls is kept in a
small ``bytearray``; a DATA body split across calls is kept as a list of views and joined
once when complete. A body is checked against the stream window, and capped at
``max_frame_body`` unless a readable stream's window covers it (js-libp2p-yamux sends
window-sized frames), as soon as its header is complete, before any of it is held. ``b""`` means
the transport reached EOF.

**Output.** Two lanes, drained by :meth:`data_to_send`:

* the *control lane* (a ``bytearray``): pongs, window updates, ACKs of accepted streams,
  RSTs and a GO_AWAY caused by a violation. It always heads the next batch, so control
  frames never wait behind bulk data (yamux.md §7, performance.md §4 rule 1);
* the *data lane* (a deque of ``(stream_id, header, body)``): our SYNs, DATA and FINs, in
  order, so a stream's SYN precedes its data and its FIN follows it. DATA bodies are
  memoryview slices of the caller's immutable ``bytes`` (no copy until the final join).
  ``data_to_send(max_bytes)`` stops at the first frame boundary past ``max_bytes``.

**Streams.** Client ids are odd from 1, server ids even from 2, step 2, never reused.
Opening is eager (WINDOW_UPDATE+SYN, delta = extra credit beyond 256 KiB), accepting is
explicit (:meth:`accept_stream` owes the ACK: the stream's next queued frame carries the
ACK flag, else :meth:`data_to_send` emits a WINDOW_UPDATE+ACK; with extra credit the
WINDOW_UPDATE+ACK is queued at once). The FIN is never folded into a DATA frame:
hashicorp/yamux and js-libp2p-yamux act on the FIN before reading the body and lose the
last bytes (seen in the interop tests). Per-stream state lives in
``_stream_state.py`` and window rules in ``_window.py``. Frames for unknown ids are ignored
(rust-yamux#110), but counted (see **Limits**).

**Limits.** ``max_streams`` live streams and ``accept_backlog`` unaccepted ones: an excess
inbound SYN gets RST for that stream alone. ``max_ack_backlog`` un-ACKed outbound streams:
:attr:`can_open_stream` turns false. Received RSTs and empty DATA frames draw from a token
bucket (``rst_burst``, refilled at ``rst_rate``/s from the ``now`` passed in); resets of
not-yet-accepted streams are capped at ``max_pending_accept_resets``; beyond either the
connection ends with GO_AWAY(2). Frames for ids that are not live (never opened, closed or
reset) draw from a second bucket (``unknown_frame_burst``, ``unknown_frame_rate``); when
it is empty the connection ends with GO_AWAY(1) (hardening.md Y10). More than
``max_queued_pongs`` unwritten pongs pause parsing (:attr:`is_reading_paused`) until
:meth:`data_to_send` drained them and the adapter calls :meth:`resume_reading`.

**Errors** (style.md §4): a peer violation ends the connection, queues GO_AWAY with the
error's code at the head of the control lane (dropping queued data) and raises a
:class:`~plait.muxer.MuxerProtocolViolation` subclass. Local misuse raises
:class:`~plait.muxer.StreamStateError`, :class:`~plait.muxer.StreamLimitError`,
``ValueError`` or ``RuntimeError`` and changes nothing. After the connection ended,
commands raise :class:`~plait.muxer.StreamLimitError` / :class:`~plait.muxer.StreamStateError`
and input is discarded.

**Policies for odd input** (hardening.md Y3, Y9, Y19, Y20): undefined flag bits are ignored;
SYN+RST on one frame opens nothing and counts as a reset; a PING or GO_AWAY on a non-zero
id, or a SYN on id 0, is a protocol violation; a ping with neither flag is answered (as
rust-yamux does); a FIN repeated is harmless; DATA after the peer's FIN resets that stream
alone; GO_AWAY of any code ends the connection (rust-yamux behaviour).

**Time.** Nothing here reads a clock. ``now`` (seconds, any monotonic origin) arrives through
:meth:`start`, :meth:`handle_timer` and optionally :meth:`receive_data`; the most recent
value is remembered and used by commands that need a time (RTT, auto-tuning).
"""

from __future__ import annotations

import enum
from collections import deque
from typing import TYPE_CHECKING

from ._frames import HEADER, HEADER_SIZE, MAX_U32, Flag, FrameType, GoAwayCode
from ._stream_state import HalfState, StreamPhase, StreamState
from ._window import ReceiveWindow, WindowBudget
from .config import DEFAULT_CREDIT, YamuxConfig
from .errors import (
    FlowControlViolation,
    GoAwayError,
    KeepaliveTimeoutError,
    MuxerFloodError,
    MuxerProtocolViolation,
    StreamLimitError,
    StreamStateError,
    UnknownStreamFloodError,
)
from .events import (
    ConnectionTerminated,
    GoAwayReceived,
    MuxerEvent,
    PingAcknowledged,
    StreamDataReceived,
    StreamEnded,
    StreamOpened,
    StreamReset,
    WindowUpdated,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ("ConnectionState", "Role", "YamuxConnection")

_DATA = FrameType.DATA.value
_WINDOW_UPDATE = FrameType.WINDOW_UPDATE.value
_PING = FrameType.PING.value
_GO_AWAY = FrameType.GO_AWAY.value
_SYN = Flag.SYN.value
_ACK = Flag.ACK.value
_FIN = Flag.FIN.value
_RST = Flag.RST.value
_pack = HEADER.pack
_unpack_from = HEADER.unpack_from
_OPEN = HalfState.OPEN
_DISCARDING = HalfState.DISCARDING
_ESTABLISHED = StreamPhase.ESTABLISHED


class Role(enum.Enum):
    """Which side of the connection we are; it fixes the parity of our stream ids."""

    CLIENT = "client"
    """The dialer: odd stream ids."""
    SERVER = "server"
    """The listener: even stream ids."""


class ConnectionState(enum.Enum):
    """Lifecycle of the whole connection."""

    OPEN = "open"
    """Streams may be opened and carry data."""
    CLOSED = "closed"
    """Terminal: GO_AWAY sent or received, EOF, a violation or a keep-alive timeout."""


class YamuxConnection:
    """One Yamux session, sans-IO.

    :param is_client: True for the dialer (odd stream ids), False for the listener.
    :param config: limits and behaviour; :class:`YamuxConfig` defaults when omitted.
    """

    def __init__(self, *, is_client: bool, config: YamuxConfig | None = None) -> None:
        self.config = config if config is not None else YamuxConfig()
        self.role = Role.CLIENT if is_client else Role.SERVER
        self._state = ConnectionState.OPEN
        self._next_id = 1 if is_client else 2
        self._peer_parity = 0 if is_client else 1
        self._streams: dict[int, StreamState] = {}
        self._control = bytearray()
        self._data_lane: deque[tuple[int, bytes, bytes | memoryview | None]] = deque()
        self._data_lane_size = 0
        self._partial_header = bytearray()
        self._partial_frame: tuple[int, int, int] | None = None
        self._streaming: tuple[int, int] | None = None
        self._partial_parts: list[memoryview] = []
        self._partial_have = 0
        self._parked: list[memoryview] = []
        self._paused = False
        self._queued_pongs = 0
        self._now: float | None = None
        self._pings: dict[int, float | None] = {}
        self._next_opaque = 1
        self._rtt: float | None = None
        self._next_keepalive: float | None = None
        self._ack_backlog = 0
        self._unaccepted = 0
        self._accept_resets = 0
        self._rst_tokens = float(self.config.rst_burst)
        self._rst_refilled_at: float | None = None
        self._unknown_tokens = float(self.config.unknown_frame_burst)
        self._budget = WindowBudget(self.config)
        self._extra_credit = self.config.initial_window - DEFAULT_CREDIT
        self._owed_acks: dict[int, None] = {}  # accepted, ACK not yet on the wire
        self._close_code: int | None = None

    # ------------------------------------------------------------------ properties

    @property
    def state(self) -> ConnectionState:
        """:class:`ConnectionState` of the connection."""
        return self._state

    @property
    def is_closed(self) -> bool:
        """True once the connection reached its terminal state."""
        return self._state is ConnectionState.CLOSED

    @property
    def close_code(self) -> int | None:
        """The GO_AWAY code that ended the connection, once closed."""
        return self._close_code

    @property
    def rtt(self) -> float | None:
        """Latest round-trip time measured with our own pings, in seconds."""
        return self._rtt

    @property
    def can_open_stream(self) -> bool:
        """True when :meth:`open_stream` would succeed now."""
        return (
            self._state is ConnectionState.OPEN
            and self._ack_backlog < self.config.max_ack_backlog
            and len(self._streams) < self.config.max_streams
            and self._next_id <= MAX_U32
        )

    @property
    def ack_backlog(self) -> int:
        """Outbound streams the peer has not acknowledged yet."""
        return self._ack_backlog

    @property
    def accept_backlog(self) -> int:
        """Inbound streams the application has not accepted yet."""
        return self._unaccepted

    @property
    def stream_count(self) -> int:
        """Live streams (both directions) whose state the core still holds."""
        return len(self._streams)

    @property
    def stream_ids(self) -> list[int]:
        """Ids of the live streams."""
        return list(self._streams)

    @property
    def has_data_to_send(self) -> bool:
        """True when :meth:`data_to_send` would return bytes."""
        return bool(self._control or self._data_lane or self._owed_acks)

    @property
    def queued_data_size(self) -> int:
        """Bytes (headers included) waiting in the data lane."""
        return self._data_lane_size

    @property
    def is_reading_paused(self) -> bool:
        """True when parsing stopped because too many pongs wait to be written."""
        return self._paused

    @property
    def buffered_input_size(self) -> int:
        """Bytes of input held back (a partial frame, or input parked while paused)."""
        return (len(self._partial_header) + self._partial_have
                + sum(len(view) for view in self._parked))

    def stream_state(self, stream_id: int) -> StreamState | None:
        """The live state of a stream (read-only use), or ``None`` once released."""
        return self._streams.get(stream_id)

    def outbound_window(self, stream_id: int) -> int:
        """Bytes that may be sent on ``stream_id`` now (0 for an unknown stream)."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.write_state is not _OPEN:
            return 0
        return stream.send_window

    # ------------------------------------------------------------------ commands

    def start(self, now: float) -> None:
        """Arm the keep-alive timer and, with auto-tuning on, send a first RTT ping.

        :param now: the current time.
        """
        self._now = now
        self._rst_refilled_at = now
        if self.config.keepalive_interval is not None:
            self._next_keepalive = now + self.config.keepalive_interval
        if self.config.auto_tune and self._state is ConnectionState.OPEN:
            self.send_ping(now=now)

    def open_stream(self) -> int:
        """Open an outbound stream: queue WINDOW_UPDATE+SYN and return the new id.

        :raises StreamLimitError: the connection is closed, the ACK backlog or
            ``max_streams`` is full, or the ids are exhausted.
        """
        if self._state is not ConnectionState.OPEN:
            raise StreamLimitError("the connection is closed")
        if self._ack_backlog >= self.config.max_ack_backlog:
            raise StreamLimitError("ACK backlog full: too many unacknowledged streams")
        if len(self._streams) >= self.config.max_streams:
            raise StreamLimitError("too many streams")
        stream_id = self._next_id
        if stream_id > MAX_U32:
            raise StreamLimitError("stream ids exhausted")
        self._next_id += 2
        stream = StreamState(
            stream_id,
            StreamPhase.SYN_SENT,
            DEFAULT_CREDIT,
            ReceiveWindow(self.config.initial_window, self.config.initial_window, self._now),
        )
        self._streams[stream_id] = stream
        self._ack_backlog += 1
        header = _pack(0, _WINDOW_UPDATE, _SYN, stream_id, self._extra_credit)
        self._data_lane.append((stream_id, header, None))
        self._data_lane_size += HEADER_SIZE
        return stream_id

    def accept_stream(self, stream_id: int) -> None:
        """The application accepted an inbound stream: the ACK is owed from now on.

        It rides on the stream's next queued frame (DATA, WINDOW_UPDATE or FIN); if none is
        queued by the next :meth:`data_to_send`, a WINDOW_UPDATE+ACK goes out then.

        A stream the peer already reset is ignored.
        """
        stream = self._streams.get(stream_id)
        if stream is None or stream.phase is not StreamPhase.SYN_RECEIVED:
            return
        self._send_ack(stream)

    def send_data(self, stream_id: int, data: Buffer, *, end_stream: bool = False) -> int:
        """Queue as much of ``data`` as the stream's send window allows.

        Bodies are split at ``split_send_size``. ``data`` of type ``bytes`` is referenced,
        not copied; any other buffer is copied once first.

        :param end_stream: set FIN on the last frame if all of ``data`` fits.
        :return: how many bytes were queued (0 when the window is closed).
        :raises StreamStateError: the stream is unknown, released, or its write side closed.
        """
        stream = self._writable(stream_id)
        if not isinstance(data, bytes):
            data = bytes(data)
        total = len(data)
        n = min(total, stream.send_window)
        fin = end_stream and n == total
        if n == 0 and not fin:
            return 0
        flags = self._take_ack(stream)
        split = self.config.split_send_size
        if 0 < n <= split:
            # one frame (the common case for small writes): the body is the caller's
            # bytes themselves, or a view of their first n bytes
            self._data_lane.append((
                stream_id, _pack(0, _DATA, flags | _FIN if fin else flags, stream_id, n),
                data if n == total else memoryview(data)[:n]))
            self._data_lane_size += n + HEADER_SIZE
            stream.send_window -= n
            if fin:
                stream.write_state = HalfState.CLOSED
                self._maybe_release(stream)
            return n
        view = memoryview(data)
        lane = self._data_lane
        offset = 0
        while True:
            size = min(split, n - offset)
            last = offset + size >= n
            frame_flags = flags | _FIN if (last and fin) else flags
            lane.append((stream_id, _pack(0, _DATA, frame_flags, stream_id, size),
                         view[offset:offset + size] if size else None))
            flags = 0
            offset += size
            if last:
                break
        self._data_lane_size += n + HEADER_SIZE * ((n + split - 1) // split or 1)
        stream.send_window -= n
        if fin:
            stream.write_state = HalfState.CLOSED
            self._maybe_release(stream)
        return n

    def end_stream(self, stream_id: int) -> None:
        """Half-close our direction: queue WINDOW_UPDATE+FIN after the stream's data.

        :raises StreamStateError: the stream is unknown or its write side already closed.
        """
        stream = self._writable(stream_id)
        flags = self._take_ack(stream) | _FIN
        self._data_lane.append((stream_id, _pack(0, _WINDOW_UPDATE, flags, stream_id, 0), None))
        self._data_lane_size += HEADER_SIZE
        stream.write_state = HalfState.CLOSED
        self._maybe_release(stream)

    def reset_stream(self, stream_id: int) -> None:
        """Abort a stream: drop its queued frames, send RST, release its state.

        Unknown or released streams are ignored. If the stream's SYN had not been written
        yet, nothing at all is sent.
        """
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        syn_unsent = self._purge_data_lane(stream_id)
        if not syn_unsent:
            self._control += _pack(0, _WINDOW_UPDATE, _RST, stream_id, 0)
        stream.read_state = stream.write_state = HalfState.RESET
        self._release(stream)

    def stop_reading(self, stream_id: int) -> None:
        """The local application will not read this stream any more.

        Buffered-but-unconsumed bytes are credited back and later bodies are dropped and
        credited at once (read side DISCARDING), so the peer never stalls on it.
        """
        stream = self._streams.get(stream_id)
        if stream is None or stream.read_state is not _OPEN:
            return
        stream.read_state = _DISCARDING
        recv = stream.recv
        recv.pending += recv.buffered
        recv.buffered = 0
        self._maybe_window_update(stream)
        self._maybe_release(stream)

    def acknowledge_received_data(
        self, stream_id: int, n: int, *, now: float | None = None
    ) -> None:
        """The application consumed ``n`` bytes of the stream: return credit when due.

        :raises ValueError: ``n`` exceeds the stream's buffered bytes.
        """
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        recv = stream.recv
        if n < 0 or n > recv.buffered:
            raise ValueError("acknowledged more bytes than were received")
        recv.buffered -= n
        recv.pending += n
        if stream.read_state is not _OPEN:
            return  # the peer sent FIN: no credit is needed any more
        if recv.pending >= recv.size >> 1:
            if now is not None:
                self._now = now
            self._maybe_window_update(stream)

    def send_ping(self, *, now: float | None = None) -> int:
        """Queue a PING request (flags SYN) and return its opaque value.

        :raises RuntimeError: ``max_outstanding_pings`` are already in flight.
        :raises StreamLimitError: the connection is closed.
        """
        if self._state is not ConnectionState.OPEN:
            raise StreamLimitError("the connection is closed")
        if len(self._pings) >= self.config.max_outstanding_pings:
            raise RuntimeError("too many pings in flight")
        if now is not None:
            self._now = now
        opaque = self._next_opaque
        self._next_opaque = (opaque % MAX_U32) + 1
        self._pings[opaque] = self._now
        self._control += _pack(0, _PING, _SYN, 0, opaque)
        return opaque

    def close(self, code: int = GoAwayCode.NORMAL) -> None:
        """End the connection: queue GO_AWAY(``code``) after the queued data.

        Idempotent once closed.
        """
        if self._state is ConnectionState.CLOSED:
            return
        self._data_lane.append((0, _pack(0, _GO_AWAY, 0, 0, code), None))
        self._data_lane_size += HEADER_SIZE
        self._finish(code)

    # ------------------------------------------------------------------ output

    def data_to_send(self, max_bytes: int | None = None) -> bytes:
        """Drain queued frames: the whole control lane, then whole data frames while the
        total stays within ``max_bytes`` (at least one data frame is always taken).

        :return: the bytes to write, ``b""`` when nothing is queued.
        """
        parts: list[bytes | memoryview] = []
        size = 0
        if self._owed_acks:
            control = self._control
            for stream_id in self._owed_acks:
                control += _pack(0, _WINDOW_UPDATE, _ACK, stream_id, 0)
            self._owed_acks.clear()
        if self._control:
            parts.append(bytes(self._control))
            size = len(self._control)
            self._control.clear()
            self._queued_pongs = 0
        lane = self._data_lane
        if lane:
            limit = max_bytes if max_bytes is not None else 1 << 62
            start = size
            append = parts.append
            popleft = lane.popleft
            while lane:
                _, header, body = lane[0]
                frame_size = HEADER_SIZE if body is None else HEADER_SIZE + len(body)
                if size + frame_size > limit and size > start:
                    break
                popleft()
                append(header)
                if body is not None:
                    append(body)
                size += frame_size
            self._data_lane_size -= size - start
        if not parts:
            return b""
        if len(parts) == 1:
            return bytes(parts[0])
        return b"".join(parts)

    # ------------------------------------------------------------------ timers

    def get_timer(self) -> float | None:
        """The next time :meth:`handle_timer` must run, or ``None``."""
        if self._state is not ConnectionState.OPEN:
            return None
        deadline = self._next_keepalive
        timeout = self.config.keepalive_timeout
        if timeout is not None and self._pings:
            sent = [t for t in self._pings.values() if t is not None]
            if sent:
                expiry = min(sent) + timeout
                if deadline is None or expiry < deadline:
                    deadline = expiry
        return deadline

    def handle_timer(self, now: float) -> list[MuxerEvent]:
        """Process expired deadlines: ping timeouts end the connection; keep-alive pings
        are sent."""
        self._now = now
        if self._state is not ConnectionState.OPEN:
            return []
        timeout = self.config.keepalive_timeout
        if timeout is not None:
            for sent in self._pings.values():
                if sent is not None and now - sent >= timeout:
                    error = KeepaliveTimeoutError(f"no pong within {timeout} s")
                    self._control.clear()
                    self._control += _pack(0, _GO_AWAY, 0, 0, GoAwayCode.INTERNAL_ERROR)
                    self._data_lane.clear()
                    self._data_lane_size = 0
                    self._finish(GoAwayCode.INTERNAL_ERROR)
                    return [ConnectionTerminated(
                        code=GoAwayCode.INTERNAL_ERROR, by_peer=False, error=error)]
        interval = self.config.keepalive_interval
        if interval is not None and self._next_keepalive is not None and (
            now >= self._next_keepalive
        ):
            self._next_keepalive = now + interval
            if len(self._pings) < self.config.max_outstanding_pings:
                self.send_ping(now=now)
        return []

    # ------------------------------------------------------------------ input

    def receive_data(self, data: Buffer, *, now: float | None = None) -> list[MuxerEvent]:
        """Feed bytes from the transport; ``b""`` means EOF.

        DATA bodies in the events are zero-copy ``memoryview`` slices of ``data`` (which is
        therefore kept alive while they are); a body split across calls is joined once.

        :param now: the current time; used for RTT samples, auto-tuning and the RST bucket.
        :return: the events the input produced, in order.
        :raises MuxerProtocolViolation: the peer broke the protocol; GO_AWAY is queued and
            the connection is closed.
        """
        if self._state is not ConnectionState.OPEN:
            return []
        if now is not None:
            self._now = now
        if not isinstance(data, bytes):
            data = bytes(data)
        events: list[MuxerEvent] = []
        if not data:
            self._on_eof(events)
            return events
        if self._paused:
            self._parked.append(memoryview(data))
            return events
        try:
            self._feed(memoryview(data), events)
        except MuxerProtocolViolation as exc:
            self._violation(exc)
            raise
        return events

    def resume_reading(self) -> list[MuxerEvent]:
        """Continue parsing input parked while too many pongs were queued.

        Call after :meth:`data_to_send` drained the pongs.
        """
        if not self._paused or self._state is not ConnectionState.OPEN:
            return []
        self._paused = False
        parked = self._parked
        self._parked = []
        events: list[MuxerEvent] = []
        try:
            for index, view in enumerate(parked):
                if self.is_reading_paused:
                    self._parked.extend(parked[index:])
                    break
                self._feed(view, events)
                if self.is_closed:
                    break
        except MuxerProtocolViolation as exc:
            self._violation(exc)
            raise
        return events

    def _feed(self, view: memoryview, events: list[MuxerEvent]) -> None:
        """Finish a frame left incomplete by earlier input, then parse the rest."""
        offset = 0
        partial = self._partial_frame
        if self._streaming is not None:
            offset = self._continue_body(view, events)
            if self._streaming is not None:
                return
        elif partial is not None:
            flags, stream_id, length = partial
            need = length - self._partial_have
            if len(view) < need:
                self._partial_parts.append(view)
                self._partial_have += len(view)
                return
            parts = self._partial_parts
            parts.append(view[:need])
            body = b"".join(parts)
            self._partial_frame = None
            self._partial_parts = []
            self._partial_have = 0
            offset = need
            self._on_data(flags, stream_id, body, events)
        elif self._partial_header:
            header = self._partial_header
            offset = HEADER_SIZE - len(header)
            header += view[:offset]
            if len(header) < HEADER_SIZE:
                return
            offset = self._straddled_header(bytes(header), view, offset, events)
            header.clear()
            if offset < 0:
                return
        if self._state is ConnectionState.OPEN:
            self._parse(view, offset, events)

    def _continue_body(self, view: memoryview, events: list[MuxerEvent]) -> int:
        """Route the next bytes of a plain DATA body split across inputs; return how many
        bytes of ``view`` it took."""
        assert self._streaming is not None
        stream_id, remaining = self._streaming
        take = min(remaining, len(view))
        if take:
            stream = self._streams.get(stream_id)
            if stream is not None:  # else reset locally meanwhile: drop the rest
                recv = stream.recv
                if stream.read_state is _OPEN:
                    recv.available -= take
                    recv.buffered += take
                    events.append(StreamDataReceived(stream_id=stream_id, data=view[:take]))
                elif stream.read_state is _DISCARDING:
                    recv.available -= take
                    recv.pending += take
                    self._maybe_window_update(stream)
        remaining -= take
        self._streaming = (stream_id, remaining) if remaining else None
        return take

    def _straddled_header(
        self, header: bytes, view: memoryview, offset: int, events: list[MuxerEvent]
    ) -> int:
        """Handle a frame whose header was split across inputs; return where parsing of
        ``view`` continues, or -1 when it must stop (body incomplete, paused, closed)."""
        ftype: int
        flags: int
        stream_id: int
        length: int
        _, ftype, flags, stream_id, length = _unpack_from(header, 0)
        if ftype != _DATA:
            self._parse(memoryview(header), 0, events)
            if self._state is not ConnectionState.OPEN:
                return -1
            if self._paused:
                if offset < len(view):
                    self._parked.append(view[offset:])
                return -1
            return offset
        self._check_header(header)
        available = len(view) - offset
        if available < length:
            self._partial_frame = (flags, stream_id, length)
            self._partial_parts = [view[offset:]] if available else []
            self._partial_have = available
            return -1
        self._on_data(flags, stream_id, view[offset:offset + length], events)
        return offset + length

    def _check_header(self, buf: bytes) -> None:
        """Validate a header whose frame is incomplete (so the body is not yet buffered)."""
        version, ftype, flags, stream_id, length = _unpack_from(buf, 0)
        if version != 0:
            raise MuxerProtocolViolation("unsupported yamux version", seen=version)
        if ftype > _GO_AWAY:
            raise MuxerProtocolViolation("unknown frame type", seen=ftype)
        if ftype == _DATA:
            self._check_data_length(flags, stream_id, length)

    def _check_large_body(self, flags: int, stream_id: int, length: int) -> None:
        """A body over ``max_frame_body`` is allowed only within a readable stream's window.

        js-libp2p-yamux 8 sizes DATA frames by the whole send window, so once auto-tuning
        grants more than 1 MiB it sends larger bodies; the window still bounds what is held.
        """
        stream = self._streams.get(stream_id)
        if (
            flags & _SYN or stream is None or length > stream.recv.available
            or not (stream.read_state is _OPEN or stream.read_state is _DISCARDING)
        ):
            raise MuxerProtocolViolation("DATA frame body too large", seen=length)

    def _check_data_length(self, flags: int, stream_id: int, length: int) -> None:
        if length > self.config.max_frame_body:
            self._check_large_body(flags, stream_id, length)
        if flags & _SYN:
            if length > DEFAULT_CREDIT:
                raise FlowControlViolation(
                    f"first DATA body of stream {stream_id} exceeds the initial window",
                    seen=length)
            return
        stream = self._streams.get(stream_id)
        if stream is not None and length > stream.recv.available and (
            stream.read_state is _OPEN or stream.read_state is _DISCARDING
        ):
            raise FlowControlViolation(
                f"DATA on stream {stream_id} exceeds its receive window", seen=length)

    def _parse(self, view: memoryview, offset: int, events: list[MuxerEvent]) -> None:
        """Handle every complete frame of ``view`` from ``offset``; keep an incomplete one."""
        end = len(view)
        max_body = self.config.max_frame_body
        streams = self._streams
        append = events.append
        while end - offset >= HEADER_SIZE:
            version, ftype, flags, stream_id, length = _unpack_from(view, offset)
            if version != 0:
                raise MuxerProtocolViolation("unsupported yamux version", seen=version)
            if ftype == _DATA:
                if length > max_body:
                    self._check_large_body(flags, stream_id, length)
                start = offset + HEADER_SIZE
                stop = start + length
                if stop > end:
                    self._check_data_length(flags, stream_id, length)
                    stream = streams.get(stream_id)
                    if (
                        not flags and stream is not None
                        and stream.read_state is _OPEN and stream.phase is _ESTABLISHED
                    ):
                        # a plain body split across inputs: deliver what is here now and
                        # route the rest as it arrives (no joining copy); the header check
                        # above already ensured the whole body fits the window
                        self._streaming = (stream_id, length)
                        self._continue_body(view[start:], events)
                        return
                    self._partial_frame = (flags, stream_id, length)
                    self._partial_parts = [view[start:]] if start < end else []
                    self._partial_have = end - start
                    return
                offset = stop
                stream = streams.get(stream_id)
                if (
                    not flags and length and stream is not None
                    and stream.read_state is _OPEN and stream.phase is _ESTABLISHED
                ):
                    # fast path: plain DATA on an established, readable stream
                    recv = stream.recv
                    if length > recv.available:
                        raise FlowControlViolation(
                            f"DATA on stream {stream_id} exceeds its receive window",
                            seen=length)
                    recv.available -= length
                    recv.buffered += length
                    append(StreamDataReceived(stream_id=stream_id, data=view[start:stop]))
                else:
                    self._on_data(flags, stream_id, view[start:stop], events)
            elif ftype == _WINDOW_UPDATE:
                offset += HEADER_SIZE
                self._on_window_update(flags, stream_id, length, events)
            elif ftype == _PING:
                offset += HEADER_SIZE
                self._on_ping(flags, stream_id, length, events)
                if self._queued_pongs >= self.config.max_queued_pongs:
                    self._paused = True
                    if offset < end:
                        self._parked.append(view[offset:])
                    return
            elif ftype == _GO_AWAY:
                offset += HEADER_SIZE
                self._on_go_away(stream_id, length, events)
                return
            else:
                raise MuxerProtocolViolation("unknown frame type", seen=ftype)
        if offset < end:
            self._partial_header += view[offset:]

    # ------------------------------------------------------------------ frame handlers

    def _on_data(
        self, flags: int, stream_id: int, body: bytes | memoryview, events: list[MuxerEvent]
    ) -> None:
        if flags & _SYN:
            stream = self._on_syn(flags, stream_id, events)
            if stream is None:
                return
        else:
            stream = self._streams.get(stream_id)
            if stream is None:
                self._take_unknown_token(stream_id)
                if flags & _RST or not (body or flags):
                    self._take_token()
                return
            if stream.phase is StreamPhase.SYN_SENT:
                self._acknowledged(stream)
        n = len(body)
        if n:
            read_state = stream.read_state
            if read_state is _OPEN:
                recv = stream.recv
                if n > recv.available:
                    raise FlowControlViolation(
                        f"DATA on stream {stream_id} exceeds its receive window", seen=n)
                recv.available -= n
                recv.buffered += n
                events.append(StreamDataReceived(stream_id=stream_id, data=body))
            elif read_state is _DISCARDING:
                recv = stream.recv
                if n > recv.available:
                    raise FlowControlViolation(
                        f"DATA on stream {stream_id} exceeds its receive window", seen=n)
                recv.available -= n
                recv.pending += n
                self._maybe_window_update(stream)
            else:
                # DATA after the peer's FIN (hardening.md Y19): reset this stream alone.
                self.reset_stream(stream_id)
                events.append(StreamReset(stream_id=stream_id, by_peer=False))
                return
        elif not flags:
            self._take_token()  # an empty DATA frame without flags makes no progress (Y22)
        if flags & (_FIN | _RST):
            self._on_close_flags(stream, flags, events)

    def _on_window_update(
        self, flags: int, stream_id: int, delta: int, events: list[MuxerEvent]
    ) -> None:
        if flags & _SYN:
            stream = self._on_syn(flags, stream_id, events)
            if stream is None:
                return
        else:
            stream = self._streams.get(stream_id)
            if stream is None:
                self._take_unknown_token(stream_id)
                if flags & _RST:
                    self._take_token()
                return
            if flags & _ACK and stream.phase is StreamPhase.SYN_SENT:
                self._acknowledged(stream)
            elif flags & (_FIN | _RST) and stream.phase is StreamPhase.SYN_SENT:
                self._acknowledged(stream)
        if delta:
            window = stream.send_window + delta
            if window > MAX_U32:
                raise FlowControlViolation(
                    f"window update overflows the send window of stream {stream_id}",
                    seen=delta)
            stream.send_window = window
            if stream.write_state is _OPEN:
                events.append(WindowUpdated(stream_id=stream_id, delta=delta))
        if flags & (_FIN | _RST):
            self._on_close_flags(stream, flags, events)

    def _on_syn(self, flags: int, stream_id: int, events: list[MuxerEvent]) -> StreamState | None:
        """Admit, refuse or reject a new inbound stream; return it when admitted."""
        if stream_id == 0:
            raise MuxerProtocolViolation("SYN on stream id 0", seen=stream_id)
        if stream_id & 1 != self._peer_parity:
            raise MuxerProtocolViolation("SYN with the wrong stream id parity", seen=stream_id)
        if stream_id in self._streams:
            raise MuxerProtocolViolation("SYN for a live stream id", seen=stream_id)
        if flags & _RST:
            self._take_token()  # SYN+RST opens nothing (hardening.md Y3)
            return None
        config = self.config
        if len(self._streams) >= config.max_streams or self._unaccepted >= config.accept_backlog:
            self._control += _pack(0, _WINDOW_UPDATE, _RST, stream_id, 0)
            return None
        stream = StreamState(
            stream_id,
            StreamPhase.SYN_RECEIVED,
            DEFAULT_CREDIT,
            ReceiveWindow(config.initial_window, DEFAULT_CREDIT, self._now),
        )
        self._streams[stream_id] = stream
        self._unaccepted += 1
        events.append(StreamOpened(stream_id=stream_id))
        return stream

    def _on_close_flags(self, stream: StreamState, flags: int, events: list[MuxerEvent]) -> None:
        stream_id = stream.stream_id
        if flags & _RST:
            self._take_token()
            if stream.phase is StreamPhase.SYN_RECEIVED:
                self._accept_resets += 1
                if self._accept_resets > self.config.max_pending_accept_resets:
                    raise MuxerFloodError("too many streams reset before being accepted",
                                          seen=self._accept_resets)
            self._purge_data_lane(stream_id)
            stream.read_state = stream.write_state = HalfState.RESET
            self._release(stream)
            events.append(StreamReset(stream_id=stream_id, by_peer=True))
            return
        read_state = stream.read_state
        if read_state is _OPEN:
            stream.read_state = HalfState.CLOSED
            events.append(StreamEnded(stream_id=stream_id))
            self._maybe_release(stream)
        elif read_state is _DISCARDING:
            stream.read_state = HalfState.CLOSED
            events.append(StreamEnded(stream_id=stream_id))
            self._maybe_release(stream)

    def _on_ping(self, flags: int, stream_id: int, opaque: int, events: list[MuxerEvent]) -> None:
        if stream_id != 0:
            raise MuxerProtocolViolation("PING on a stream id", seen=stream_id)
        if flags & _ACK:
            if opaque not in self._pings:
                raise MuxerProtocolViolation("unsolicited or mismatched pong", seen=opaque)
            sent = self._pings.pop(opaque)
            rtt = 0.0
            if sent is not None and self._now is not None:
                rtt = max(self._now - sent, 0.0)
                self._rtt = rtt
            events.append(PingAcknowledged(opaque=opaque, rtt=rtt))
            return
        self._control += _pack(0, _PING, _ACK, 0, opaque)
        self._queued_pongs += 1

    def _on_go_away(self, stream_id: int, code: int, events: list[MuxerEvent]) -> None:
        if stream_id != 0:
            raise MuxerProtocolViolation("GO_AWAY on a stream id", seen=stream_id)
        events.append(GoAwayReceived(code=code))
        self._data_lane.clear()
        self._data_lane_size = 0
        self._finish(code)
        events.append(ConnectionTerminated(code=code, by_peer=True, error=GoAwayError(code)))

    def _on_eof(self, events: list[MuxerEvent]) -> None:
        error = None
        if self._partial_header or self._partial_frame is not None or self._streaming:
            error = MuxerProtocolViolation("connection ended inside a frame",
                                           seen=self.buffered_input_size)
        self._data_lane.clear()
        self._data_lane_size = 0
        self._control.clear()
        self._finish(GoAwayCode.NORMAL)
        events.append(ConnectionTerminated(code=GoAwayCode.NORMAL, by_peer=True, error=error))

    # ------------------------------------------------------------------ helpers

    def _writable(self, stream_id: int) -> StreamState:
        stream = self._streams.get(stream_id)
        if stream is None:
            raise StreamStateError(f"stream {stream_id} is not open")
        if stream.write_state is not _OPEN:
            raise StreamStateError(f"stream {stream_id} is closed for writing")
        return stream

    def _take_ack(self, stream: StreamState) -> int:
        """ACK flag for the next frame of an inbound stream not acknowledged yet."""
        if stream.phase is StreamPhase.SYN_RECEIVED:
            stream.phase = StreamPhase.ESTABLISHED
            self._unaccepted -= 1
            return _ACK
        if self._owed_acks and stream.stream_id in self._owed_acks:
            del self._owed_acks[stream.stream_id]
            return _ACK
        return 0

    def _send_ack(self, stream: StreamState) -> None:
        stream.phase = StreamPhase.ESTABLISHED
        self._unaccepted -= 1
        extra = self._extra_credit
        if extra:
            stream.recv.available += extra
            stream.recv.pending -= extra
            self._control += _pack(0, _WINDOW_UPDATE, _ACK, stream.stream_id, extra)
        else:
            # a WINDOW_UPDATE+ACK made at the next data_to_send(), unless a frame of the
            # stream queued before then carries the ACK flag itself (one frame less)
            self._owed_acks[stream.stream_id] = None

    def _acknowledged(self, stream: StreamState) -> None:
        stream.phase = StreamPhase.ESTABLISHED
        self._ack_backlog -= 1

    def _maybe_window_update(self, stream: StreamState) -> None:
        recv = stream.recv
        if recv.pending < recv.size >> 1 or stream.phase is StreamPhase.SYN_RECEIVED:
            return
        growth = 0
        if stream.read_state is _OPEN:
            growth = self._budget.growth(recv, self._now, self._rtt)
        delta = recv.take_update(growth, self._now)
        self._control += _pack(0, _WINDOW_UPDATE, self._take_ack(stream), stream.stream_id,
                               delta)

    def _maybe_release(self, stream: StreamState) -> None:
        read_state = stream.read_state
        write_state = stream.write_state
        if (read_state is not _OPEN and read_state is not _DISCARDING
                and write_state is not _OPEN and write_state is not _DISCARDING):
            self._release(stream)

    def _release(self, stream: StreamState) -> None:
        if self._streams.pop(stream.stream_id, None) is None:
            return
        if self._owed_acks:
            self._owed_acks.pop(stream.stream_id, None)
        phase = stream.phase
        if phase is StreamPhase.SYN_SENT:
            self._ack_backlog -= 1
        elif phase is StreamPhase.SYN_RECEIVED:
            self._unaccepted -= 1
        stream.phase = StreamPhase.FINISHED
        self._budget.release(stream.recv)

    def _purge_data_lane(self, stream_id: int) -> bool:
        """Drop queued frames of one stream; return True if its SYN was among them."""
        lane = self._data_lane
        if not any(entry[0] == stream_id for entry in lane):
            return False
        syn = False
        kept: deque[tuple[int, bytes, bytes | memoryview | None]] = deque()
        size = 0
        for entry in lane:
            if entry[0] == stream_id:
                if _unpack_from(entry[1], 0)[2] & _SYN:
                    syn = True
            else:
                kept.append(entry)
                size += HEADER_SIZE + (len(entry[2]) if entry[2] is not None else 0)
        self._data_lane = kept
        self._data_lane_size = size
        return syn

    def _take_token(self) -> None:
        """Spend one token of the no-progress budget (received RSTs, empty frames)."""
        self._refill()
        self._rst_tokens -= 1
        if self._rst_tokens < 0:
            raise MuxerFloodError("too many resets or empty frames", seen=self.config.rst_burst)

    def _take_unknown_token(self, stream_id: int) -> None:
        """Spend one token of the budget for frames on ids that are not live (Y10)."""
        self._refill()
        self._unknown_tokens -= 1
        if self._unknown_tokens < 0:
            raise UnknownStreamFloodError("too many frames for unknown or closed streams",
                                          seen=stream_id)

    def _refill(self) -> None:
        """Top up both token buckets for the time since the last refill (done when a token
        is spent, so the common path pays nothing)."""
        now = self._now
        last = self._rst_refilled_at
        if now is None or last is None:
            self._rst_refilled_at = now
            return
        if now > last:
            self._rst_refilled_at = now
            config = self.config
            elapsed = now - last
            burst = config.rst_burst
            tokens = self._rst_tokens + elapsed * config.rst_rate
            self._rst_tokens = tokens if tokens < burst else float(burst)
            burst = config.unknown_frame_burst
            tokens = self._unknown_tokens + elapsed * config.unknown_frame_rate
            self._unknown_tokens = tokens if tokens < burst else float(burst)

    def _violation(self, exc: MuxerProtocolViolation) -> None:
        """Terminal state for a peer violation: GO_AWAY heads the output, data is dropped."""
        self._data_lane.clear()
        self._data_lane_size = 0
        self._control[:0] = _pack(0, _GO_AWAY, 0, 0, exc.error_code)
        self._finish(exc.error_code)

    def _finish(self, code: int) -> None:
        self._state = ConnectionState.CLOSED
        self._close_code = code
        for stream in list(self._streams.values()):
            stream.read_state = stream.write_state = HalfState.RESET
            self._release(stream)
        self._pings.clear()
        self._paused = False
        self._partial_header.clear()
        self._partial_frame = None
        self._streaming = None
        self._partial_parts = []
        self._partial_have = 0
        self._parked = []
        self._next_keepalive = None

    def __repr__(self) -> str:
        return (
            f"<YamuxConnection {self.role.name} {self._state.name} streams={len(self._streams)} "
            f"ack_backlog={self._ack_backlog} accept_backlog={self._unaccepted} "
            f"queued={self._data_lane_size + len(self._control)}>"
        )


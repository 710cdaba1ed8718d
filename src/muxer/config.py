"""Yamux configuration: every limit as a named, documented value (style.md §9).

Defaults follow rust-yamux 0.13 (the tari peer, yamux.md §2.1) and the proposals of
hardening.md §2.7; each module constant says where its number comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = (
    "DEFAULT_CREDIT",
    "DEFAULT_MAX_FRAME_BODY",
    "DEFAULT_MAX_STREAMS",
    "DEFAULT_SPLIT_SEND_SIZE",
    "MAX_ACK_BACKLOG",
    "YamuxConfig",
)

#: Initial stream window in each direction; fixed by the Yamux spec (yamux.md §1).
DEFAULT_CREDIT = 256 * 1024
#: rust-yamux ``MAX_FRAME_BODY_LEN`` (yamux/src/frame/io.rs): larger DATA bodies are fatal.
DEFAULT_MAX_FRAME_BODY = 1024 * 1024
#: rust-yamux ``split_send_size`` (libp2p/rust-yamux#100): largest DATA body we send.
#: Measured over the full stack (Yamux/Noise/TCP, one process, asyncio, 64 MiB, medians of 3;
#: 1 stream / 16 streams, MB/s): 4 KiB 525/533, 16 KiB 646/624, 32 KiB 632/660,
#: 64 KiB 588/614, 128 KiB 698/659. Above 16 KiB the gain is within the noise for many
#: streams, while each larger body holds other streams' frames (and control frames queued
#: after it) longer; 16 KiB also matches rust-yamux, so it stays.
DEFAULT_SPLIT_SEND_SIZE = 16 * 1024
#: rust-yamux ``max_num_streams``: live streams, both directions together.
DEFAULT_MAX_STREAMS = 512
#: libp2p yamux spec "ACK backlog": un-ACKed outbound streams before opening waits.
MAX_ACK_BACKLOG = 256
#: hashicorp/go-yamux ``AcceptBacklog``: unaccepted inbound streams before new ones get RST.
DEFAULT_ACCEPT_BACKLOG = 256
#: hardening.md §2.7 proposal (go-yamux keeps 16 MiB as its maximum stream window).
DEFAULT_MAX_STREAM_WINDOW = 16 * 1024 * 1024
#: Sum of all receive windows of one connection. rust-yamux uses 1 GiB; plait keeps room for
#: 512 streams at the initial credit (128 MiB) plus 128 MiB of auto-tuned growth.
DEFAULT_MAX_CONNECTION_WINDOW = 256 * 1024 * 1024
#: hashicorp / go-yamux keep-alive: a ping every 30 s ...
DEFAULT_KEEPALIVE_INTERVAL = 30.0
#: ... and the session dies when the answer takes longer than 10 s.
DEFAULT_KEEPALIVE_TIMEOUT = 10.0
#: performance.md §4 rule 1 asks for a batch cap that bounds a pong's wait. Measured on
#: the reference VM, batches just under glibc's 128 KiB mmap threshold are fastest: each
#: larger joined buffer (and the ciphertext a NoiseStream builds from it) is a fresh mmap
#: whose pages fault in on first write; 120 KiB batches moved 1.4x more Yamux/Noise bulk
#: data than 512 KiB ones (575 vs 398 MB/s, 1 stream) and 1.5x more plaintext.
DEFAULT_WRITE_BATCH_SIZE = 120 * 1024
#: Outbound bytes queued in the core before ``MuxedStream.send`` waits for the writer.
DEFAULT_MAX_WRITE_QUEUE_SIZE = 2 * 1024 * 1024
#: performance.md §4 rule 4: receive at least 256 KiB per transport read.
DEFAULT_RECEIVE_SIZE = 256 * 1024
#: go-yamux ``PingBacklog`` (hardening.md §1.4): pongs queued before reading pauses.
DEFAULT_MAX_QUEUED_PONGS = 32
#: nghttp2 1.57 received-RST token bucket (hardening.md §1.5): burst ...
DEFAULT_RST_BURST = 1000
#: ... and refill rate in tokens per second.
DEFAULT_RST_RATE = 33.0
#: Bound on a lazily flushed ACK (``YamuxConfig.max_ack_delay``); normally it leaves at once
#: with the handler's reply or when the acceptor waits for the next stream. 20 ms keeps the
#: peer's un-ACKed backlog (rust-yamux stops opening at 256) moving while costing at most
#: 50 timer wake-ups a second under a stream flood (5 ms cost 2 % of the stream rate).
DEFAULT_MAX_ACK_DELAY = 0.020
#: h2 ``max_pending_accept_reset_streams`` (hardening.md §1.5).
DEFAULT_MAX_PENDING_ACCEPT_RESETS = 20
#: Frames for unknown or closed stream ids (hardening.md Y10, js-libp2p's "messages for
#: missing streams" limiter): token-bucket burst ... An honest peer sends them only across
#: a close race: about one late window update per closed stream, plus the DATA in flight
#: when we reset a stream (a 16 MiB window in rust-yamux's 16 KiB frames is 1024 frames).
DEFAULT_UNKNOWN_FRAME_BURST = 4096
#: ... and refill rate per second: a late frame for each of ~4000 streams closed per
#: second (the open+echo+close rate of the benchmark) stays within it.
DEFAULT_UNKNOWN_FRAME_RATE = 4096.0


@dataclass(frozen=True, slots=True, kw_only=True)
class YamuxConfig:
    """Limits and behaviour of one Yamux connection. Make variants with
    :func:`dataclasses.replace`.

    :raises ValueError: from the constructor when a value is out of range.
    """

    initial_window: int = DEFAULT_CREDIT
    """Receive window granted to each new stream, in bytes. Both sides assume 256 KiB at
    open; a larger value is granted with the SYN or ACK window update. Minimum 256 KiB."""
    max_stream_window: int = DEFAULT_MAX_STREAM_WINDOW
    """Largest receive window auto-tuning may grow one stream to, in bytes."""
    max_connection_window: int = DEFAULT_MAX_CONNECTION_WINDOW
    """Budget for the sum of all receive windows of the connection, in bytes; must be at
    least ``initial_window * max_streams``. Growth beyond the initial windows is taken from
    what is left (rust-yamux ``max_connection_receive_window``)."""
    auto_tune: bool = True
    """Grow receive windows from RTT samples (libp2p/rust-yamux#176); False keeps every
    window at ``initial_window``."""
    split_send_size: int = DEFAULT_SPLIT_SEND_SIZE
    """Largest DATA body this side sends, in bytes."""
    max_frame_body: int = DEFAULT_MAX_FRAME_BODY
    """Largest DATA body accepted, except that a body within the receive window of an open
    stream is always accepted (js-libp2p-yamux 8 sends frames as large as the window, which
    auto-tuning may grow past 1 MiB). Anything else larger is rejected from its header,
    before any body is held (GO_AWAY(1))."""
    max_streams: int = DEFAULT_MAX_STREAMS
    """Live streams, both directions. An inbound SYN beyond it is refused with RST for that
    stream alone; a local open beyond it raises :class:`~plait.muxer.StreamLimitError`."""
    max_ack_backlog: int = MAX_ACK_BACKLOG
    """Outbound streams the peer has not acknowledged yet; further opens wait."""
    accept_backlog: int = DEFAULT_ACCEPT_BACKLOG
    """Inbound streams the application has not accepted yet; further SYNs get RST."""
    keepalive_interval: float | None = DEFAULT_KEEPALIVE_INTERVAL
    """Seconds between keep-alive pings; ``None`` disables them."""
    keepalive_timeout: float | None = DEFAULT_KEEPALIVE_TIMEOUT
    """Seconds a ping may stay unanswered before the connection is declared dead;
    ``None`` means pings never time out."""
    write_batch_size: int = DEFAULT_WRITE_BATCH_SIZE
    """Most bytes the writer hands to the transport in one ``send``: whole frames only, and
    at least one frame (so a single frame larger than this goes alone)."""
    max_write_queue_size: int = DEFAULT_MAX_WRITE_QUEUE_SIZE
    """Outbound DATA bytes queued in the core; beyond it ``MuxedStream.send`` waits for the
    writer, so a peer that grants huge windows but never reads cannot grow our memory."""
    receive_size: int = DEFAULT_RECEIVE_SIZE
    """``max_bytes`` of each transport read by the reader task, in bytes (a transport that
    pushes what it reads uses its own size: ``NoiseConfig.receive_size``)."""
    max_queued_pongs: int = DEFAULT_MAX_QUEUED_PONGS
    """Pongs waiting to be written before the core pauses parsing input (ping flood)."""
    max_outstanding_pings: int = 16
    """Own pings awaiting an answer; ``ping()`` beyond it raises ``RuntimeError``."""
    rst_burst: int = DEFAULT_RST_BURST
    """Token-bucket burst of received RSTs and empty DATA frames; when empty the
    connection ends with GO_AWAY(2)."""
    rst_rate: float = DEFAULT_RST_RATE
    """Token-bucket refill, per second."""
    max_pending_accept_resets: int = DEFAULT_MAX_PENDING_ACCEPT_RESETS
    """Inbound streams the peer may reset before the application accepted them; one more
    ends the connection with GO_AWAY(2)."""
    unknown_frame_burst: int = DEFAULT_UNKNOWN_FRAME_BURST
    """Token-bucket burst of frames (DATA or WINDOW_UPDATE without SYN) for stream ids that
    are not live: never opened, or already closed or reset. Such frames are ignored, since
    some cross a close in flight, but each takes a token; when the bucket is empty the
    connection ends with GO_AWAY(1) (:class:`~plait.muxer.UnknownStreamFloodError`). Their
    bodies are never held, so memory stays bounded either way."""
    unknown_frame_rate: float = DEFAULT_UNKNOWN_FRAME_RATE
    """Refill of ``unknown_frame_burst``, in frames per second."""
    close_timeout: float = 5.0
    """Seconds ``MuxedConnection.aclose`` waits to flush queued frames and GO_AWAY."""
    max_ack_delay: float = DEFAULT_MAX_ACK_DELAY
    """Most seconds the ACK of an accepted stream waits for a frame to ride with.
    ``MuxedConnection.accept_stream`` queues it without waking the writer: it leaves with
    the handler's first write on the stream, or as soon as any task waits on the
    connection (a ``receive``, ``accept_stream``, ``open_stream`` or a blocked ``send``),
    so one write carries ACK and reply; this bounds the wait when nothing of the kind
    happens (an application holding the stream idle)."""

    def __post_init__(self) -> None:
        if self.initial_window < DEFAULT_CREDIT or self.initial_window > 0xFFFF_FFFF:
            raise ValueError("initial_window must be between 256 KiB and 2**32-1")
        if self.max_stream_window < self.initial_window or self.max_stream_window > 0xFFFF_FFFF:
            raise ValueError("max_stream_window must be between initial_window and 2**32-1")
        if self.max_streams < 1:
            raise ValueError("max_streams must be at least 1")
        if self.max_connection_window < self.initial_window * self.max_streams:
            raise ValueError("max_connection_window must be >= initial_window * max_streams")
        if not 1 <= self.split_send_size <= self.max_frame_body:
            raise ValueError("split_send_size must be between 1 and max_frame_body")
        if not DEFAULT_CREDIT <= self.max_frame_body <= 0xFFFF_FFFF:
            raise ValueError("max_frame_body must be between 256 KiB and 2**32-1")
        for name in ("max_ack_backlog", "accept_backlog", "write_batch_size",
                     "max_write_queue_size", "receive_size", "max_queued_pongs",
                     "max_outstanding_pings", "rst_burst", "unknown_frame_burst"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_pending_accept_resets < 0:
            raise ValueError("max_pending_accept_resets must not be negative")
        for name in ("rst_rate", "unknown_frame_rate"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in ("keepalive_interval", "keepalive_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None")
        if self.close_timeout < 0:
            raise ValueError("close_timeout must not be negative")
        if self.max_ack_delay < 0:
            raise ValueError("max_ack_delay must not be negative")

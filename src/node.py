"""The Node: identity, transports, connection upgrade, one connection per peer, substreams.

Theory of operation (wire.md §1.1, §1.6, §2; api.md; hardening.md §2.7)
-----------------------------------------------------------------------
A :class:`Node` is an async context manager owning one task group. Everything it starts
runs there and is gone when ``async with`` exits.

Connections. :meth:`Node.listen` binds a transport listener and serves it with an
:class:`~plait.transport.upgrade.UpgradingListener`: each accepted stream is upgraded (wire
byte, Noise XX, identity exchange) in its own task, at most ``max_upgrading`` at a time (at
the cap the listener stops accepting). :meth:`Node.dial` upgrades in the caller's task. An
upgraded connection is then *admitted* synchronously (no await between the check and the
registration): at most one connection per peer key. When one already exists the
deterministic tie-break of wire.md §1.6 (tari ``tie_break_existing_connection``) decides,
comparing NodeIds byte-wise, so both ends keep the same connection:

- same direction: the newer wins;
- existing inbound, new outbound: the new one wins iff ``peer_node_id > our_node_id``;
- existing outbound, new inbound: the new one wins iff ``our_node_id > peer_node_id``.

(The survivor is always the connection dialled by the smaller NodeId.) A losing new
connection is closed before Yamux starts; a losing existing one is disconnected with reason
``REPLACED``. A dial that finds a connection to the requested peer returns it, and
concurrent dials of the same known peer share one attempt.

Each admitted connection runs one task: the Yamux session (dialer = client), and inside it
a loop accepting inbound substreams. Every accepted substream gets **one** task that
negotiates it (``NegotiationConfig.timeout``, 10 s) against the registered protocols and
then runs the protocol's handler on it; the stream is closed when the handler returns
(reset when it raises). More than ``max_negotiating_streams`` substreams still negotiating
on one connection, or any substream while no protocol is registered, are reset at once
(hardening.md P5).

Bans. :meth:`Node.ban` records a key with an expiry and drops its connection; a banned key
is refused right after Noise (inbound, before the identity exchange) and before dialling
when the peer id is known. Ban-tier errors ban automatically (wire.md §1.4.5, §2.4): a
failed identity exchange (via the upgrader) and a negotiation violation (unknown flag bits,
over-long id) in either direction; the peer is then disconnected.

Shutdown. ``__aexit__`` closes the listeners, disconnects every connection (Yamux
GO_AWAY(0), flushed) and cancels every handler, all within ``shutdown_timeout`` (plus at
most the muxer's own shielded ``close_timeout`` per flush), then cancels whatever is left;
the task group guarantees nothing outlives the ``async with``.

Events. :meth:`Node.events` subscribes to :data:`NodeEvent` values: :class:`PeerConnected`,
:class:`PeerDisconnected` (with a :class:`DisconnectReason`) and :class:`ConnectionFailed`
(an inbound upgrade failed). Each subscription buffers at most ``max_queued_events``; beyond
that the oldest are dropped, so a slow consumer never blocks the node.

RPC (wire.md §3, api.md). :meth:`Node.add_service` registers an RPC service's protocol id
like any other protocol; every inbound substream negotiated for it is served by the node's
single :class:`~plait.rpc.RpcServer` (:attr:`Node.rpc_server`), so all services share one set
of session limits (``NodeConfig.rpc_server``: ``max_sessions``, ``max_sessions_per_peer``,
handshake timeout, minimum deadline), counted per authenticated peer key. Outbound,
:meth:`PeerConnection.connect_rpc` opens one negotiated substream and performs the session
handshake on it; :meth:`PeerConnection.rpc_pool` returns a lazy, bounded
:class:`~plait.rpc.RpcClientPool` whose sessions are such substreams.

Observability. :meth:`Node.stats` returns a :class:`NodeStats`, an immutable snapshot of
gauges (what is open now) and cumulative counters (``*_total``, which never decrease while
the node lives, closed connections included): connections, substreams, RPC sessions per
protocol, bytes in and out per peer and in total, RTT per peer, and byte rates. Bytes are
counted where Yamux meets the encrypted transport: every Yamux frame, headers included, as
handed to or read from Noise (the connection upgrade and Noise's own framing and tags are not
counted). Rates are averages over a sliding window of at least ``NodeConfig.stats_rate_window``
seconds, measured between the samples that ``stats()`` itself records (at most one per tenth
of the window), so several callers do not disturb one another; the span of each rate is in
:attr:`Traffic.interval`. :mod:`plait.metrics` exports the snapshot to Prometheus.
"""

from __future__ import annotations

import enum
import logging
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias, TypeVar, final

import anyio
import anyio.lowlevel
from anyio.abc import ByteStream

from .errors import BanTier, PlaitError
from .identity import NodeId, PeerFeatures, peer_key
from .messaging import InboundMessages, Messaging, MessagingConfig
from .muxer import YamuxConfig
from .negotiation import (
    NegotiationConfig,
    NegotiationError,
    negotiate_inbound,
    negotiate_outbound,
    normalize_protocol_id,
)
from .noise import StaticKeypair
from .rpc import (
    PoolConfig,
    RejectReason,
    RpcClient,
    RpcClientPool,
    RpcHandshakeRejected,
    RpcProtocolViolation,
    RpcServer,
    RpcServerConfig,
    RpcServerSessionCounts,
    ServiceClient,
    SessionClosedError,
)
from .rpc.config import DEFAULT_POOL_ACQUIRE_TIMEOUT
from .transport import (
    IdentityConfig,
    MemoryAddress,
    MemoryNetwork,
    Multiaddr,
    PeerBannedError,
    PeerIdentity,
    TcpAddress,
    TcpConfig,
    TcpTransport,
    encode_identity_frame,
    parse_address,
)
from .transport.upgrade import (
    DEFAULT_FIRST_BYTE_TIMEOUT,
    DEFAULT_MAX_UPGRADING,
    DEFAULT_NOISE_HANDSHAKE_TIMEOUT,
    DEFAULT_UPGRADE_TIMEOUT,
    UpgradeConfig,
    UpgradedConnection,
    Upgrader,
    UpgradingListener,
)
from .transport.wire_mode import DEFAULT_NETWORK_BYTE

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

    from anyio.abc import TaskGroup, TaskStatus

    from .identity import NodeIdentity
    from .muxer import MuxedConnection, MuxedStream
    from .rpc import RpcClientConfig, Service
    from .transport import Transport, TransportAddress

__all__ = (
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_CONNECTIONS_PER_IP",
    "DEFAULT_RPC_VIOLATIONS_BEFORE_BAN",
    "DEFAULT_MAX_NEGOTIATING_STREAMS",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "DEFAULT_STATS_RATE_WINDOW",
    "ECHO_PROTOCOL_ID",
    "ConnectionDirection",
    "ConnectionFailed",
    "ConnectionCounts",
    "ConnectionLimitError",
    "ConnectionStatistics",
    "DisconnectReason",
    "Node",
    "NodeConfig",
    "NodeError",
    "NodeEvent",
    "NodeEvents",
    "NodeStatistics",
    "NodeStats",
    "PeerConnected",
    "PeerConnection",
    "PeerDisconnected",
    "PeerStats",
    "ProtocolHandler",
    "RpcClientSessionCounts",
    "RpcProtocolStats",
    "RpcServerSessionCounts",
    "StreamCounts",
    "Traffic",
    "echo_handler",
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_CONNECTIONS = 256  # plait's choice: a budget for peers (hardening.md §5 rule 1)
DEFAULT_MAX_CONNECTIONS_PER_IP: int | None = None  # off: nodes on one host share 127.0.0.1
DEFAULT_RPC_VIOLATIONS_BEFORE_BAN = 3  # hardening.md R1: a violation "counts toward a ban"
DEFAULT_MAX_NEGOTIATING_STREAMS = 128  # rust-libp2p; hardening.md §1.9 item 4, §2.7
DEFAULT_SHUTDOWN_TIMEOUT = 5.0  # plait's choice; equal to YamuxConfig.close_timeout
DEFAULT_MAX_QUEUED_EVENTS = 1024  # per subscription
DEFAULT_MAX_BANS = 10_000  # each needs an authenticated key; bounds the ban table
DEFAULT_STATS_RATE_WINDOW = 10.0  # seconds; Node.stats() rates average over at least this
_RATE_SAMPLES_PER_WINDOW = 10  # stats() records a rate sample at most every window / 10
ECHO_PROTOCOL_ID = b"/plait/echo/1"  # wire.md §2.5: plait's echo protocol

C = TypeVar("C", bound=ServiceClient)

ProtocolHandler: TypeAlias = Callable[["PeerConnection", ByteStream], Awaitable[None]]
"""A raw substream protocol: ``async def handler(conn, stream) -> None``."""

_STREAM_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)


class NodeError(PlaitError):
    """Base class of errors raised by the node itself."""


class ConnectionLimitError(NodeError):
    """``NodeConfig.max_connections`` peers are connected; a new peer is refused."""


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    """Everything a :class:`Node` limits or times. Make variants with
    :func:`dataclasses.replace`.

    :raises ValueError: from the constructor when a value is out of range.
    """

    network_byte: int = DEFAULT_NETWORK_BYTE
    """The wire-mode byte (wire.md §1.2): written by our dials, required of inbound ones."""
    first_byte_timeout: float = DEFAULT_FIRST_BYTE_TIMEOUT
    """Seconds an inbound connection has to send its wire byte."""
    noise_handshake_timeout: float = DEFAULT_NOISE_HANDSHAKE_TIMEOUT
    """Seconds for the whole Noise XX handshake."""
    upgrade_timeout: float = DEFAULT_UPGRADE_TIMEOUT
    """Seconds for the whole pre-authentication phase (wire byte, Noise, identity)."""
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    """Identity-exchange limits and read timeout; also caps what we advertise."""
    yamux: YamuxConfig = field(default_factory=YamuxConfig)
    """Limits of every connection's Yamux session."""
    negotiation: NegotiationConfig = field(default_factory=NegotiationConfig)
    """Deadline and limits of each substream's protocol negotiation."""
    tcp: TcpConfig = field(default_factory=TcpConfig)
    """TCP transport settings (connect timeout, listen backlog)."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    """Connected peers at most; a connection from a further peer is refused after its
    upgrade (a replacement for a connected peer is always admitted)."""
    max_upgrading: int = DEFAULT_MAX_UPGRADING
    """Inbound connections upgrading at once, over all listeners; at the cap the listeners
    stop accepting until one finishes."""
    max_connections_per_ip: int | None = DEFAULT_MAX_CONNECTIONS_PER_IP
    """Inbound TCP connections (upgrading or established) from one source IP address at
    once, over all listeners; a further one is closed at accept, before any byte is read,
    and reported as :class:`ConnectionFailed` with
    :class:`~plait.transport.TooManyConnectionsFromHostError` (no ban). It keeps one host
    from holding every ``max_upgrading`` slot. ``None``: no cap (many nodes of one machine
    talking to each other over 127.0.0.1, as in tests)."""
    max_negotiating_streams: int = DEFAULT_MAX_NEGOTIATING_STREAMS
    """Inbound substreams still negotiating per connection; beyond it new ones are reset."""
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    """Seconds a node shutdown may spend disconnecting (GO_AWAY) before cancelling what is
    left; also the grace handlers get after the peer closed a connection."""
    user_agent: str | None = None
    """Advertised user agent (≤ ``identity.max_user_agent_length`` bytes);
    ``None`` means ``plait/<version>``."""
    features: PeerFeatures = PeerFeatures.NONE
    """Advertised feature bits."""
    advertised_addresses: tuple[str, ...] | None = None
    """Addresses advertised in the identity exchange, as ``tcp://HOST:PORT`` or multiaddr
    text (``/ip4/1.2.3.4/tcp/7000``). ``None`` advertises the TCP listen addresses that are
    not unspecified (0.0.0.0, ::); ``memory://`` addresses are never advertised."""
    max_queued_events: int = DEFAULT_MAX_QUEUED_EVENTS
    """Events buffered per :meth:`Node.events` subscription before the oldest are dropped."""
    max_bans: int = DEFAULT_MAX_BANS
    """Entries in the ban table; beyond it expired, then the oldest, entries are dropped."""
    stats_rate_window: float = DEFAULT_STATS_RATE_WINDOW
    """Seconds the byte rates of :meth:`Node.stats` average over, at least (see
    :class:`Traffic`); :meth:`Node.stats` keeps at most about 10 samples per window."""
    rpc_violations_before_ban: int = DEFAULT_RPC_VIOLATIONS_BEFORE_BAN
    """RPC sessions a peer may end with a protocol violation (undecodable ``RpcSession`` or
    ``RpcRequest``, undefined flags, an oversize frame) before it is banned for
    ``BanTier.LONG`` (hardening.md R1, R9, R11): each violation ends only its session; this
    many ban the peer. 1 bans at the first."""
    rpc_server: RpcServerConfig = field(default_factory=RpcServerConfig)
    """Limits of the node's RPC server, shared by every service added with
    :meth:`Node.add_service`: ``max_sessions`` (global), ``max_sessions_per_peer``, handshake
    timeout, minimum and maximum request deadline, frame size."""
    messaging: MessagingConfig | None = None
    """The one-way messaging service (wire.md §4) the node runs on
    ``MessagingConfig.protocol_id``, behind :meth:`Node.send_message` and
    :meth:`Node.messages`. ``None`` (the default): the node does not speak the messaging
    protocol, and :meth:`Node.send_message` raises
    :class:`~plait.messaging.MessagingClosedError`. ``MessagingConfig()`` turns it on."""

    def __post_init__(self) -> None:
        self.upgrade_config()  # validates network_byte and the three timeouts
        if self.max_connections_per_ip is not None and self.max_connections_per_ip < 1:
            raise ValueError("max_connections_per_ip must be at least 1 or None")
        for name in ("max_connections", "max_upgrading", "max_negotiating_streams",
                     "max_queued_events", "max_bans", "rpc_violations_before_ban"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.shutdown_timeout < 0:
            raise ValueError("shutdown_timeout must not be negative")
        if not self.stats_rate_window > 0:
            raise ValueError("stats_rate_window must be positive")
        if self.user_agent is not None:
            size = len(self.user_agent.encode("utf-8"))
            if size > self.identity.max_user_agent_length:
                raise ValueError(f"user_agent is {size} bytes, limit "
                                 f"{self.identity.max_user_agent_length}")
        for address in self.advertised_addresses or ():
            _advertised_multiaddr(address)

    def upgrade_config(self) -> UpgradeConfig:
        """The :class:`~plait.transport.upgrade.UpgradeConfig` these values describe."""
        return UpgradeConfig(
            network_byte=self.network_byte,
            first_byte_timeout=self.first_byte_timeout,
            noise_handshake_timeout=self.noise_handshake_timeout,
            identity=self.identity,
            upgrade_timeout=self.upgrade_timeout,
        )


def _advertised_multiaddr(address: str) -> Multiaddr | None:
    """The multiaddr to advertise for ``address``, or ``None`` if it is not advertisable."""
    if address.startswith("/"):
        return Multiaddr.from_string(address)
    parsed = parse_address(address)
    if not isinstance(parsed, TcpAddress):
        return None
    ip = parsed.ip
    if parsed.port == 0 or (ip is not None and ip.is_unspecified):
        return None
    return parsed.to_multiaddr()


# --------------------------------------------------------------------------- events


class ConnectionDirection(enum.Enum):
    """Who opened a connection."""

    INBOUND = "inbound"
    """The peer dialled us (we are the Noise responder, the Yamux server)."""
    OUTBOUND = "outbound"
    """We dialled the peer (Noise initiator, Yamux client)."""


class DisconnectReason(enum.Enum):
    """Why a connection ended."""

    LOCAL = "local"
    """:meth:`PeerConnection.disconnect` was called."""
    REMOTE = "remote"
    """The peer closed the connection cleanly (EOF or GO_AWAY(0))."""
    ERROR = "error"
    """The connection failed (transport error, Yamux violation, keep-alive timeout)."""
    BANNED = "banned"
    """The peer was banned (see the event's ``error`` for an automatic ban's cause)."""
    REPLACED = "replaced"
    """A newer connection to the same peer won the tie-break (wire.md §1.6)."""
    SHUTDOWN = "shutdown"
    """The node shut down."""


_LOCAL_REASONS = frozenset(
    (DisconnectReason.LOCAL, DisconnectReason.BANNED, DisconnectReason.REPLACED,
     DisconnectReason.SHUTDOWN)
)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class PeerConnected:
    """A connection was established and admitted."""

    connection: PeerConnection
    """The new connection."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class PeerDisconnected:
    """An admitted connection ended (emitted once per :class:`PeerConnected`)."""

    connection: PeerConnection
    """The connection that ended."""
    reason: DisconnectReason
    """Why."""
    error: BaseException | None = None
    """The error behind ``ERROR`` or an automatic ``BANNED``, else ``None``."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionFailed:
    """An inbound connection failed before it was admitted (upgrade error, ban, limit)."""

    address: str
    """The remote address (``tcp://IP:PORT``, ``memory://NAME``)."""
    direction: ConnectionDirection
    """Always ``INBOUND`` (a failed dial raises to its caller instead)."""
    error: BaseException
    """The typed error: ``WrongNetworkError``, ``UpgradeTimeoutError``, a ``NoiseError``,
    ``PeerBannedError``, an identity error, ``ConnectionLimitError``..."""


NodeEvent = PeerConnected | PeerDisconnected | ConnectionFailed
"""Union of the node's events."""


@final
class NodeEvents:
    """A subscription to the node's events: an async iterator (and async context manager).

    Created by :meth:`Node.events`; it receives every event emitted after its creation and
    ends when the node shuts down or :meth:`aclose` is called.
    """

    __slots__ = ("_closed", "_limit", "_node", "_queue", "_wakeup", "dropped")

    def __init__(self, node: Node, limit: int) -> None:
        self._node = node
        self._queue: deque[NodeEvent] = deque()
        self._limit = limit
        self._wakeup: anyio.Event | None = None
        self._closed = False
        self.dropped = 0
        """Events dropped because the queue was full."""

    def _push(self, event: NodeEvent) -> None:
        if self._closed:
            return
        if len(self._queue) >= self._limit:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        self._wake()

    def _end(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> NodeEvent:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            event = self._wakeup = anyio.Event()
            await event.wait()
        return self._queue.popleft()

    async def aclose(self) -> None:
        """Unsubscribe; iteration ends once the queued events are read."""
        self._node._subscribers.discard(self)
        self._end()
        await anyio.lowlevel.checkpoint()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


# --------------------------------------------------------------------------- statistics


class NodeStatistics(NamedTuple):
    """A snapshot of what a node holds; every field returns to 0 (listeners aside) when no
    connection is left."""

    listeners: int
    """Listeners accepting connections."""
    upgrading: int
    """Connections in the upgrade (wire byte, Noise, identity), both directions."""
    connections: int
    """Admitted, live connections (one per peer)."""
    closing: int
    """Connections no longer admitted whose tasks are still finishing."""
    negotiating: int
    """Inbound substreams negotiating, over all connections."""
    handlers: int
    """Protocol handlers running, over all connections."""
    tasks: int
    """Tasks the node runs: accept loops, upgrades, connections, substreams, closers."""
    bans: int
    """Entries in the ban table (expired ones included until pruned)."""


class ConnectionStatistics(NamedTuple):
    """Counters of one :class:`PeerConnection`."""

    negotiating: int
    """Inbound substreams negotiating now."""
    handlers: int
    """Protocol handlers running now."""
    inbound_substreams: int
    """Inbound substreams negotiated successfully so far."""
    optimistic_opens: int
    """Outbound substreams negotiated optimistically (the peer advertised the protocol)."""
    normal_opens: int
    """Outbound substreams negotiated with a proposal and the peer's echo."""


# The snapshot of Node.stats(): gauges say what is open now; ``*_total`` fields count since
# the node started and never decrease while it lives.


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Traffic:
    """Bytes in and out, with their average rates.

    Bytes are Yamux frames (headers included) as read from and written to the encrypted
    transport; the upgrade and Noise's framing and tags are not counted.
    """

    bytes_in: int
    """Bytes received so far."""
    bytes_out: int
    """Bytes sent so far."""
    bytes_in_rate: float
    """Bytes per second received over the last :attr:`interval` seconds."""
    bytes_out_rate: float
    """Bytes per second sent over the last :attr:`interval` seconds."""
    interval: float
    """Seconds the rates average over: from the newest sample taken by :meth:`Node.stats`
    at least ``NodeConfig.stats_rate_window`` seconds ago (or, when there is none, from the
    node's start or the connection's admission) to now. 0.0 makes both rates 0.0."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionCounts:
    """Connections of a node: gauges and counters."""

    current: int
    """Admitted, live connections (one per peer); ``inbound + outbound``."""
    inbound: int
    """Of :attr:`current`, those the peer dialled."""
    outbound: int
    """Of :attr:`current`, those we dialled."""
    upgrading: int
    """Connections in the upgrade (wire byte, Noise, identity exchange), both directions."""
    closing: int
    """Connections no longer admitted whose tasks are still finishing."""
    opened_inbound_total: int
    """Inbound connections admitted so far (one ``PeerConnected`` each)."""
    opened_outbound_total: int
    """Outbound connections admitted so far (one ``PeerConnected`` each)."""
    closed_total: Mapping[DisconnectReason, int]
    """Connections ended so far (one ``PeerDisconnected`` each), by reason; every
    :class:`DisconnectReason` is a key."""
    failed_inbound_total: int
    """Inbound connections that failed before admission (one ``ConnectionFailed`` each):
    upgrade errors and timeouts, refused bans, the connection limit."""
    failed_outbound_total: int
    """Dials that raised: unreachable address, upgrade error, key mismatch, ban, limit."""
    banned_peers: int
    """Peers banned now (unexpired entries of the ban table)."""
    bans_total: int
    """Bans imposed so far, by :meth:`Node.ban` and automatically."""

    @property
    def opened_total(self) -> int:
        """Connections admitted so far, both directions."""
        return self.opened_inbound_total + self.opened_outbound_total


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class StreamCounts:
    """Yamux substreams of a node, over all its connections."""

    open: int
    """Substreams alive in the Yamux sessions now, either direction, negotiating included."""
    negotiating: int
    """Inbound substreams negotiating their protocol now."""
    handlers: int
    """Protocol handlers running now (RPC sessions included)."""
    inbound_total: int
    """Inbound substreams negotiated so far."""
    outbound_total: int
    """Outbound substreams negotiated so far (optimistic and normal)."""
    refused_total: int
    """Inbound substreams reset unread so far: ``max_negotiating_streams`` were negotiating,
    or no protocol was registered."""
    failed_total: int
    """Protocol negotiations that failed so far, either direction (timeouts, unsupported
    protocols, violations, broken streams)."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RpcClientSessionCounts:
    """Outbound RPC sessions of one protocol, opened by :meth:`PeerConnection.connect_rpc`
    and :meth:`PeerConnection.rpc_pool`."""

    active: int
    """Sessions open now (their client not closed and not ended by the server)."""
    opened_total: int
    """Sessions whose handshake succeeded so far."""
    rejected_total: Mapping[RejectReason, int]
    """Handshakes the server refused so far, by reason; only reasons seen are keys."""
    failed_total: int
    """Other failed attempts so far: negotiation, handshake timeout, a closed connection."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RpcProtocolStats:
    """RPC sessions of one protocol id, both directions."""

    protocol: bytes
    """The protocol id, e.g. ``b"/plait/greeting/1"``."""
    server: RpcServerSessionCounts
    """Inbound sessions (zero unless the node serves the protocol)."""
    client: RpcClientSessionCounts
    """Outbound sessions (zero unless the node opened some)."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class PeerStats:
    """One admitted connection."""

    peer_id: str
    """The peer's id (hex of its public key)."""
    direction: ConnectionDirection
    """Who dialled."""
    address: str
    """The dialled or the remote address."""
    connected_for: float
    """Seconds since the connection was admitted."""
    rtt: float | None
    """The latest Yamux ping round trip in seconds (keep-alive or ``muxer.ping()``);
    ``None`` before the first."""
    traffic: Traffic
    """Bytes and rates of this connection."""
    streams: int
    """Substreams alive on this connection, either direction."""
    negotiating: int
    """Inbound substreams negotiating now."""
    handlers: int
    """Protocol handlers running now."""
    inbound_substreams_total: int
    """Inbound substreams negotiated on this connection so far."""
    outbound_substreams_total: int
    """Outbound substreams negotiated on this connection so far."""
    rpc_sessions: int
    """Inbound RPC sessions of this peer holding a server slot now (all protocols)."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStats:
    """A snapshot of a node, made by :meth:`Node.stats`."""

    peer_id: str
    """The node's own peer id."""
    time: float
    """``anyio.current_time()`` when the snapshot was made."""
    uptime: float
    """Seconds since the node started (0.0 before it did)."""
    listeners: int
    """Listeners accepting connections."""
    connections: ConnectionCounts
    """Connections: open, opened, closed, failed, bans."""
    streams: StreamCounts
    """Substreams over all connections."""
    rpc: Mapping[bytes, RpcProtocolStats]
    """RPC sessions by protocol id: every service of :meth:`Node.add_service` and every
    protocol the node opened client sessions of."""
    traffic: Traffic
    """Bytes and rates over all connections, closed ones included."""
    peers: Mapping[str, PeerStats]
    """The admitted connections, by peer id."""
    tasks: int
    """Tasks the node runs: accept loops, upgrades, connections, substreams, closers."""


class _RpcCounters:
    """Mutable RPC counters of one protocol (see :class:`RpcProtocolStats`)."""

    __slots__ = ("clients", "failed", "opened", "refused")

    def __init__(self) -> None:
        self.clients: weakref.WeakSet[RpcClient] = weakref.WeakSet()
        self.opened = 0
        self.refused: dict[RejectReason, int] = {}
        self.failed = 0

    def snapshot(self, protocol: bytes, server: RpcServer) -> RpcProtocolStats:
        return RpcProtocolStats(
            protocol=protocol,
            server=server.session_counts(protocol),
            client=RpcClientSessionCounts(
                active=sum(1 for client in self.clients if client.is_connected),
                opened_total=self.opened,
                rejected_total=MappingProxyType(dict(self.refused)),
                failed_total=self.failed,
            ),
        )


class _Sample(NamedTuple):
    """Byte counters at one instant, for the rates of :meth:`Node.stats`."""

    time: float
    bytes_in: int
    bytes_out: int
    peers: dict[PeerConnection, tuple[int, int]]


def _rate(now: float, since: float, bytes_in: int, bytes_out: int,
          ref_in: int, ref_out: int) -> Traffic:
    interval = max(now - since, 0.0)
    if interval <= 0.0:
        return Traffic(bytes_in=bytes_in, bytes_out=bytes_out, bytes_in_rate=0.0,
                       bytes_out_rate=0.0, interval=0.0)
    return Traffic(
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        bytes_in_rate=(bytes_in - ref_in) / interval,
        bytes_out_rate=(bytes_out - ref_out) / interval,
        interval=interval,
    )


# --------------------------------------------------------------------------- connections


@final
class PeerConnection:
    """One authenticated, multiplexed connection to a peer. Made by the :class:`Node`."""

    __slots__ = (
        "_address", "_admitted_at", "_advertised", "_close_error", "_close_reason",
        "_direction", "_done", "_handlers", "_handshake_hash", "_identity",
        "_inbound_substreams", "_key", "_mux",
        "_negotiating", "_node", "_normal_opens", "_optimistic_opens", "_started",
        "_task_group", "node_id", "peer_id",
    )

    def __init__(self, node: Node, upgraded: UpgradedConnection,
                 direction: ConnectionDirection) -> None:
        self._node = node
        self._key = upgraded.remote_key
        self.peer_id = upgraded.remote_key.hex()
        """The peer's id: lower-case hex of its public key."""
        self.node_id = NodeId.from_public_key(upgraded.remote_key)
        """The peer's 13-byte NodeId (tie-break order, short names in logs)."""
        self._identity = upgraded.identity
        self._advertised = frozenset(upgraded.identity.supported_protocols)
        self._direction = direction
        self._address = upgraded.remote_address
        self._handshake_hash = upgraded.stream.handshake_hash
        self._mux = upgraded.muxer(node.config.yamux)
        self._started = anyio.Event()
        self._done = anyio.Event()
        self._close_reason: DisconnectReason | None = None
        self._close_error: BaseException | None = None
        self._task_group: TaskGroup | None = None
        self._negotiating = 0
        self._handlers = 0
        self._inbound_substreams = 0
        self._optimistic_opens = 0
        self._normal_opens = 0
        self._admitted_at = anyio.current_time()

    def __repr__(self) -> str:
        state = "open" if self._close_reason is None else self._close_reason.value
        return (f"<PeerConnection {self.node_id.short} {self._direction.value} "
                f"{self._address} {state}>")

    @property
    def public_key(self) -> bytes:
        """The peer's 32-byte static key, authenticated by Noise: its identity."""
        return self._key

    @property
    def identity(self) -> PeerIdentity:
        """What the peer advertised: protocols, addresses, features, user agent."""
        return self._identity

    @property
    def direction(self) -> ConnectionDirection:
        """Who dialled."""
        return self._direction

    @property
    def address(self) -> str:
        """The dialled address (outbound) or the remote end's address (inbound)."""
        return self._address

    @property
    def handshake_hash(self) -> bytes:
        """The Noise handshake hash: equal on both ends of the same connection."""
        return self._handshake_hash

    @property
    def muxer(self) -> MuxedConnection:
        """The Yamux session (``rtt``, ``ping()``, core statistics)."""
        return self._mux

    @property
    def is_connected(self) -> bool:
        """True until the connection starts closing."""
        return self._close_reason is None

    @property
    def disconnect_reason(self) -> DisconnectReason | None:
        """Why the connection ended, once it has."""
        return self._close_reason

    def statistics(self) -> ConnectionStatistics:
        """Current counters of this connection."""
        return ConnectionStatistics(
            self._negotiating, self._handlers, self._inbound_substreams,
            self._optimistic_opens, self._normal_opens,
        )

    async def open_substream(
        self, protocol_id: str | bytes, *, optimistic: bool | None = None
    ) -> ByteStream:
        """Open a substream and negotiate ``protocol_id`` on it (wire.md §2.2).

        :param optimistic: ``None`` negotiates optimistically exactly when the peer
            advertised the protocol in its identity, as tari does; True or False forces it.
        :return: the negotiated stream (closing it sends FIN).
        :raises ValueError: the id is empty or longer than 255 bytes.
        :raises ProtocolNotSupportedError: the peer does not speak the protocol.
        :raises NegotiationError: another negotiation failure (a violation bans the peer).
        :raises anyio.ClosedResourceError, anyio.BrokenResourceError: the connection is gone.
        :raises StreamLimitError: too many streams are open.
        """
        pid = normalize_protocol_id(protocol_id)
        if not self._started.is_set():
            await self._started.wait()
        stream = await self._mux.open_stream()
        use_optimistic = pid in self._advertised if optimistic is None else optimistic
        try:
            _, negotiated = await negotiate_outbound(
                stream, (pid,), optimistic=use_optimistic, config=self._node.config.negotiation
            )
        except NegotiationError as exc:
            self._node._negotiations_failed += 1
            await stream.reset()
            self._node._negotiation_failed(self, exc)
            raise
        except BaseException as exc:
            if isinstance(exc, Exception):
                self._node._negotiations_failed += 1
            await stream.reset()
            raise
        if use_optimistic:
            self._optimistic_opens += 1
        else:
            self._normal_opens += 1
        self._node._outbound_substreams += 1
        return negotiated

    async def connect_rpc(
        self,
        client_class: type[C],
        *,
        config: RpcClientConfig | None = None,
        optimistic: bool | None = None,
    ) -> C:
        """Open one RPC session to the peer: a substream negotiated for the service's
        protocol id, then the session handshake (wire.md §3.3, §3.12).

        ``await conn.connect_rpc(Greeting.Client)`` returns a ``Greeting.Client``; close it
        (``aclose()`` or ``async with``) to end the session and free the server's slot.

        :param client_class: the service's client class, ``SomeService.Client``.
        :param config: the session's deadlines and limits (default :class:`RpcClientConfig`).
        :param optimistic: as for :meth:`open_substream`.
        :raises RpcHandshakeRejected: the server refused the session; ``reason`` says why
            (``NO_SERVER_SESSIONS_AVAILABLE``, ``NO_CLIENT_SESSIONS_AVAILABLE``,
            ``PROTOCOL_NOT_SUPPORTED``, ``UNSUPPORTED_VERSION``).
        :raises RpcHandshakeTimeoutError: no handshake reply within ``handshake_timeout``.
        :raises SessionClosedError: the server closed the substream during the handshake, or
            the connection is closed.
        :raises ProtocolNotSupportedError: the peer does not serve the protocol at all.
        :raises NegotiationError: another negotiation failure.
        """
        protocol = client_class.service.protocol
        session = await self._connect_session(protocol, config, optimistic)
        return client_class(session)

    def rpc_pool(
        self,
        client_class: type[C],
        *,
        size: int = 1,
        exclusive: bool = False,
        acquire_timeout: float = DEFAULT_POOL_ACQUIRE_TIMEOUT,
        config: RpcClientConfig | None = None,
        optimistic: bool | None = None,
    ) -> RpcClientPool[C]:
        """A lazy pool of at most ``size`` RPC sessions to the peer (wire.md §3.13).

        Nothing is opened until the first ``async with pool.lease() as client:``. Each new
        session is a substream of this connection opened as by :meth:`connect_rpc`. A shared
        pool reuses an idle session, opens one while below ``size``, otherwise shares the
        least-leased one, and falls back to an existing session when the server refuses with
        reason 2 or 3. With ``exclusive=True`` a session serves one lease at a time and
        ``lease()`` waits up to ``acquire_timeout`` seconds, then raises
        ``RpcHandshakeRejected(NO_CLIENT_SESSIONS_AVAILABLE)``. Close the pool with
        ``await pool.aclose()``; once the connection is closed, opening a session raises
        :class:`~plait.rpc.SessionClosedError`.

        :param client_class: the service's client class, ``SomeService.Client``.
        :param config: deadlines and limits of every session the pool opens.
        :raises ValueError: ``size < 1`` or a non-positive ``acquire_timeout``.
        """
        protocol = client_class.service.protocol
        pool_config = PoolConfig(size=size, exclusive=exclusive, acquire_timeout=acquire_timeout)

        async def connect() -> RpcClient:
            return await self._connect_session(protocol, config, optimistic)

        return RpcClientPool(
            connect, client_class, pool_config, is_connected=lambda: self.is_connected
        )

    async def _connect_session(
        self, protocol: bytes, config: RpcClientConfig | None, optimistic: bool | None
    ) -> RpcClient:
        counters = self._node._rpc_counters_for(protocol)
        try:
            if self._close_reason is not None:
                raise SessionClosedError(f"the connection to {self.node_id.short} is closed")
            try:
                stream = await self.open_substream(protocol, optimistic=optimistic)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
                raise SessionClosedError(
                    f"the connection to {self.node_id.short} is closed"
                ) from exc
            client = await RpcClient.connect(stream, config=config, protocol=protocol)
        except RpcHandshakeRejected as exc:
            counters.refused[exc.reason] = counters.refused.get(exc.reason, 0) + 1
            raise
        except Exception:
            counters.failed += 1
            raise
        counters.opened += 1
        counters.clients.add(client)
        return client

    async def disconnect(self) -> None:
        """Close the connection (Yamux GO_AWAY(0)), cancel its handlers and wait until all
        of its tasks have finished. Idempotent."""
        await self._node._close_connection(self, DisconnectReason.LOCAL)
        await self._done.wait()

    async def wait_closed(self) -> None:
        """Wait until the connection has ended and all of its tasks have finished."""
        await self._done.wait()


# --------------------------------------------------------------------------- the node


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


async def echo_handler(conn: PeerConnection, stream: ByteStream) -> None:
    """The echo protocol (``/plait/echo/1``): write back every byte until the peer's EOF."""
    try:
        while True:
            await stream.send(await stream.receive())
    except anyio.EndOfStream:
        return


class Node:
    """A plait node: an identity, its listeners and one connection per peer (module docs).

    :param identity: the node's key pair; its public key is the node's identity.
    :param config: limits and timeouts.
    :param memory_network: the in-process network serving ``memory://`` addresses.
    :param tcp_transport: the transport serving ``tcp://`` addresses; default
        ``TcpTransport(config.tcp)``. Pass a wrapper to observe or shape the raw bytes (the
        demo prints the upgrade's bytes this way).
    """

    def __init__(
        self,
        identity: NodeIdentity,
        config: NodeConfig | None = None,
        *,
        memory_network: MemoryNetwork | None = None,
        tcp_transport: Transport | None = None,
    ) -> None:
        self._identity = identity
        self.config = config if config is not None else NodeConfig()
        self._memory = memory_network
        self._tcp: Transport = (
            tcp_transport if tcp_transport is not None else TcpTransport(self.config.tcp)
        )
        self._upgrader = Upgrader(
            StaticKeypair.from_private_bytes(identity.private_bytes()),
            self._local_identity,
            config=self.config.upgrade_config(),
            is_banned=self._is_banned_key,
            on_offence=self._on_offence,
        )
        self._protocols: dict[bytes, ProtocolHandler] = {}
        self._protocol_ids: tuple[bytes, ...] = ()
        self._rpc_server = RpcServer(self.config.rpc_server)
        self._hosts: dict[str, int] = {}  # inbound connections per source IP (listeners)
        # RPC protocol violations per peer key, toward rpc_violations_before_ban (bounded by
        # max_bans: the oldest entries are forgotten first)
        self._rpc_offences: dict[bytes, int] = {}
        self._messaging = Messaging(self, self.config.messaging or MessagingConfig())
        self._connections: dict[bytes, PeerConnection] = {}
        self._live: set[PeerConnection] = set()
        self._bans: dict[bytes, float | None] = {}
        self._subscribers: set[NodeEvents] = set()
        self._listeners: list[UpgradingListener] = []
        self._listen_addresses: list[str] = []
        self._dialing: dict[bytes, anyio.Event] = {}
        self._advertised: PeerIdentity | None = None
        self._task_group: TaskGroup | None = None
        self._slots: anyio.Semaphore | None = None
        self._state = _State.NEW
        self._tasks = 0
        # cumulative counters of stats()
        self._started_at: float | None = None
        self._opened = dict.fromkeys(ConnectionDirection, 0)
        self._closed = dict.fromkeys(DisconnectReason, 0)
        self._failed_inbound = 0
        self._failed_outbound = 0
        self._bans_total = 0
        self._inbound_substreams = 0
        self._outbound_substreams = 0
        self._refused_substreams = 0
        self._negotiations_failed = 0
        self._rpc_counters: dict[bytes, _RpcCounters] = {}
        self._closed_bytes_in = 0
        self._closed_bytes_out = 0
        self._samples: deque[_Sample] = deque()

    def __repr__(self) -> str:
        return (f"<Node {self._identity.node_id.short} {self._state.value} "
                f"connections={len(self._connections)} listening={self._listen_addresses}>")

    # ------------------------------------------------------------------ identity

    @property
    def identity(self) -> NodeIdentity:
        """The node's key pair."""
        return self._identity

    @property
    def peer_id(self) -> str:
        """Lower-case hex of the node's public key (api.md)."""
        return self._identity.peer_id

    @property
    def public_key(self) -> bytes:
        """The node's 32-byte public key."""
        return self._identity.public_key

    @property
    def node_id(self) -> NodeId:
        """The node's 13-byte NodeId."""
        return self._identity.node_id

    @property
    def listen_addresses(self) -> tuple[str, ...]:
        """The bound addresses of every listener, as :meth:`listen` returned them."""
        return tuple(self._listen_addresses)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self._state is not _State.NEW:
            raise RuntimeError("a Node can be entered only once")
        self._slots = anyio.Semaphore(self.config.max_upgrading)
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        self._state = _State.RUNNING
        self._started_at = anyio.current_time()
        self._samples.append(_Sample(self._started_at, 0, 0, {}))
        if self.config.messaging is not None:
            await task_group.start(self._messaging.run)
        logger.info("node %s started", self._identity.node_id.short)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        assert self._task_group is not None
        try:
            await self._shutdown()
        finally:
            try:
                suppress = await self._task_group.__aexit__(exc_type, exc_val, exc_tb)
            finally:
                self._state = _State.CLOSED
                for subscriber in list(self._subscribers):
                    subscriber._end()
                self._subscribers.clear()
                logger.info("node %s stopped", self._identity.node_id.short)
        return suppress

    async def _shutdown(self) -> None:
        if self._state is not _State.RUNNING:
            return
        self._state = _State.CLOSING
        assert self._task_group is not None
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(self.config.shutdown_timeout):
                for listener in self._listeners:
                    await listener.aclose()
                async with anyio.create_task_group() as closers:
                    for conn in list(self._live):
                        closers.start_soon(self._close_connection, conn, DisconnectReason.SHUTDOWN)
            self._task_group.cancel_scope.cancel()

    def _check_running(self) -> TaskGroup:
        if self._state is not _State.RUNNING or self._task_group is None:
            raise RuntimeError(f"the node is {self._state.value}, not running")
        return self._task_group

    def _spawn(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        assert self._task_group is not None
        self._task_group.start_soon(self._tracked, func, *args)

    async def _tracked(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        self._tasks += 1
        try:
            await func(*args)
        except Exception:
            logger.exception("node task %r failed", func)
        finally:
            self._tasks -= 1

    # ------------------------------------------------------------------ protocols

    def add_protocol(
        self,
        protocol_id: str | bytes,
        handler: ProtocolHandler,
    ) -> None:
        """Serve a raw substream protocol.

        ``handler(conn, stream)`` runs in the connection's task group for every inbound
        substream negotiated for ``protocol_id``; the stream is closed when it returns (reset
        when it raises). Protocols registered later are advertised only to peers that
        connect later.

        :raises ValueError: the id is empty, longer than 255 bytes, or already registered.
        """
        pid = normalize_protocol_id(protocol_id)
        if pid in self._protocols:
            raise ValueError(f"protocol {pid!r} is already registered")
        self._protocols[pid] = handler
        self._protocol_ids = tuple(self._protocols)
        self._advertised = None

    def remove_protocol(self, protocol_id: str | bytes) -> None:
        """Stop serving ``protocol_id`` (running handlers continue).

        :raises KeyError: it is not registered.
        """
        del self._protocols[normalize_protocol_id(protocol_id)]
        self._protocol_ids = tuple(self._protocols)
        self._advertised = None

    @property
    def protocols(self) -> tuple[bytes, ...]:
        """The registered protocol ids, in registration order."""
        return self._protocol_ids

    # ------------------------------------------------------------------ RPC

    @property
    def rpc_server(self) -> RpcServer:
        """The node's RPC server: its services, limits and session counts."""
        return self._rpc_server

    @property
    def messaging(self) -> Messaging:
        """The node's messaging service (``add_address``, ``flush``, ``statistics``); it runs
        only when ``NodeConfig.messaging`` is set."""
        return self._messaging

    async def send_message(
        self,
        peer_id: str | bytes,
        body: bytes,
        *,
        tag: int | None = None,
        block: bool | None = None,
    ) -> int:
        """Queue a one-way message for ``peer_id`` (wire.md §4) and return its local tag.

        The peer's connection is used, or made through an address :attr:`messaging` knows
        (``node.messaging.add_address(peer_id, address)``, or learnt from an earlier
        connection). Returning means queued, not delivered; see
        :meth:`plait.messaging.Messaging.send_message`.

        :raises MessageTooLargeError: ``body`` is above ``MessagingConfig.max_message_size``.
        :raises OutboundQueueFullError: the peer's queue is full and the call may not wait.
        :raises PeerUnreachableError: the peer is not connected and no address is known.
        :raises MessagingClosedError: messaging is off (``NodeConfig.messaging`` is ``None``)
            or the node is not running.
        """
        return await self._messaging.send_message(peer_id, body, tag=tag, block=block)

    def messages(self) -> InboundMessages:
        """Received messages with the sender's identity: ``async for message in
        node.messages()`` yields :class:`~plait.messaging.InboundMessage` values
        (``peer_id``, ``public_key``, ``tag``, ``body``)."""
        return self._messaging.messages()

    def add_service(self, service: Service) -> None:
        """Serve an RPC service on its protocol id (``service.protocol``).

        The id is registered like :meth:`add_protocol` (and advertised to peers that connect
        later); every inbound substream negotiated for it runs one RPC session on the node's
        :attr:`rpc_server`, whose limits (``NodeConfig.rpc_server``) all services share.

        :raises ValueError: the service has no protocol id, or the id is already registered
            (as a service or a raw protocol).
        """
        pid = normalize_protocol_id(service.protocol)
        if pid in self._protocols:
            raise ValueError(f"protocol {pid!r} is already registered")
        self._rpc_server.add_service(service)
        self.add_protocol(pid, self._rpc_handler(pid))

    def _rpc_handler(self, protocol: bytes) -> ProtocolHandler:
        server = self._rpc_server
        self._rpc_counters_for(protocol)  # listed by stats() from registration on

        async def serve_rpc(conn: PeerConnection, stream: ByteStream) -> None:
            try:
                await server.serve_session(stream, conn.public_key, protocol)
            except RpcProtocolViolation as exc:
                # hardening.md R1/R9: the session ends (only this stream) and the offence
                # counts toward a ban of the peer
                self._on_rpc_violation(conn, protocol, exc)

        return serve_rpc

    def _on_rpc_violation(
        self, conn: PeerConnection, protocol: bytes, error: RpcProtocolViolation
    ) -> None:
        key = conn.public_key
        count = self._rpc_offences.get(key, 0) + 1
        logger.debug("RPC session %r with %s broke the protocol (%d): %s", protocol,
                     conn.node_id.short, count, error)
        if count >= self.config.rpc_violations_before_ban:
            self._rpc_offences.pop(key, None)
            self._on_offence(key, BanTier.LONG, error)
        else:
            self._rpc_offences.pop(key, None)
            while len(self._rpc_offences) >= self.config.max_bans:
                del self._rpc_offences[next(iter(self._rpc_offences))]
            self._rpc_offences[key] = count

    def _rpc_counters_for(self, protocol: bytes) -> _RpcCounters:
        counters = self._rpc_counters.get(protocol)
        if counters is None:
            counters = self._rpc_counters[protocol] = _RpcCounters()
        return counters

    def num_active_sessions(self, peer_id: str | bytes | None = None) -> int:
        """Inbound RPC sessions holding a slot of :attr:`rpc_server` now (handshakes
        included), over all peers or for one peer id (hex) or key.

        :raises ValueError: a malformed peer id.
        """
        if peer_id is None:
            return self._rpc_server.num_active_sessions
        return self._rpc_server.num_active_sessions_for(peer_key(peer_id))

    def _local_identity(self) -> PeerIdentity:
        advertised = self._advertised
        if advertised is None:
            advertised = self._advertised = self._build_local_identity()
        return advertised

    def _build_local_identity(self) -> PeerIdentity:
        limits = self.config.identity
        sources = self.config.advertised_addresses
        if sources is None:
            sources = tuple(self._listen_addresses)
        addresses: list[Multiaddr] = []
        for source in sources:
            multiaddr = _advertised_multiaddr(source)
            if multiaddr is not None and multiaddr not in addresses:
                addresses.append(multiaddr)
        protocols = [p for p in self._protocol_ids if len(p) <= limits.max_protocol_id_length]
        user_agent = self.config.user_agent
        if user_agent is None:
            from . import __version__

            user_agent = f"plait/{__version__}"
        identity = PeerIdentity(
            addresses=tuple(addresses[: limits.max_addresses]),
            features=self.config.features,
            supported_protocols=tuple(protocols[: limits.max_supported_protocols]),
            user_agent=user_agent,
        )
        # Fit the 1024-byte frame: advertise fewer protocols (the rest still negotiate).
        while True:
            try:
                encode_identity_frame(identity, config=limits)
            except ValueError:
                if not identity.supported_protocols:
                    raise
                identity = PeerIdentity(
                    addresses=identity.addresses, features=identity.features,
                    supported_protocols=identity.supported_protocols[:-1],
                    user_agent=identity.user_agent,
                )
                continue
            return identity

    # ------------------------------------------------------------------ listening and dialling

    def _transport_for(self, address: TransportAddress) -> Transport:
        if isinstance(address, MemoryAddress):
            if self._memory is None:
                raise ValueError("memory:// addresses need Node(..., memory_network=...)")
            return self._memory
        return self._tcp

    async def listen(self, address: str) -> str:
        """Listen on ``address`` (``tcp://HOST:PORT``, port 0 for any; ``memory://NAME``).

        :return: the bound address, e.g. ``tcp://127.0.0.1:40123``.
        :raises InvalidAddressError: the address is malformed.
        :raises ListenError: it cannot be bound.
        """
        task_group = self._check_running()
        target = parse_address(address)
        listener = await self._transport_for(target).listen(target)
        assert self._slots is not None
        upgrading = UpgradingListener(
            listener, self._upgrader, self._slots, on_error=self._on_inbound_error,
            max_per_host=self.config.max_connections_per_ip, hosts=self._hosts,
        )
        self._listeners.append(upgrading)
        bound = str(listener.address)
        self._listen_addresses.append(bound)
        self._advertised = None
        self._spawn(upgrading.serve, self._handle_inbound, task_group)
        logger.info("node %s listening on %s", self._identity.node_id.short, bound)
        return bound

    async def dial(self, address: str, peer_id: str | bytes | None = None) -> PeerConnection:
        """Connect to the node at ``address``; return the connection to that peer.

        With ``peer_id``, an existing connection to that peer is returned without dialling
        (and concurrent dials of it share one attempt). Without it, the key is learnt from the
        handshake and a connection that turns out to duplicate an existing one goes through
        the tie-break (the survivor is returned).

        :param peer_id: the peer's id (hex) or 32-byte key; the authenticated key must match.
        :raises PeerKeyMismatchError: the peer at ``address`` has another key.
        :raises PeerBannedError: the peer is banned.
        :raises DialError: nothing accepts connections there.
        :raises NoiseError, TransportError: the upgrade failed (typed, see ``Upgrader``).
        :raises ConnectionLimitError: ``max_connections`` peers are connected.
        :raises ValueError: a malformed address or peer id, or our own peer id.
        """
        self._check_running()
        target = parse_address(address)
        transport = self._transport_for(target)
        expected = peer_key(peer_id) if peer_id is not None else None
        if expected is None:
            return await self._dial(transport, target, None)
        if expected == self.public_key:
            raise ValueError("cannot dial our own peer id")
        while True:
            existing = self._connections.get(expected)
            if existing is not None:
                return existing
            pending = self._dialing.get(expected)
            if pending is None:
                break
            await pending.wait()
        if self._is_banned_key(expected):
            self._failed_outbound += 1
            raise PeerBannedError(f"peer {expected.hex()} is banned")
        done = self._dialing[expected] = anyio.Event()
        try:
            return await self._dial(transport, target, expected)
        finally:
            del self._dialing[expected]
            done.set()

    async def _dial(
        self, transport: Transport, target: TransportAddress, expected: bytes | None
    ) -> PeerConnection:
        try:
            return await self._dial_upgrade(transport, target, expected)
        except Exception:
            self._failed_outbound += 1
            raise

    async def _dial_upgrade(
        self, transport: Transport, target: TransportAddress, expected: bytes | None
    ) -> PeerConnection:
        raw = await transport.dial(target)
        upgraded = await self._upgrader.upgrade_outbound(
            raw, expected_key=expected, remote_address=str(target)
        )
        try:
            task_group = self._check_running()
            conn, is_new = self._admit(upgraded, ConnectionDirection.OUTBOUND)
        except BaseException:
            await anyio.aclose_forcefully(upgraded.stream)
            raise
        if not is_new:
            await anyio.aclose_forcefully(upgraded.stream)
            return conn
        await task_group.start(self._run_outbound, conn)
        return self._connections.get(conn.public_key, conn)

    async def _run_outbound(
        self, conn: PeerConnection, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        self._tasks += 1
        try:
            await self._run_connection(conn, task_status=task_status)
        finally:
            self._tasks -= 1

    async def _handle_inbound(self, upgraded: UpgradedConnection) -> None:
        if self._state is not _State.RUNNING:
            await anyio.aclose_forcefully(upgraded.stream)
            return
        try:
            conn, is_new = self._admit(upgraded, ConnectionDirection.INBOUND)
        except (NodeError, PeerBannedError) as exc:
            await anyio.aclose_forcefully(upgraded.stream)
            self._on_inbound_error(exc, upgraded.remote_address)
            return
        except BaseException:
            await anyio.aclose_forcefully(upgraded.stream)
            raise
        if not is_new:
            await anyio.aclose_forcefully(upgraded.stream)
            return
        await self._run_connection(conn)

    def _on_inbound_error(self, error: BaseException, address: str) -> None:
        self._failed_inbound += 1
        self._emit(ConnectionFailed(
            address=address, direction=ConnectionDirection.INBOUND, error=error
        ))

    def _admit(
        self, upgraded: UpgradedConnection, direction: ConnectionDirection
    ) -> tuple[PeerConnection, bool]:
        """Decide (synchronously) whether the new connection is kept (wire.md §1.6)."""
        key = upgraded.remote_key
        if self._is_banned_key(key):
            raise PeerBannedError(f"peer {key.hex()} is banned")
        existing = self._connections.get(key)
        if existing is not None:
            if not self._new_wins(existing.direction, direction, key):
                logger.debug("tie-break: keeping %r, dropping the new %s connection",
                             existing, direction.value)
                return existing, False
        elif len(self._connections) >= self.config.max_connections:
            raise ConnectionLimitError(
                f"{self.config.max_connections} peers are connected; refusing {key.hex()}"
            )
        conn = PeerConnection(self, upgraded, direction)
        if existing is not None:
            logger.debug("tie-break: %r replaces %r", conn, existing)
            self._unregister(existing, DisconnectReason.REPLACED)
            self._spawn(self._close_connection, existing, DisconnectReason.REPLACED)
        self._connections[key] = conn
        self._live.add(conn)
        return conn, True

    def _new_wins(
        self, existing: ConnectionDirection, new: ConnectionDirection, key: bytes
    ) -> bool:
        if existing is new:
            return True  # same direction: keep the newer
        ours = self._identity.node_id
        theirs = NodeId.from_public_key(key)
        if existing is ConnectionDirection.INBOUND:
            return theirs > ours  # new outbound
        return ours > theirs  # existing outbound, new inbound

    # ------------------------------------------------------------------ one connection

    async def _run_connection(
        self, conn: PeerConnection, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        started = False
        try:
            async with conn._mux as mux:
                conn._started.set()
                if conn._close_reason is None:
                    logger.info("connected to %s (%s, %s)", conn.node_id.short,
                                conn.direction.value, conn.address)
                    self._opened[conn.direction] += 1
                    self._emit(PeerConnected(connection=conn))
                task_status.started()
                started = True
                await self._serve_connection(conn, mux)
                await mux.aclose()  # GO_AWAY(0), flushed; stops the session's tasks
        except Exception as exc:
            if not started:
                raise
            logger.exception("connection %r failed unexpectedly", conn)
            self._unregister(conn, DisconnectReason.ERROR, exc)
        finally:
            conn._started.set()
            self._unregister(conn, DisconnectReason.ERROR if self._state is _State.RUNNING
                             else DisconnectReason.SHUTDOWN)
            if conn in self._live:
                self._live.discard(conn)
                counters = conn._mux.statistics()
                self._closed_bytes_in += counters.bytes_read
                self._closed_bytes_out += counters.bytes_written
            conn._done.set()

    async def _serve_connection(self, conn: PeerConnection, mux: MuxedConnection) -> None:
        """Accept substreams until the session ends, then let the handlers finish: at once
        (cancelled) after a local close, within ``shutdown_timeout`` after the peer's."""
        async with anyio.create_task_group() as task_group:
            conn._task_group = task_group
            if conn._close_reason is None:
                reason, error = await self._accept_substreams(conn, mux, task_group)
                self._unregister(conn, reason, error)
            if conn._close_reason in _LOCAL_REASONS:
                task_group.cancel_scope.cancel()
            else:  # the peer went away: handlers may finish reading what arrived
                task_group.cancel_scope.deadline = (
                    anyio.current_time() + self.config.shutdown_timeout
                )

    async def _accept_substreams(
        self, conn: PeerConnection, mux: MuxedConnection, task_group: TaskGroup
    ) -> tuple[DisconnectReason, BaseException | None]:
        limit = self.config.max_negotiating_streams
        while True:
            try:
                stream = await mux.accept_stream()
            except anyio.EndOfStream:
                return DisconnectReason.REMOTE, None
            except anyio.ClosedResourceError:
                return conn._close_reason or DisconnectReason.LOCAL, None
            except anyio.BrokenResourceError as exc:
                return DisconnectReason.ERROR, exc.__cause__ or exc
            if conn._negotiating >= limit or not self._protocol_ids:
                logger.debug("resetting inbound substream %d from %s (%d negotiating)",
                             stream.stream_id, conn.node_id.short, conn._negotiating)
                self._refused_substreams += 1
                await stream.reset()
                continue
            conn._negotiating += 1
            task_group.start_soon(self._serve_substream, conn, stream)

    async def _serve_substream(self, conn: PeerConnection, stream: MuxedStream) -> None:
        try:
            protocol, negotiated = await negotiate_inbound(
                stream, self._protocol_ids, config=self.config.negotiation
            )
        except NegotiationError as exc:
            self._negotiations_failed += 1
            await stream.reset()
            self._negotiation_failed(conn, exc)
            return
        except _STREAM_ERRORS:
            self._negotiations_failed += 1
            await stream.reset()
            return
        finally:
            conn._negotiating -= 1
        handler = self._protocols.get(protocol)
        if handler is None:  # removed while negotiating
            await stream.reset()
            return
        conn._inbound_substreams += 1
        self._inbound_substreams += 1
        conn._handlers += 1
        try:
            await handler(conn, negotiated)
        except _STREAM_ERRORS as exc:
            logger.debug("handler for %r on %s ended: %r", protocol, conn.node_id.short, exc)
            await stream.reset()
        except Exception:
            logger.exception("handler for %r on %s raised", protocol, conn.node_id.short)
            await stream.reset()
        except BaseException:
            await stream.reset()
            raise
        else:
            await negotiated.aclose()
        finally:
            conn._handlers -= 1

    def _negotiation_failed(self, conn: PeerConnection, error: NegotiationError) -> None:
        tier: BanTier = getattr(error, "ban", BanTier.NONE)
        if tier is BanTier.NONE:
            logger.debug("negotiation with %s failed: %s", conn.node_id.short, error)
            return
        self._on_offence(conn.public_key, tier, error)

    async def _close_connection(self, conn: PeerConnection, reason: DisconnectReason) -> None:
        self._unregister(conn, reason)
        if conn._started.is_set():
            await conn._mux.aclose()

    def _unregister(
        self, conn: PeerConnection, reason: DisconnectReason, error: BaseException | None = None
    ) -> None:
        """Mark ``conn`` closed and forget it (first call wins); emit ``PeerDisconnected``."""
        if conn._close_reason is not None:
            return
        conn._close_reason = reason
        conn._close_error = error
        if self._connections.get(conn.public_key) is conn:
            del self._connections[conn.public_key]
        if conn._started.is_set():
            logger.info("disconnected from %s (%s%s)", conn.node_id.short, reason.value,
                        f": {error}" if error is not None else "")
            self._closed[reason] += 1
            self._emit(PeerDisconnected(connection=conn, reason=reason, error=error))

    # ------------------------------------------------------------------ connections, events

    @property
    def connections(self) -> tuple[PeerConnection, ...]:
        """The live connections, one per peer."""
        return tuple(self._connections.values())

    def get_connection(self, peer_id: str | bytes) -> PeerConnection | None:
        """The live connection to ``peer_id``, if any."""
        return self._connections.get(peer_key(peer_id))

    def events(self) -> NodeEvents:
        """Subscribe to connection events (from now on); iterate with ``async for``."""
        subscription = NodeEvents(self, self.config.max_queued_events)
        if self._state is _State.CLOSED:
            subscription._end()
        else:
            self._subscribers.add(subscription)
        return subscription

    def _emit(self, event: NodeEvent) -> None:
        for subscriber in self._subscribers:
            subscriber._push(event)

    def statistics(self) -> NodeStatistics:
        """A snapshot of the node's counters (see :class:`NodeStatistics`)."""
        negotiating = handlers = 0
        for conn in self._live:
            negotiating += conn._negotiating
            handlers += conn._handlers
        accepting = sum(listener.active for listener in self._listeners)
        return NodeStatistics(
            listeners=sum(1 for listener in self._listeners if listener.serving),
            upgrading=self._upgrader.upgrading,
            connections=len(self._connections),
            closing=sum(1 for conn in self._live if conn._close_reason is not None),
            negotiating=negotiating,
            handlers=handlers,
            tasks=self._tasks + accepting + negotiating + handlers,
            bans=len(self._bans),
        )

    def stats(self) -> NodeStats:
        """A snapshot of the node's connections, substreams, RPC sessions, traffic and
        peers (see :class:`NodeStats`). Call it from within the node's event loop.

        Every call may also record a rate sample (at most one per tenth of
        ``NodeConfig.stats_rate_window``); the byte rates of the snapshot average over at
        least that window once the node is older than it, else since the node started.
        """
        now = anyio.current_time()
        server = self._rpc_server
        base = self.statistics()
        open_streams = 0
        total_in, total_out = self._closed_bytes_in, self._closed_bytes_out
        live_bytes: dict[PeerConnection, tuple[int, int]] = {}
        for conn in self._live:
            counters = conn._mux.statistics()
            open_streams += counters.streams
            live_bytes[conn] = (counters.bytes_read, counters.bytes_written)
            total_in += counters.bytes_read
            total_out += counters.bytes_written

        reference = self._rate_reference(now)
        peers: dict[str, PeerStats] = {}
        inbound = 0
        for conn in self._connections.values():
            if conn._direction is ConnectionDirection.INBOUND:
                inbound += 1
            bytes_in, bytes_out = live_bytes.get(conn, (0, 0))
            if reference is not None and conn in reference.peers:
                since = reference.time
                ref_in, ref_out = reference.peers[conn]
            else:
                since, ref_in, ref_out = conn._admitted_at, 0, 0
            peers[conn.peer_id] = PeerStats(
                peer_id=conn.peer_id,
                direction=conn._direction,
                address=conn._address,
                connected_for=max(now - conn._admitted_at, 0.0),
                rtt=conn._mux.rtt,
                traffic=_rate(now, since, bytes_in, bytes_out, ref_in, ref_out),
                streams=conn._mux.core.stream_count,
                negotiating=conn._negotiating,
                handlers=conn._handlers,
                inbound_substreams_total=conn._inbound_substreams,
                outbound_substreams_total=conn._optimistic_opens + conn._normal_opens,
                rpc_sessions=server.num_active_sessions_for(conn.public_key),
            )
        if reference is None:
            traffic = _rate(now, now, total_in, total_out, 0, 0)
        else:
            traffic = _rate(now, reference.time, total_in, total_out,
                            reference.bytes_in, reference.bytes_out)
            self._record_sample(_Sample(now, total_in, total_out, live_bytes))

        connections = ConnectionCounts(
            current=base.connections,
            inbound=inbound,
            outbound=base.connections - inbound,
            upgrading=base.upgrading,
            closing=base.closing,
            opened_inbound_total=self._opened[ConnectionDirection.INBOUND],
            opened_outbound_total=self._opened[ConnectionDirection.OUTBOUND],
            closed_total=MappingProxyType(dict(self._closed)),
            failed_inbound_total=self._failed_inbound,
            failed_outbound_total=self._failed_outbound,
            banned_peers=sum(1 for expiry in self._bans.values()
                             if expiry is None or expiry > now),
            bans_total=self._bans_total,
        )
        streams = StreamCounts(
            open=open_streams,
            negotiating=base.negotiating,
            handlers=base.handlers,
            inbound_total=self._inbound_substreams,
            outbound_total=self._outbound_substreams,
            refused_total=self._refused_substreams,
            failed_total=self._negotiations_failed,
        )
        return NodeStats(
            peer_id=self.peer_id,
            time=now,
            uptime=0.0 if self._started_at is None else max(now - self._started_at, 0.0),
            listeners=base.listeners,
            connections=connections,
            streams=streams,
            rpc=MappingProxyType({protocol: counters.snapshot(protocol, self._rpc_server)
                                  for protocol, counters in self._rpc_counters.items()}),
            traffic=traffic,
            peers=MappingProxyType(peers),
            tasks=base.tasks,
        )

    def _rate_reference(self, now: float) -> _Sample | None:
        """The newest sample at least ``stats_rate_window`` old, else the oldest one (the
        node's start); ``None`` before the node started."""
        samples = self._samples
        horizon = now - self.config.stats_rate_window
        while len(samples) >= 2 and samples[1].time <= horizon:
            samples.popleft()
        return samples[0] if samples else None

    def _record_sample(self, sample: _Sample) -> None:
        spacing = self.config.stats_rate_window / _RATE_SAMPLES_PER_WINDOW
        if sample.time - self._samples[-1].time >= spacing:
            self._samples.append(sample)

    # ------------------------------------------------------------------ bans

    def ban(self, peer_id: str | bytes, duration: float | None = BanTier.LONG.duration) -> None:
        """Ban a peer for ``duration`` seconds (``None``: until :meth:`unban`) and drop its
        connection. Call from within the event loop.

        :raises ValueError: a malformed peer id or a non-positive duration.
        """
        if duration is not None and not duration > 0:
            raise ValueError(f"duration must be positive or None, got {duration!r}")
        self._ban_key(peer_key(peer_id), duration, None)

    def unban(self, peer_id: str | bytes) -> bool:
        """Lift a ban; return whether there was one."""
        key = peer_key(peer_id)
        if key in self._bans:
            del self._bans[key]
            return True
        return False

    def is_banned(self, peer_id: str | bytes) -> bool:
        """Whether ``peer_id`` is banned now."""
        return self._is_banned_key(peer_key(peer_id))

    def _is_banned_key(self, key: bytes) -> bool:
        if key not in self._bans:
            return False
        expiry = self._bans[key]
        if expiry is None or expiry > anyio.current_time():
            return True
        del self._bans[key]
        return False

    def _on_offence(self, key: bytes, tier: BanTier, error: BaseException) -> None:
        logger.warning("banning %s for %s s: %s", NodeId.from_public_key(key).short,
                       tier.duration, error)
        self._ban_key(key, tier.duration, error)

    def _ban_key(self, key: bytes, duration: float | None, error: BaseException | None) -> None:
        now = anyio.current_time()
        self._bans.pop(key, None)
        if len(self._bans) >= self.config.max_bans:
            for other, expiry in list(self._bans.items()):
                if expiry is not None and expiry <= now:
                    del self._bans[other]
            while len(self._bans) >= self.config.max_bans:
                del self._bans[next(iter(self._bans))]
        self._bans[key] = None if duration is None else now + duration
        self._bans_total += 1
        conn = self._connections.get(key)
        if conn is not None:
            self._unregister(conn, DisconnectReason.BANNED, error)
            if self._state is _State.RUNNING:
                self._spawn(self._close_connection, conn, DisconnectReason.BANNED)

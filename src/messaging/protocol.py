"""The messaging service: one-way messages between a node's peers (wire.md §4).

Theory of operation
-------------------
:class:`Messaging` attaches to a :class:`~plait.node.Node` through its public API only: it
registers the messaging protocol id with ``node.add_protocol``, learns peers' addresses from
``node.events()``, reaches peers with ``node.dial`` and ``conn.open_substream`` and punishes
them with ``node.ban`` or ``conn.disconnect``. The bytes are handled by sans-IO parts:
:class:`~plait.messaging.MessageDecoder` (framing), and the bookkeeping of
:mod:`plait.messaging._state` (queues, back-pressure, flood detection).

Outbound. :meth:`Messaging.send_message` puts the body in the destination peer's bounded
queue (when full it waits or raises, ``MessagingConfig.block_when_full``) and returns the
message's local tag. Each peer with queued messages has one writer task, started on demand:
it uses the live connection to the peer or dials a known address, opens **one** substream
negotiated for the messaging protocol, and writes the queued messages as frames, small ones
joined into batches. Reaching the peer is tried ``max_connect_attempts`` times (tari: 2);
after that every queued message is dropped (and counted). The substream stays open while the
connection lives; the receiver never writes on it, so the writer also watches it: any data or
end of stream from the peer ends the substream (as in tari), and the writer opens a new one
for whatever is still queued. A message counts as *sent* once the muxer has taken it; a
batch whose write fails is dropped, so delivery is at most once and, on one substream, in
order. Messages to a peer that is neither connected nor in the address book raise
:class:`~plait.messaging.PeerUnreachableError` at once.

Inbound. At most one inbound messaging substream per peer is read; a second one while the
first is active is reset at once (tari ``inbound.rs``). Frames become
:class:`InboundMessage` values (sender's key, a random local tag, the body) in one shared
queue, read through :meth:`Messaging.messages`. The queue is bounded in messages, in bytes
and per peer (:class:`~plait.messaging.MessagingConfig`); a peer whose messages reach a bound
is simply not read until the application catches up, and Yamux flow control then stalls the
sender, whose own queue fills. A frame above the maximum is a protocol violation (the peer is
banned for ``violation_ban_duration``); a peer that sends faster than ``max_message_rate``
beyond a burst of ``message_burst`` is flooding and is banned for ``flood_ban_duration`` (or
only disconnected).

Lifecycle. ``async with Messaging(node) as messaging:`` (inside ``async with node``) or, for
an owner with its own task group, ``await task_group.start(messaging.run)``. Leaving stops
the writers (queued messages are dropped), closes inbound substreams, unregisters the
protocol, wakes blocked senders with :class:`~plait.messaging.MessagingClosedError` and ends
:meth:`Messaging.messages` once the messages already received are read.
"""

from __future__ import annotations

import enum
import logging
import random
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, final

import anyio
import anyio.lowlevel

from ..errors import BanTier, PlaitError
from ..identity import NodeId, peer_key
from ..muxer import MuxedStream
from ..negotiation import PrefixedStream
from ..transport import Multiaddr, MultiaddrError, MultiaddrProtocol, TcpAddress, parse_address
from ._framing import MessageDecoder
from ._state import InboundBacklog, OutboundQueue, QueuedMessage, TokenBucket
from .config import MessagingConfig
from .errors import (
    MessageTooLargeError,
    MessagingClosedError,
    MessagingProtocolViolation,
    OutboundQueueFullError,
    PeerUnreachableError,
)

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

    from anyio.abc import ByteStream, TaskGroup, TaskStatus

    from ..node import Node, NodeEvents, PeerConnection

__all__ = ("InboundMessage", "InboundMessages", "Messaging", "MessagingStatistics")

logger = logging.getLogger(__name__)

_RECEIVE_SIZE = 65536  # bytes asked of the inbound substream per read
# What reaching a peer or writing to it may raise: typed plait errors (dial, upgrade,
# negotiation, muxer limits), OS-level failures and anyio's stream conditions.
_CONNECT_ERRORS = (
    PlaitError, OSError, TimeoutError, anyio.BrokenResourceError, anyio.ClosedResourceError,
    anyio.EndOfStream,
)
_STREAM_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class InboundMessage:
    """A message received from a peer."""

    public_key: bytes
    """The sender's 32-byte public key, authenticated by Noise: its identity."""
    tag: int
    """A random 64-bit tag given on arrival (tags are local, never on the wire)."""
    body: bytes
    """The message body, exactly as the sender passed it to ``send_message``."""

    @property
    def peer_id(self) -> str:
        """The sender's peer id (lower-case hex of its public key)."""
        return self.public_key.hex()

    @property
    def node_id(self) -> NodeId:
        """The sender's NodeId."""
        return NodeId.from_public_key(self.public_key)


class MessagingStatistics(NamedTuple):
    """A snapshot of a :class:`Messaging` service's state and counters."""

    outbound_peers: int
    """Peers with queued messages or a writer task."""
    queued: int
    """Messages waiting in outbound queues."""
    sent: int
    """Messages handed to a substream so far."""
    dropped: int
    """Messages dropped so far: the peer could not be reached, a write failed, or the
    service stopped with them queued."""
    inbound_streams: int
    """Inbound substreams being read (at most one per peer)."""
    pending: int
    """Received messages waiting for the application."""
    pending_bytes: int
    """Body bytes of the received messages waiting for the application."""
    received: int
    """Messages received so far."""
    floods: int
    """Peers cut off for flooding so far."""
    violations: int
    """Peers cut off for a protocol violation so far."""


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class _Peer:
    """Outbound state for one destination peer."""

    __slots__ = ("changed", "in_flight", "key", "peer_id", "queue", "wakeup", "writing")

    def __init__(self, key: bytes, config: MessagingConfig) -> None:
        self.key = key
        self.peer_id = key.hex()
        self.queue = OutboundQueue(
            max_messages=config.max_queued_messages,
            max_bytes=config.max_queued_bytes,
            batch_size=config.write_batch_size,
            max_message_size=config.max_message_size,
        )
        self.writing = False
        self.in_flight = 0  # messages of the batch being written
        self.wakeup: anyio.Event | None = None  # the idle writer waits on it
        self.changed = anyio.Event()  # set (and replaced) when room appears or work ends

    def notify(self) -> None:
        """Wake everyone waiting for room in the queue or for the queue to drain."""
        self.changed.set()
        self.changed = anyio.Event()

    @property
    def is_idle(self) -> bool:
        return not self.queue and not self.in_flight


@final
class InboundMessages:
    """An async iterator over received messages (made by :meth:`Messaging.messages`).

    Every iterator reads the one shared queue, so concurrent iterators share the messages
    out; iteration ends when the service stops and the queue is empty.
    """

    __slots__ = ("_messaging",)

    def __init__(self, messaging: Messaging) -> None:
        self._messaging = messaging

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> InboundMessage:
        try:
            return await self.receive()
        except MessagingClosedError:
            raise StopAsyncIteration from None

    async def receive(self) -> InboundMessage:
        """The next message, waiting for one.

        :raises MessagingClosedError: the service stopped and every message was read.
        """
        return await self._messaging._next_message()


class Messaging:
    """One-way messaging between the peers of a node (module docs).

    :param node: the node to attach to; it must be running when the service starts.
    :param config: limits and policies.
    """

    def __init__(self, node: Node, config: MessagingConfig | None = None) -> None:
        self._node = node
        self.config = config if config is not None else MessagingConfig()
        self._state = _State.NEW
        self._task_group: TaskGroup | None = None
        self._own_group: TaskGroup | None = None
        self._rng = random.Random()
        # outbound
        self._peers: dict[bytes, _Peer] = {}
        self._addresses: OrderedDict[bytes, list[str]] = OrderedDict()
        # inbound
        self._inbound: dict[bytes, anyio.CancelScope] = {}
        self._inbox: deque[InboundMessage] = deque()
        self._inbox_event: anyio.Event | None = None  # consumers wait on it
        self._room_event: anyio.Event | None = None  # readers wait on it for backlog room
        self._backlog = InboundBacklog(
            max_messages=self.config.max_pending_inbound,
            max_messages_per_peer=self.config.max_pending_inbound_per_peer,
            max_bytes=self.config.max_pending_inbound_bytes,
        )
        # counters
        self._sent = self._dropped = self._received = self._floods = self._violations = 0

    def __repr__(self) -> str:
        return (f"<Messaging {self.config.protocol_id.decode(errors='replace')} "
                f"{self._state.value} peers={len(self._peers)} pending={len(self._inbox)}>")

    @property
    def node(self) -> Node:
        return self._node

    @property
    def is_running(self) -> bool:
        return self._state is _State.RUNNING

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        try:
            await task_group.start(self.run)
        except BaseException:
            task_group.cancel_scope.cancel()
            await task_group.__aexit__(None, None, None)
            raise
        self._own_group = task_group
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        # The body's own exception propagates as it is (not wrapped in an exception group):
        # the service's task group is only stopped here.
        assert self._own_group is not None
        self._own_group.cancel_scope.cancel()
        await self._own_group.__aexit__(None, None, None)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve the messaging protocol until cancelled (``task_group.start(messaging.run)``).

        :raises RuntimeError: the service was already started.
        :raises ValueError: the node already serves the messaging protocol id.
        """
        if self._state is not _State.NEW:
            raise RuntimeError("a Messaging service can be started only once")
        node = self._node
        node.add_protocol(self.config.protocol_id, self._handle_inbound)
        events = node.events()
        try:
            async with anyio.create_task_group() as task_group:
                self._task_group = task_group
                for conn in node.connections:
                    self._learn(conn)
                task_group.start_soon(self._watch_events, events)
                self._state = _State.RUNNING
                task_status.started()
                try:
                    await anyio.sleep_forever()
                finally:
                    self._stop()  # before the writers are cancelled: no new ones start
        finally:
            self._state = _State.CLOSED
            try:
                node.remove_protocol(self.config.protocol_id)
            except KeyError:
                pass
            with anyio.CancelScope(shield=True):
                await events.aclose()

    def _stop(self) -> None:
        """Mark the service closed and wake or cancel everything waiting on it."""
        self._state = _State.CLOSED
        for peer in self._peers.values():
            self._dropped += len(peer.queue.clear())
            peer.notify()
            if peer.wakeup is not None:
                peer.wakeup.set()
        self._peers.clear()
        for scope in self._inbound.values():
            scope.cancel()
        for event in (self._inbox_event, self._room_event):
            if event is not None:
                event.set()

    def _check_running(self) -> None:
        if self._state is not _State.RUNNING:
            raise MessagingClosedError(f"the messaging service is {self._state.value}")

    # ------------------------------------------------------------------ addresses

    def add_address(self, peer_id: str | bytes, address: str) -> None:
        """Remember an address to dial ``peer_id`` at when a message is sent to it while it
        is not connected. The most recently added address is tried first.

        :param address: ``tcp://HOST:PORT``, ``memory://NAME`` or a multiaddr
            (``/ip4/1.2.3.4/tcp/7000``, ``/dns4/…``, ``/ip6/…``).
        :raises ValueError: a malformed peer id or address.
        """
        key = peer_key(peer_id)
        dialable = _dialable(address)
        if dialable is None:
            raise ValueError(f"cannot dial {address!r}")
        self._remember(key, dialable)

    def addresses(self, peer_id: str | bytes) -> tuple[str, ...]:
        """The known addresses of ``peer_id``, most recent first."""
        return tuple(reversed(self._addresses.get(peer_key(peer_id), ())))

    def _remember(self, key: bytes, address: str) -> None:
        known = self._addresses.get(key)
        if known is None:
            known = self._addresses[key] = []
            while len(self._addresses) > self.config.max_known_peers:
                self._addresses.popitem(last=False)
        else:
            self._addresses.move_to_end(key)
            if address in known:
                known.remove(address)
        known.append(address)
        del known[: -self.config.max_known_addresses]

    def _learn(self, conn: PeerConnection) -> None:
        """Record what a connection tells about reaching its peer."""
        from ..node import ConnectionDirection

        for multiaddr in conn.identity.addresses:
            dialable = _multiaddr_to_address(multiaddr)
            if dialable is not None:
                self._remember(conn.public_key, dialable)
        if conn.direction is ConnectionDirection.OUTBOUND:
            self._remember(conn.public_key, conn.address)  # dialled and worked: try it first

    async def _watch_events(self, events: NodeEvents) -> None:
        from ..node import PeerConnected

        async for event in events:
            if isinstance(event, PeerConnected):
                self._learn(event.connection)

    # ------------------------------------------------------------------ sending

    async def send_message(
        self,
        peer_id: str | bytes,
        body: bytes,
        *,
        tag: int | None = None,
        block: bool | None = None,
    ) -> int:
        """Queue ``body`` for ``peer_id``; return the message's local tag.

        The peer's connection is used, or made through a known address (:meth:`add_address`,
        or learnt from earlier connections). Returning means queued, not delivered.

        :param peer_id: the destination's peer id (hex) or 32-byte public key.
        :param body: the message, sent unchanged as one frame.
        :param tag: a local tag to identify the message by (a random 64-bit one if ``None``);
            never sent.
        :param block: when the queue is full, wait for room (True) or raise (False);
            ``None`` uses ``MessagingConfig.block_when_full``.
        :raises MessageTooLargeError: ``body`` is above ``max_message_size`` (nothing is
            queued).
        :raises OutboundQueueFullError: the queue is full and the call may not wait.
        :raises PeerUnreachableError: the peer is not connected and no address is known.
        :raises MessagingClosedError: the service is not running (or stopped while waiting).
        :raises ValueError: a malformed peer id, or our own.
        """
        self._check_running()
        key = peer_key(peer_id)
        if key == self._node.public_key:
            raise ValueError("cannot send a message to ourselves")
        body = bytes(body)
        if len(body) > self.config.max_message_size:
            raise MessageTooLargeError(len(body), self.config.max_message_size)
        if tag is None:
            tag = self._rng.getrandbits(64)
        message = QueuedMessage(tag, body)
        wait = self.config.block_when_full if block is None else block
        while True:
            peer = self._peers.get(key)
            if peer is None:
                if not self._is_reachable(key):
                    raise PeerUnreachableError(key.hex())
                peer = self._peers[key] = _Peer(key, self.config)
            if peer.queue.push(message):
                break
            if not wait:
                raise OutboundQueueFullError(peer.peer_id)
            await peer.changed.wait()
            self._check_running()
        if not peer.writing:
            peer.writing = True
            assert self._task_group is not None
            self._task_group.start_soon(self._run_writer, peer)
        elif peer.wakeup is not None:
            peer.wakeup.set()
        return tag

    async def flush(self, peer_id: str | bytes | None = None) -> None:
        """Wait until every message queued so far for ``peer_id`` (every peer if ``None``)
        has been handed to its substream or dropped."""
        keys = list(self._peers) if peer_id is None else [peer_key(peer_id)]
        for key in keys:
            while True:
                peer = self._peers.get(key)
                if peer is None or peer.is_idle:
                    break
                await peer.changed.wait()
        await anyio.lowlevel.checkpoint()

    def _is_reachable(self, key: bytes) -> bool:
        conn = self._node.get_connection(key)
        return (conn is not None and conn.is_connected) or bool(self._addresses.get(key))

    async def _run_writer(self, peer: _Peer) -> None:
        """Deliver ``peer``'s queue: reach the peer, open the substream, write (module docs)."""
        attempts = 0
        try:
            while peer.queue and self._state is _State.RUNNING:
                failure: BaseException | str
                try:
                    conn = await self._connect(peer.key)
                    stream = await conn.open_substream(self.config.protocol_id)
                except MessagingClosedError as exc:
                    # the node is shutting down: no attempt can succeed; drop quietly
                    dropped = len(peer.queue.clear())
                    self._dropped += dropped
                    logger.debug("messaging: dropped %d message(s) for %s: %s",
                                 dropped, peer.peer_id[:16], exc)
                    break
                except _CONNECT_ERRORS as exc:
                    failure = exc
                else:
                    if await self._pump(peer, conn, stream):
                        attempts = 0
                        continue
                    failure = "the substream failed"
                attempts += 1
                logger.debug("messaging: reaching %s failed (attempt %d): %r",
                             peer.peer_id[:16], attempts, failure)
                if attempts >= self.config.max_connect_attempts:
                    dropped = len(peer.queue.clear())
                    self._dropped += dropped
                    logger.warning("messaging: dropped %d message(s) for %s: %s",
                                   dropped, peer.peer_id[:16], failure)
                    break
        finally:
            peer.writing = False
            if not peer.queue and self._peers.get(peer.key) is peer:
                del self._peers[peer.key]
            peer.notify()

    async def _connect(self, key: bytes) -> PeerConnection:
        conn = self._node.get_connection(key)
        if conn is not None and conn.is_connected:
            return conn
        addresses = self._addresses.get(key)
        if not addresses:
            raise PeerUnreachableError(key.hex())
        error: BaseException | None = None
        for address in reversed(list(addresses)):
            try:
                conn = await self._node.dial(address, peer_id=key)
            except RuntimeError as exc:  # the node is shutting down (or was never entered)
                raise MessagingClosedError(f"cannot dial: {exc}") from exc
            except _CONNECT_ERRORS as exc:
                error = exc
                continue
            self._remember(key, address)
            return conn
        assert error is not None
        raise error

    async def _pump(self, peer: _Peer, conn: PeerConnection, stream: ByteStream) -> bool:
        """Write ``peer``'s queue to ``stream`` until it fails or the peer ends it; return
        whether anything was written."""
        wrote = False
        try:
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(self._watch_outbound, stream, task_group.cancel_scope)
                while True:
                    batch = peer.queue.next_batch()
                    if batch is None:
                        peer.notify()  # drained: wake flush()
                        event = peer.wakeup = anyio.Event()
                        await event.wait()
                        peer.wakeup = None
                        if self._state is not _State.RUNNING:
                            break
                        continue
                    if not conn.is_connected:  # nothing written yet: keep them for the next
                        peer.queue.push_front(batch.messages)
                        break
                    peer.in_flight = len(batch.messages)
                    peer.notify()  # room in the queue
                    try:
                        for piece in batch.pieces:
                            await stream.send(piece)
                    except _STREAM_ERRORS as exc:
                        logger.debug("messaging: writing to %s failed: %r", peer.peer_id[:16],
                                     exc)
                        break
                    self._sent += peer.in_flight
                    peer.in_flight = 0
                    wrote = True
                task_group.cancel_scope.cancel()
        finally:
            if peer.in_flight:  # a batch was cut short: at most once, so it is lost
                self._dropped += peer.in_flight
                peer.in_flight = 0
            peer.wakeup = None
            with anyio.CancelScope(shield=True):
                await stream.aclose()
        return wrote

    async def _watch_outbound(self, stream: ByteStream, scope: anyio.CancelScope) -> None:
        """End the writer when the receiver sends anything or closes (tari ``outbound.rs``)."""
        try:
            await stream.receive(1)
        except _STREAM_ERRORS:
            pass
        scope.cancel()

    # ------------------------------------------------------------------ receiving

    def messages(self) -> InboundMessages:
        """An async iterator over received messages (``async for message in ...``)."""
        return InboundMessages(self)

    async def _next_message(self) -> InboundMessage:
        while not self._inbox:
            if self._state is _State.CLOSED:
                raise MessagingClosedError("the messaging service stopped")
            event = self._inbox_event
            if event is None:
                event = self._inbox_event = anyio.Event()
            await event.wait()
            if self._inbox_event is event:
                self._inbox_event = None
        message = self._inbox.popleft()
        self._backlog.release(message.public_key, len(message.body))
        if self._room_event is not None:
            self._room_event.set()
            self._room_event = None
        return message

    async def _handle_inbound(self, conn: PeerConnection, stream: ByteStream) -> None:
        """The node's handler for an inbound messaging substream."""
        key = conn.public_key
        if self._state is not _State.RUNNING or key in self._inbound:
            logger.debug("messaging: resetting an extra inbound substream from %s",
                         conn.node_id.short)
            await _reset(stream)
            return
        scope = self._inbound[key] = anyio.CancelScope()
        try:
            with scope:
                await self._read_inbound(conn, stream)
        finally:
            if self._inbound.get(key) is scope:
                del self._inbound[key]

    async def _read_inbound(self, conn: PeerConnection, stream: ByteStream) -> None:
        key = conn.public_key
        config = self.config
        decoder = MessageDecoder(config.max_message_size)
        bucket = TokenBucket(config.max_message_rate, config.message_burst,
                             anyio.current_time())
        while True:
            if not await self._wait_for_room(key):
                return
            try:
                chunk = await stream.receive(_RECEIVE_SIZE)
            except anyio.EndOfStream:
                try:
                    decoder.end_of_stream()
                except MessagingProtocolViolation as exc:
                    self._offence(conn, exc)
                return
            except _STREAM_ERRORS:
                return
            try:
                bodies = decoder.feed(chunk)
            except MessagingProtocolViolation as exc:
                self._offence(conn, exc)
                return
            now = anyio.current_time()
            for body in bodies:
                if not bucket.take(now):
                    self._flood(conn)
                    return
                if not await self._wait_for_room(key):
                    return
                self._backlog.admit(key, len(body))
                self._inbox.append(InboundMessage(
                    public_key=key, tag=self._rng.getrandbits(64), body=body
                ))
                self._received += 1
                if self._inbox_event is not None:
                    self._inbox_event.set()

    async def _wait_for_room(self, key: bytes) -> bool:
        """Wait until one more message of ``key`` may be held; False if the service
        stopped."""
        while not self._backlog.can_admit(key):
            if self._state is not _State.RUNNING:
                return False
            event = self._room_event
            if event is None:
                event = self._room_event = anyio.Event()
            await event.wait()
        return self._state is _State.RUNNING

    def _offence(self, conn: PeerConnection, error: MessagingProtocolViolation) -> None:
        if error.ban is BanTier.NONE:
            logger.debug("messaging: inbound substream from %s ended: %s",
                         conn.node_id.short, error)
            return
        self._violations += 1
        logger.warning("messaging: %s broke the protocol: %s", conn.node_id.short, error)
        self._cut_off(conn, self.config.violation_ban_duration)

    def _flood(self, conn: PeerConnection) -> None:
        self._floods += 1
        logger.warning("messaging: %s sends over %s messages/s (burst %d): disconnecting",
                       conn.node_id.short, self.config.max_message_rate,
                       self.config.message_burst)
        self._cut_off(conn, self.config.flood_ban_duration)

    def _cut_off(self, conn: PeerConnection, ban_duration: float | None) -> None:
        if ban_duration is not None:
            self._node.ban(conn.public_key, ban_duration)  # drops the connection too
        elif self._task_group is not None:
            # not awaited here: disconnect() waits for this very handler to finish
            self._task_group.start_soon(conn.disconnect)

    # ------------------------------------------------------------------ statistics

    def statistics(self) -> MessagingStatistics:
        """A snapshot of the service's state and counters."""
        return MessagingStatistics(
            outbound_peers=len(self._peers),
            queued=sum(len(peer.queue) for peer in self._peers.values()),
            sent=self._sent,
            dropped=self._dropped,
            inbound_streams=len(self._inbound),
            pending=self._backlog.messages,
            pending_bytes=self._backlog.size,
            received=self._received,
            floods=self._floods,
            violations=self._violations,
        )

    def pending_from(self, peer_id: str | bytes) -> int:
        """Received messages of ``peer_id`` waiting for the application."""
        return self._backlog.pending_for(peer_key(peer_id))


# --------------------------------------------------------------------------- helpers


def _dialable(address: str) -> str | None:
    """``address`` in the form ``Node.dial`` takes, or ``None``.

    :raises ValueError: a malformed address.
    """
    if address.startswith("/"):
        try:
            return _multiaddr_to_address(Multiaddr.from_string(address))
        except MultiaddrError as exc:
            raise ValueError(str(exc)) from exc
    return str(parse_address(address))


def _multiaddr_to_address(multiaddr: Multiaddr) -> str | None:
    """``tcp://HOST:PORT`` for an ``/ip4|ip6|dns4|dns6|dnsaddr/<host>/tcp/<port>`` multiaddr;
    ``None`` for anything else (onion, memory, unspecified IPs, port 0)."""
    components = multiaddr.components
    if len(components) != 2:
        return None
    (code, host), (tcp, port) = components
    if tcp is not MultiaddrProtocol.TCP or not isinstance(port, int) or port == 0:
        return None
    if code in (MultiaddrProtocol.IP4, MultiaddrProtocol.IP6):
        text = str(host)
    elif code in (MultiaddrProtocol.DNS4, MultiaddrProtocol.DNS6, MultiaddrProtocol.DNSADDR):
        text = str(host)
    else:
        return None
    try:
        address = TcpAddress(text, port)
    except ValueError:
        return None
    ip = address.ip
    if ip is not None and ip.is_unspecified:
        return None
    return str(address)


async def _reset(stream: ByteStream) -> None:
    """Abort a negotiated substream with a Yamux RST (or close it if it is not one)."""
    inner = stream.transport_stream if isinstance(stream, PrefixedStream) else stream
    if isinstance(inner, MuxedStream):
        await inner.reset()
    else:
        await stream.aclose()

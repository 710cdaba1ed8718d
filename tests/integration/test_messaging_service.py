"""Messaging between nodes over real TCP on 127.0.0.1 (wire.md §4; issue: messaging protocol)."""

from __future__ import annotations

import dataclasses
import os
import struct
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import pytest
from plait.identity import NodeIdentity
from plait.messaging import (
    MAX_MESSAGE_SIZE,
    MESSAGING_PROTOCOL_ID,
    InboundMessage,
    MessageTooLargeError,
    Messaging,
    MessagingClosedError,
    MessagingConfig,
    OutboundQueueFullError,
    PeerUnreachableError,
)
from plait.muxer import StreamResetError
from plait.node import Node, NodeConfig, NodeEvents, PeerDisconnected
from support.waiting import wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.anyio

TCP = "tcp://127.0.0.1:0"


@dataclasses.dataclass
class Peer:
    node: Node
    messaging: Messaging
    address: str


@asynccontextmanager
async def peers(
    count: int, *configs: MessagingConfig | None, node_config: NodeConfig | None = None
) -> AsyncIterator[list[Peer]]:
    """``count`` listening nodes with messaging; ``configs[i]`` configures peer ``i``."""
    async with AsyncExitStack() as stack:
        result = []
        for i in range(count):
            node = await stack.enter_async_context(Node(NodeIdentity.generate(), node_config))
            config = configs[i] if i < len(configs) else None
            messaging = await stack.enter_async_context(Messaging(node, config))
            result.append(Peer(node, messaging, await node.listen(TCP)))
        yield result


def introduce(sender: Peer, *receivers: Peer) -> None:
    for receiver in receivers:
        sender.messaging.add_address(receiver.node.peer_id, receiver.address)


async def receive(peer: Peer, count: int, timeout: float = 20.0) -> list[InboundMessage]:
    got: list[InboundMessage] = []
    if count == 0:
        return got
    with anyio.fail_after(timeout):
        async for message in peer.messaging.messages():
            got.append(message)
            if len(got) == count:
                break
    return got




async def next_disconnect(events: NodeEvents, timeout: float = 10.0) -> PeerDisconnected:
    with anyio.fail_after(timeout):
        async for event in events:
            if isinstance(event, PeerDisconnected):
                return event
    raise AssertionError("the event stream ended")


async def test_messages_arrive_in_order_with_the_senders_identity() -> None:
    async with peers(2) as (a, b):
        introduce(a, b)
        bodies = [os.urandom(i * 37 % 5000) for i in range(300)]
        tags = [await a.messaging.send_message(b.node.peer_id, body) for body in bodies]
        assert len(set(tags)) == len(tags)  # random 64-bit local tags
        assert await a.messaging.send_message(b.node.public_key, b"tagged", tag=7) == 7
        got = await receive(b, len(bodies) + 1)
        assert [m.body for m in got] == [*bodies, b"tagged"]
        assert {m.public_key for m in got} == {a.node.public_key}
        assert got[0].peer_id == a.node.peer_id
        assert got[0].node_id == a.node.node_id
        await a.messaging.flush()
        stats = a.messaging.statistics()
        assert stats.sent == len(bodies) + 1
        assert stats.dropped == 0 and stats.queued == 0
        assert b.messaging.statistics().received == len(bodies) + 1
        assert b.messaging.statistics().pending == 0


async def test_both_directions_use_one_connection() -> None:
    async with peers(2) as (a, b):
        introduce(a, b)
        await a.messaging.send_message(b.node.peer_id, b"ping")
        (first,) = await receive(b, 1)
        # b learnt nothing by address, but a is connected: it replies on that connection
        await b.messaging.send_message(first.peer_id, b"pong")
        (reply,) = await receive(a, 1)
        assert reply.body == b"pong" and reply.public_key == b.node.public_key
        assert len(a.node.connections) == len(b.node.connections) == 1


async def test_ten_peers_send_a_thousand_messages_each_exactly_once() -> None:
    async with peers(11) as everyone:
        hub, senders = everyone[0], everyone[1:]
        per_peer = 1000

        async def send_all(peer: Peer) -> None:
            introduce(peer, hub)
            for i in range(per_peer):
                await peer.messaging.send_message(hub.node.peer_id, struct.pack(">I", i) * 4)

        async with anyio.create_task_group() as task_group:
            for peer in senders:
                task_group.start_soon(send_all, peer)
            got = await receive(hub, per_peer * len(senders), timeout=60)
        by_sender: dict[bytes, list[int]] = {}
        for message in got:
            by_sender.setdefault(message.public_key, []).append(
                struct.unpack(">I", message.body[:4])[0]
            )
        assert set(by_sender) == {peer.node.public_key for peer in senders}
        for sequence in by_sender.values():
            assert sequence == list(range(per_peer))  # each exactly once, in order
        for peer in senders:
            await peer.messaging.flush()
            assert peer.messaging.statistics().sent == per_peer
        stats = hub.messaging.statistics()
        assert stats.received == per_peer * len(senders)
        assert stats.pending == 0
        assert stats.inbound_streams == len(senders)  # one inbound substream per peer


async def test_a_message_of_the_maximum_size_is_delivered() -> None:
    async with peers(2) as (a, b):
        introduce(a, b)
        body = os.urandom(MAX_MESSAGE_SIZE)
        await a.messaging.send_message(b.node.peer_id, body)
        await a.messaging.send_message(b.node.peer_id, b"after")
        got = await receive(b, 2)
        assert got[0].body == body
        assert got[1].body == b"after"


async def test_an_oversize_message_is_refused_and_nothing_is_sent() -> None:
    async with peers(2) as (a, b):
        introduce(a, b)
        with pytest.raises(MessageTooLargeError) as info:
            await a.messaging.send_message(b.node.peer_id, bytes(MAX_MESSAGE_SIZE + 1))
        assert (info.value.size, info.value.limit) == (MAX_MESSAGE_SIZE + 1, MAX_MESSAGE_SIZE)
        assert a.messaging.statistics().queued == 0
        assert a.node.connections == ()  # not even dialled
        await a.messaging.send_message(b.node.peer_id, b"small")
        (only,) = await receive(b, 1)
        assert only.body == b"small"  # the first and only thing delivered
        await a.messaging.flush()
        assert a.messaging.statistics().sent == 1


async def test_a_smaller_configured_maximum_applies_to_both_sides() -> None:
    small = MessagingConfig(max_message_size=100, max_queued_bytes=100)
    async with peers(2, small, small) as (a, b):
        introduce(a, b)
        with pytest.raises(MessageTooLargeError):
            await a.messaging.send_message(b.node.peer_id, bytes(101))
        await a.messaging.send_message(b.node.peer_id, bytes(100))
        assert [m.body for m in await receive(b, 1)] == [bytes(100)]


async def test_an_oversize_frame_from_a_peer_bans_it_and_delivers_nothing() -> None:
    async with peers(1) as (b,), Node(NodeIdentity.generate()) as raw:
        events = raw.events()
        conn = await raw.dial(b.address, peer_id=b.node.peer_id)
        stream = await conn.open_substream(MESSAGING_PROTOCOL_ID)
        await stream.send(struct.pack(">I", 1) + b"x" + struct.pack(">I", MAX_MESSAGE_SIZE + 1))
        disconnected = await next_disconnect(events)
        assert disconnected.connection is conn
        assert b.node.is_banned(raw.peer_id)
        stats = b.messaging.statistics()
        assert stats.violations == 1
        # the good frame in front of the bad header may or may not have been delivered,
        # but nothing of the oversize one is held
        assert stats.pending_bytes <= 1


async def test_a_truncated_frame_is_dropped_without_a_ban() -> None:
    async with peers(1) as (b,), Node(NodeIdentity.generate()) as raw:
        conn = await raw.dial(b.address, peer_id=b.node.peer_id)
        stream = await conn.open_substream(MESSAGING_PROTOCOL_ID)
        await stream.send(struct.pack(">I", 10) + b"12345")
        await stream.send_eof()
        await wait_until(lambda: b.messaging.statistics().inbound_streams == 0)
        assert not b.node.is_banned(raw.peer_id)
        assert conn.is_connected
        stats = b.messaging.statistics()
        assert (stats.received, stats.violations) == (0, 0)


async def test_a_second_inbound_substream_from_a_peer_is_reset() -> None:
    async with peers(2) as (a, b):
        introduce(a, b)
        await a.messaging.send_message(b.node.peer_id, b"first")
        await receive(b, 1)
        conn = a.node.get_connection(b.node.peer_id)
        assert conn is not None
        extra = await conn.open_substream(MESSAGING_PROTOCOL_ID)
        await extra.send(struct.pack(">I", 5) + b"extra")
        with anyio.fail_after(10), pytest.raises(StreamResetError):
            await extra.receive()
        await a.messaging.send_message(b.node.peer_id, b"second")
        (message,) = await receive(b, 1)
        assert message.body == b"second"  # the extra substream's frame was never delivered
        assert b.messaging.statistics().received == 2


async def test_full_queue_raises_when_the_sender_may_not_wait() -> None:
    sender = MessagingConfig(max_queued_messages=4, block_when_full=False)
    receiver = MessagingConfig(max_pending_inbound_per_peer=2)
    async with peers(2, sender, receiver) as (a, b):
        introduce(a, b)
        body = bytes(32 * 1024)
        accepted = 0
        refusals = 0

        def stalled() -> bool:
            return (a.messaging.statistics().queued == 4
                    and b.messaging.pending_from(a.node.peer_id) == 2)

        # nobody reads at b: b stops reading at 2 pending, Yamux stalls a, a's queue fills
        with anyio.fail_after(30):
            while not stalled():
                try:
                    await a.messaging.send_message(b.node.peer_id, struct.pack(">I", accepted)
                                                   + body)
                except OutboundQueueFullError as exc:
                    assert exc.peer_id == b.node.peer_id
                    refusals += 1
                    await anyio.sleep(0.01)  # the writer is busy: let it drain
                else:
                    accepted += 1
        with pytest.raises(OutboundQueueFullError):
            await a.messaging.send_message(b.node.peer_id, b"no room")
        assert accepted > 4 + 2  # the queue, b's backlog and the Yamux window filled
        got = await receive(b, accepted)
        assert [struct.unpack(">I", m.body[:4])[0] for m in got] == list(range(accepted))
        await a.messaging.send_message(b.node.peer_id, b"room again", block=False)
        assert [m.body for m in await receive(b, 1)] == [b"room again"]


async def test_full_queue_blocks_the_sender_until_the_receiver_reads() -> None:
    sender = MessagingConfig(max_queued_messages=4)  # block_when_full=True by default
    receiver = MessagingConfig(max_pending_inbound_per_peer=2)
    async with peers(2, sender, receiver) as (a, b):
        introduce(a, b)
        total = 200
        sent = 0
        done = anyio.Event()

        async def send_all() -> None:
            nonlocal sent
            for i in range(total):
                await a.messaging.send_message(b.node.peer_id, struct.pack(">I", i) * 8192)
                sent += 1
            done.set()

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(send_all)
            await wait_until(lambda: a.messaging.statistics().queued == 4
                           and b.messaging.pending_from(a.node.peer_id) == 2)
            stalled_at = sent
            with anyio.move_on_after(0.3):
                await done.wait()
            assert not done.is_set()
            assert sent == stalled_at < total  # blocked, not slow
            with pytest.raises(OutboundQueueFullError):  # a call may choose not to wait
                await a.messaging.send_message(b.node.peer_id, b"x", block=False)
            got = await receive(b, total)
            await done.wait()
        assert [struct.unpack(">I", m.body[:4])[0] for m in got] == list(range(total))


async def test_messages_to_a_known_address_dial_and_redial_after_a_disconnect() -> None:
    async with peers(2) as (a, b):
        introduce(a, b)
        assert a.messaging.addresses(b.node.peer_id) == (b.address,)
        await a.messaging.send_message(b.node.peer_id, b"one")  # dials
        assert [m.body for m in await receive(b, 1)] == [b"one"]
        first = a.node.get_connection(b.node.peer_id)
        assert first is not None
        events = a.node.events()
        b_side = b.node.get_connection(a.node.peer_id)
        assert b_side is not None
        await b_side.disconnect()
        await next_disconnect(events)
        await a.messaging.send_message(b.node.peer_id, b"two")  # redials
        assert [m.body for m in await receive(b, 1)] == [b"two"]
        second = a.node.get_connection(b.node.peer_id)
        assert second is not None and second is not first
        await a.messaging.flush()
        assert a.messaging.statistics().dropped == 0


async def test_a_peer_is_reachable_through_addresses_learnt_from_connections() -> None:
    async with peers(2) as (a, b):
        await b.node.dial(a.address)  # inbound to a: a learns b's advertised address
        await wait_until(lambda: bool(a.messaging.addresses(b.node.peer_id)))
        assert a.messaging.addresses(b.node.peer_id) == (b.address,)
        conn = a.node.get_connection(b.node.peer_id)
        assert conn is not None
        await conn.disconnect()
        await a.messaging.send_message(b.node.peer_id, b"found you")
        assert [m.body for m in await receive(b, 1)] == [b"found you"]


async def test_an_unknown_peer_is_unreachable_and_an_unreachable_one_drops_its_queue() -> None:
    async with peers(1) as (a,):
        stranger = NodeIdentity.generate().peer_id
        with pytest.raises(PeerUnreachableError):
            await a.messaging.send_message(stranger, b"?")
        with pytest.raises(ValueError, match="ourselves"):
            await a.messaging.send_message(a.node.peer_id, b"me")
        with pytest.raises(ValueError):
            await a.messaging.send_message("nothex", b"x")
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        await listener.aclose()  # nothing listens there any more
        a.messaging.add_address(stranger, f"tcp://127.0.0.1:{port}")
        await a.messaging.send_message(stranger, b"lost")
        await a.messaging.flush(stranger)
        stats = a.messaging.statistics()
        assert (stats.dropped, stats.sent, stats.outbound_peers) == (1, 0, 0)


async def test_a_flooding_peer_is_disconnected_and_banned() -> None:
    strict = MessagingConfig(max_message_rate=5.0, message_burst=20)
    async with peers(2, None, strict) as (a, b):
        introduce(a, b)
        events = a.node.events()
        for i in range(200):
            await a.messaging.send_message(b.node.peer_id, b"%d" % i)
        await next_disconnect(events)
        assert b.node.is_banned(a.node.peer_id)
        stats = b.messaging.statistics()
        assert stats.floods == 1
        assert stats.received <= 20  # at most the burst got through


async def test_flooding_without_a_ban_only_disconnects() -> None:
    lenient = MessagingConfig(max_message_rate=5.0, message_burst=5, flood_ban_duration=None)
    async with peers(2, None, lenient) as (a, b):
        introduce(a, b)
        events = a.node.events()
        for i in range(50):
            await a.messaging.send_message(b.node.peer_id, b"%d" % i)
        await next_disconnect(events)
        assert not b.node.is_banned(a.node.peer_id)
        assert b.messaging.statistics().floods == 1


async def test_stopping_ends_iteration_and_refuses_sends() -> None:
    async with Node(NodeIdentity.generate()) as node:
        messaging = Messaging(node)
        with pytest.raises(MessagingClosedError):
            await messaging.send_message(NodeIdentity.generate().peer_id, b"early")
        async with messaging:
            assert MESSAGING_PROTOCOL_ID in node.protocols
            assert messaging.is_running
            with pytest.raises(RuntimeError):
                await messaging.run()
        assert MESSAGING_PROTOCOL_ID not in node.protocols
        assert not messaging.is_running
        with pytest.raises(MessagingClosedError):
            await messaging.send_message(NodeIdentity.generate().peer_id, b"late")
        with anyio.fail_after(5):
            assert [m async for m in messaging.messages()] == []


async def test_an_error_in_the_body_propagates_unwrapped() -> None:
    async with Node(NodeIdentity.generate()) as node:
        with pytest.raises(KeyError, match="boom"):
            async with Messaging(node):
                raise KeyError("boom")
        assert MESSAGING_PROTOCOL_ID not in node.protocols
        node.add_protocol(MESSAGING_PROTOCOL_ID, lambda conn, stream: anyio.sleep(0))
        with pytest.raises(ValueError, match="already registered"):
            async with Messaging(node):
                pass


async def test_messages_received_before_stopping_can_still_be_read() -> None:
    async with peers(1) as (a,), Node(NodeIdentity.generate()) as node:
        async with Messaging(node) as messaging:
            a.messaging.add_address(node.peer_id, await node.listen(TCP))
            await a.messaging.send_message(node.peer_id, b"kept")
            await wait_until(lambda: messaging.statistics().pending == 1)
        with anyio.fail_after(5):
            assert [m.body async for m in messaging.messages()] == [b"kept"]


async def test_a_custom_protocol_id_is_negotiated() -> None:
    custom = MessagingConfig(protocol_id=b"/my-app/msg/1")
    async with peers(2, custom, custom) as (a, b):
        introduce(a, b)
        assert b"/my-app/msg/1" in b.node.protocols
        assert MESSAGING_PROTOCOL_ID not in b.node.protocols
        await a.messaging.send_message(b.node.peer_id, b"custom")
        assert [m.body for m in await receive(b, 1)] == [b"custom"]


async def test_a_node_closing_under_a_running_service_drops_its_queue_quietly() -> None:
    receiver = MessagingConfig(max_pending_inbound_per_peer=1)
    async with peers(1, receiver) as (b,), anyio.create_task_group() as task_group:
        node = Node(NodeIdentity.generate())
        messaging = Messaging(node)
        async with node:
            await task_group.start(messaging.run)  # hosted outside the node, as an owner may
            introduce(Peer(node, messaging, ""), b)
            for i in range(40):  # b holds one, the windows some, the queue the rest
                await messaging.send_message(b.node.peer_id, bytes([i]) * 65536)
            await wait_until(lambda: b.messaging.pending_from(node.peer_id) == 1)
        # the node is gone: the writer cannot redial and gives up instead of failing
        await wait_until(lambda: messaging.statistics().outbound_peers == 0)
        stats = messaging.statistics()
        assert stats.sent + stats.dropped == 40
        assert stats.dropped > 0
        task_group.cancel_scope.cancel()
    assert not messaging.is_running

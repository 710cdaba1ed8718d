"""Node.send_message / Node.messages: the messaging service a node runs when
``NodeConfig.messaging`` is set (wire.md §4), over TCP on 127.0.0.1."""

from __future__ import annotations

import anyio
import pytest
from plait import Node, NodeConfig, NodeIdentity
from plait.messaging import MessagingClosedError, MessagingConfig

pytestmark = pytest.mark.anyio


async def test_send_message_and_messages_through_the_node() -> None:
    config = NodeConfig(messaging=MessagingConfig())
    with anyio.fail_after(20):
        async with Node(NodeIdentity.generate(), config) as alice, \
                Node(NodeIdentity.generate(), config) as bob:
            address = await bob.listen("tcp://127.0.0.1:0")
            alice.messaging.add_address(bob.peer_id, address)
            # not connected yet: the first message dials the known address
            for i in range(50):
                await alice.send_message(bob.peer_id, b"msg %d" % i)
            received = []
            async for message in bob.messages():
                received.append(message)
                if len(received) == 50:
                    break
            assert [m.body for m in received] == [b"msg %d" % i for i in range(50)]
            assert {m.peer_id for m in received} == {alice.peer_id}
            # and back over the same connection
            await bob.send_message(alice.peer_id, b"reply")
            async for message in alice.messages():
                assert (message.peer_id, message.body) == (bob.peer_id, b"reply")
                break
            assert len(alice.connections) == 1


async def test_send_message_without_messaging_is_a_clear_error() -> None:
    with anyio.fail_after(10):
        async with Node(NodeIdentity.generate()) as alice:
            assert b"t/msg/0.1" not in alice.protocols
            with pytest.raises(MessagingClosedError):
                await alice.send_message("00" * 32, b"x")

"""Adversarial input to one-way messaging (wire.md §4; hardening.md §1.8 tari #5731, §5
rule 1), crafted inside a real Noise channel (YMX) against a node with messaging on.

The §3 catalogue has no messaging rows; these cases follow its shape for the messaging
limits:

- an oversize frame header (8 MiB + 1, and 0xFFFFFFFF) → ``test_oversize_frame_header_bans_before_allocating``
- a second inbound messaging substream while one is active (tari #5731) →
  ``test_second_inbound_substream_is_reset``
- a message flood above rate and burst → ``test_flood_is_banned``
- a frame cut short by the end of the stream → ``test_truncated_frame_costs_only_the_stream``
- an application that does not read: per-peer bound, the sender stalls → ``test_unread_messages_stall_only_that_peer``
"""

from __future__ import annotations

import anyio
import pytest
from plait.messaging import MessagingConfig
from plait.messaging.config import MESSAGING_PROTOCOL_ID
from plait.node import DisconnectReason, NodeConfig, PeerConnected, PeerConnection, PeerDisconnected
from support.adversary import (
    NoiseYamux,
    assert_idle,
    bystander,
    listening_node,
    next_event,
    traced_peak,
    wait_until,
)
from support.yamux_raw import DATA, FIN, SYN, WINDOW_UPDATE, frame

pytestmark = [pytest.mark.anyio, pytest.mark.network]

PROPOSAL = bytes([len(MESSAGING_PROTOCOL_ID), 0]) + MESSAGING_PROTOCOL_ID


def _message(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


async def _attacker(port: int, events: object) -> tuple[NoiseYamux, PeerConnection]:
    ymx = await NoiseYamux.connect_to(port)
    connected = await next_event(events, PeerConnected)  # type: ignore[arg-type]
    return ymx, connected.connection


async def _open_messaging(ymx: NoiseYamux, stream_id: int, payload: bytes = b"") -> None:
    """Open a messaging substream (normal negotiation) and send ``payload`` after the echo."""
    await ymx.send(frame(WINDOW_UPDATE, SYN, stream_id, 0) + frame(DATA, 0, stream_id,
                                                                      body=PROPOSAL))
    assert (await ymx.wait_data(stream_id, len(PROPOSAL)))[: len(PROPOSAL)] == PROPOSAL
    if payload:
        await ymx.send(frame(DATA, 0, stream_id, body=payload))


def _config(**changes: object) -> NodeConfig:
    return NodeConfig(messaging=MessagingConfig(**changes))  # type: ignore[arg-type]


async def _received(node: object, count: int) -> list[bytes]:
    bodies = []
    with anyio.fail_after(5):
        async for message in node.messages():  # type: ignore[attr-defined]
            bodies.append(message.body)
            if len(bodies) == count:
                break
    return bodies


@pytest.mark.parametrize("length", [8 * 1024 * 1024 + 1, 0xFFFFFFFF])
async def test_oversize_frame_header_bans_before_allocating(length: int) -> None:
    async with listening_node(_config()) as (node, port), bystander(node, port) as honest:
        events = node.events()
        ymx, connection = await _attacker(port, events)
        await _open_messaging(ymx, 1, _message(b"fine"))
        assert await _received(node, 1) == [b"fine"]
        with traced_peak() as peak:
            await ymx.send(frame(DATA, 0, 1, body=length.to_bytes(4, "big")))
            gone = await next_event(events, PeerDisconnected)
            assert peak() < 1024 * 1024  # the header alone: nothing near its size allocated
        assert gone.connection is connection and gone.reason is DisconnectReason.BANNED
        assert node.is_banned(ymx.attacker.key.public)
        await honest.check()
        await ymx.aclose()
        await connection.wait_closed()


async def test_second_inbound_substream_is_reset() -> None:
    async with listening_node(_config()) as (node, port):
        events = node.events()
        ymx, connection = await _attacker(port, events)
        await _open_messaging(ymx, 1, _message(b"first"))
        assert await _received(node, 1) == [b"first"]
        # negotiated, then reset at once (the echo may be dropped with the stream)
        await ymx.send(frame(WINDOW_UPDATE, SYN, 3, 0) + frame(
            DATA, 0, 3, body=PROPOSAL + _message(b"second stream")))
        assert await ymx.wait_reset(3)
        await ymx.send(frame(DATA, 0, 1, body=_message(b"still first")))
        assert await _received(node, 1) == [b"still first"]
        assert connection.is_connected and not node.is_banned(ymx.attacker.key.public)
        await ymx.aclose()
        await connection.wait_closed()


async def test_flood_is_banned() -> None:
    config = _config(max_message_rate=10.0, message_burst=20, flood_ban_duration=30.0)
    async with listening_node(config) as (node, port):
        events = node.events()
        ymx, connection = await _attacker(port, events)
        await _open_messaging(ymx, 1, _message(b"m") * 100)
        gone = await next_event(events, PeerDisconnected)
        assert gone.connection is connection and gone.reason is DisconnectReason.BANNED
        assert node.is_banned(ymx.attacker.key.public)
        await ymx.aclose()
        await connection.wait_closed()
        assert_idle(node)


async def test_truncated_frame_costs_only_the_stream() -> None:
    """The end of the stream inside a frame: tari calls it an I/O error, so no ban and the
    connection stays; the complete message before it is delivered."""
    async with listening_node(_config()) as (node, port):
        events = node.events()
        ymx, connection = await _attacker(port, events)
        await _open_messaging(ymx, 1, _message(b"whole") + _message(b"cut short")[:7])
        await ymx.send(frame(DATA, FIN, 1, 0))
        assert await _received(node, 1) == [b"whole"]
        await wait_until(lambda: node.messaging.statistics().inbound_streams == 0)
        assert connection.is_connected and not node.is_banned(ymx.attacker.key.public)
        await _open_messaging(ymx, 3, _message(b"again"))  # a fresh substream is accepted
        assert await _received(node, 1) == [b"again"]
        await ymx.aclose()
        await connection.wait_closed()


async def test_unread_messages_stall_only_that_peer() -> None:
    """Nobody reads ``node.messages()``: one peer's pending messages stop at the per-peer
    bound (the node stops reading that substream, so flow control stalls the sender); a
    second peer still gets its messages in."""
    config = _config(max_pending_inbound_per_peer=8, max_pending_inbound=64)
    async with listening_node(config) as (node, port):
        events = node.events()
        greedy, greedy_conn = await _attacker(port, events)
        await _open_messaging(greedy, 1, _message(b"g" * 1000) * 20)
        await wait_until(lambda: node.messaging.statistics().pending == 8)
        other, other_conn = await _attacker(port, events)
        await _open_messaging(other, 1, _message(b"other"))
        await wait_until(lambda: node.messaging.statistics().pending == 9)
        assert node.messaging.statistics().pending_bytes == 8 * 1000 + 5
        assert greedy_conn.is_connected and other_conn.is_connected
        bodies = await _received(node, 21)  # reading resumes the greedy peer
        assert bodies.count(b"other") == 1 and bodies.count(b"g" * 1000) == 20
        for ymx, conn in ((greedy, greedy_conn), (other, other_conn)):
            await ymx.aclose()
            await conn.wait_closed()

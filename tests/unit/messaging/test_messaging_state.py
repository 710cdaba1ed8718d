"""Messaging bookkeeping without I/O: outbound queues, inbound backlog, flood bucket, config."""

from __future__ import annotations

import dataclasses

import pytest
from plait.messaging import (
    MAX_MESSAGE_SIZE,
    MESSAGING_PROTOCOL_ID,
    MessageDecoder,
    MessagingConfig,
)
from plait.messaging._state import InboundBacklog, OutboundQueue, QueuedMessage, TokenBucket


def queue(**overrides: int) -> OutboundQueue:
    values = {"max_messages": 4, "max_bytes": 100, "batch_size": 64, "max_message_size": 100}
    values.update(overrides)
    return OutboundQueue(**values)


def msg(body: bytes, tag: int = 0) -> QueuedMessage:
    return QueuedMessage(tag, body)


def decode(batch_pieces: tuple[bytes, ...]) -> list[bytes]:
    return MessageDecoder().feed(b"".join(batch_pieces))


# --------------------------------------------------------------------------- OutboundQueue


def test_queue_admits_up_to_its_message_count() -> None:
    q = queue()
    assert all(q.push(msg(b"x", i)) for i in range(4))
    assert not q.push(msg(b"x"))
    assert len(q) == 4
    assert q.queued_bytes == 4


def test_queue_admits_up_to_its_byte_count_but_always_one_message() -> None:
    q = queue(max_bytes=10)
    assert q.push(msg(bytes(6)))
    assert not q.can_admit(5)
    assert not q.push(msg(bytes(5)))
    assert q.push(msg(bytes(4)))
    empty = queue(max_bytes=10)
    assert empty.push(msg(bytes(100)))  # an empty queue takes any single message


def test_small_messages_are_joined_into_one_batch_in_order() -> None:
    q = queue(max_messages=10)
    for i in range(5):
        q.push(msg(bytes([i]) * 10, i))
    batch = q.next_batch()
    assert batch is not None
    assert len(batch.pieces) == 1
    # 14 bytes per frame: four fit 64 bytes, the fifth waits
    assert [m.tag for m in batch.messages] == [0, 1, 2, 3]
    assert batch.size == 56
    assert decode(batch.pieces) == [bytes([i]) * 10 for i in range(4)]
    assert len(q) == 1
    assert q.queued_bytes == 10
    rest = q.next_batch()
    assert rest is not None and [m.tag for m in rest.messages] == [4]
    assert q.next_batch() is None


def test_large_message_goes_alone_as_header_and_uncopied_body() -> None:
    q = queue()
    body = bytes(80)
    q.push(msg(b"a", 1))
    q.push(msg(body, 2))
    first = q.next_batch()
    assert first is not None and [m.tag for m in first.messages] == [1]
    second = q.next_batch()
    assert second is not None
    assert second.pieces[0] == b"\x00\x00\x00\x50"
    assert second.pieces[1] is body
    assert decode(second.pieces) == [body]


def test_push_front_restores_order_and_counts() -> None:
    q = queue(max_messages=10)
    for i in range(3):
        q.push(msg(b"m", i))
    batch = q.next_batch()
    assert batch is not None and len(q) == 0
    q.push(msg(b"m", 3))
    q.push_front(batch.messages)
    assert len(q) == 4
    assert q.queued_bytes == 4
    again = q.next_batch()
    assert again is not None and [m.tag for m in again.messages] == [0, 1, 2, 3]


def test_clear_returns_everything_and_empties() -> None:
    q = queue()
    q.push(msg(b"a", 1))
    q.push(msg(b"b", 2))
    assert [m.tag for m in q.clear()] == [1, 2]
    assert len(q) == 0 and q.queued_bytes == 0
    assert q.next_batch() is None
    assert "0 messages" in repr(q)


def test_empty_body_makes_a_header_only_frame() -> None:
    q = queue()
    q.push(msg(b""))
    batch = q.next_batch()
    assert batch is not None and batch.pieces == (b"\x00\x00\x00\x00",)


# --------------------------------------------------------------------------- InboundBacklog


def test_backlog_bounds_each_peer() -> None:
    backlog = InboundBacklog(max_messages=10, max_messages_per_peer=2, max_bytes=1000)
    a, b = b"a" * 32, b"b" * 32
    for _ in range(2):
        assert backlog.can_admit(a)
        backlog.admit(a, 1)
    assert not backlog.can_admit(a)
    assert backlog.can_admit(b)  # another peer is not held back
    backlog.release(a, 1)
    assert backlog.can_admit(a)
    assert backlog.pending_for(a) == 1
    backlog.release(a, 1)
    assert backlog.pending_for(a) == 0
    assert backlog.messages == 0


def test_backlog_bounds_the_total_count_and_bytes() -> None:
    backlog = InboundBacklog(max_messages=3, max_messages_per_peer=3, max_bytes=100)
    peers = [bytes([i]) * 32 for i in range(4)]
    for peer in peers[:3]:
        backlog.admit(peer, 1)
    assert not backlog.can_admit(peers[3])
    backlog.release(peers[0], 1)
    assert backlog.can_admit(peers[3])
    backlog.admit(peers[3], 150)  # admitted below the byte cap, may go over it
    assert backlog.size == 152
    assert not backlog.can_admit(peers[0])
    backlog.release(peers[3], 150)
    assert backlog.can_admit(peers[0])
    assert "2 messages" in repr(backlog)


# --------------------------------------------------------------------------- TokenBucket


def test_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=8.0, burst=5, now=100.0)
    assert all(bucket.take(100.0) for _ in range(5))
    assert not bucket.take(100.0)
    assert not bucket.take(100.0625)  # half a token
    assert bucket.take(100.125)
    assert not bucket.take(100.125)
    assert bucket.take(101.0, count=5)  # refilled, capped at the burst
    assert not bucket.take(110.0, count=6)  # never more than the burst
    assert bucket.tokens == 5.0


def test_bucket_ignores_a_clock_going_backwards() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now=10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)
    assert not bucket.take(10.5)
    assert bucket.take(11.0)


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_bucket_rejects_bad_parameters(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst, now=0.0)


# --------------------------------------------------------------------------- MessagingConfig


def test_config_defaults_follow_tari() -> None:
    config = MessagingConfig()
    assert config.protocol_id == MESSAGING_PROTOCOL_ID == b"t/msg/0.1"
    assert config.max_message_size == MAX_MESSAGE_SIZE
    assert config.max_connect_attempts == 2
    assert config.violation_ban_duration == 600.0
    assert config.max_queued_bytes >= config.max_message_size


@pytest.mark.parametrize(
    "change",
    [
        {"protocol_id": b""},
        {"protocol_id": b"x" * 256},
        {"max_message_size": -1},
        {"max_message_size": 2**32},
        {"max_queued_messages": 0},
        {"write_batch_size": 0},
        {"max_connect_attempts": 0},
        {"max_pending_inbound": 0},
        {"max_pending_inbound_per_peer": 0},
        {"max_pending_inbound_bytes": 0},
        {"message_burst": 0},
        {"max_known_peers": 0},
        {"max_known_addresses": 0},
        {"max_queued_bytes": MAX_MESSAGE_SIZE - 1},
        {"max_message_rate": 0.0},
        {"flood_ban_duration": 0.0},
        {"violation_ban_duration": -1.0},
    ],
)
def test_config_rejects_out_of_range_values(change: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MessagingConfig(**change)  # type: ignore[arg-type]


def test_config_variants_and_optional_bans() -> None:
    config = dataclasses.replace(
        MessagingConfig(), flood_ban_duration=None, violation_ban_duration=None,
        max_message_size=10, max_queued_bytes=10,
    )
    assert config.flood_ban_duration is None
    assert config.max_message_size == 10

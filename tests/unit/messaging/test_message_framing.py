"""Messaging frames: u32-BE length ‖ body, 8 MiB at most, checked before allocation (wire.md §4)."""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st
from plait.errors import BanTier, ProtocolViolation
from plait.messaging import (
    HEADER_SIZE,
    MAX_MESSAGE_SIZE,
    FrameTooLargeError,
    MessageDecoder,
    MessagingProtocolViolation,
    TruncatedFrameError,
    frame_header,
)


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def test_maximum_is_8_mib_as_in_tari() -> None:
    assert MAX_MESSAGE_SIZE == 8 * 1024 * 1024 == 8388608
    assert MessageDecoder().max_message_size == MAX_MESSAGE_SIZE


def test_header_is_u32_big_endian_body_length() -> None:
    assert HEADER_SIZE == 4
    assert frame_header(0) == b"\x00\x00\x00\x00"
    assert frame_header(0x01020304, max_message_size=2**32 - 1) == b"\x01\x02\x03\x04"
    assert frame_header(MAX_MESSAGE_SIZE) == b"\x00\x80\x00\x00"


@pytest.mark.parametrize("length", [-1, MAX_MESSAGE_SIZE + 1])
def test_header_refuses_lengths_out_of_range(length: int) -> None:
    with pytest.raises(ValueError, match="exceeds"):
        frame_header(length)


def test_header_honours_a_smaller_maximum() -> None:
    assert frame_header(10, max_message_size=10) == b"\x00\x00\x00\x0a"
    with pytest.raises(ValueError):
        frame_header(11, max_message_size=10)


def test_decoder_returns_complete_bodies_in_order_and_keeps_the_rest() -> None:
    decoder = MessageDecoder()
    data = frame(b"abc") + frame(b"") + frame(b"xyz")[:5]
    assert decoder.feed(data) == [b"abc", b""]
    assert decoder.buffered == 5
    assert not decoder.at_boundary
    assert decoder.feed(b"yz") == [b"xyz"]
    assert decoder.at_boundary
    assert decoder.buffered == 0


def test_zero_length_message_is_legal() -> None:
    assert MessageDecoder().feed(b"\x00\x00\x00\x00" * 3) == [b"", b"", b""]


def test_header_split_over_chunks() -> None:
    decoder = MessageDecoder()
    stream = frame(b"hello")
    assert decoder.feed(stream[:1]) == []
    assert decoder.feed(stream[1:3]) == []
    assert decoder.buffered == 3
    assert decoder.feed(stream[3:]) == [b"hello"]


def test_accepts_any_buffer_type() -> None:
    decoder = MessageDecoder()
    assert decoder.feed(bytearray(frame(b"a"))) == [b"a"]
    assert decoder.feed(memoryview(frame(b"bc"))) == [b"bc"]
    returned = decoder.feed(memoryview(frame(b"d")))
    assert type(returned[0]) is bytes


bodies = st.lists(st.binary(max_size=300), max_size=12)


@given(bodies=bodies, cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=30))
def test_bodies_are_the_same_however_the_bytes_are_chunked(
    bodies: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(frame(b) for b in bodies)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    decoder = MessageDecoder()
    received: list[bytes] = []
    for chunk in chunks:
        received.extend(decoder.feed(chunk))
    assert received == bodies
    assert decoder.at_boundary
    decoder.end_of_stream()  # clean


@given(bodies=bodies)
def test_byte_at_a_time_feeding_yields_every_body(bodies: list[bytes]) -> None:
    stream = b"".join(frame(b) for b in bodies)
    decoder = MessageDecoder()
    received: list[bytes] = []
    for i in range(len(stream)):
        received.extend(decoder.feed(stream[i : i + 1]))
    assert received == bodies


def test_message_of_exactly_the_maximum_is_accepted_whole_or_in_pieces() -> None:
    body = bytes(range(256)) * (MAX_MESSAGE_SIZE // 256)
    assert len(body) == MAX_MESSAGE_SIZE
    whole = MessageDecoder()
    assert whole.feed(frame_header(len(body)) + body) == [body]
    pieces = MessageDecoder()
    assert pieces.feed(frame_header(len(body))) == []
    received: list[bytes] = []
    view = memoryview(body)
    for offset in range(0, len(body), 65536):
        received.extend(pieces.feed(view[offset : offset + 65536]))
    assert received == [body]
    assert pieces.at_boundary


@pytest.mark.parametrize("length", [MAX_MESSAGE_SIZE + 1, 0xFFFFFFFF])
def test_oversize_length_fails_on_the_header_before_any_allocation(length: int) -> None:
    decoder = MessageDecoder()
    tracemalloc.start()
    try:
        with pytest.raises(FrameTooLargeError, match="exceeds the maximum") as info:
            decoder.feed(struct.pack(">I", length) + b"\x00" * 100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024  # nothing near the announced size was allocated
    assert info.value.seen == length
    assert decoder.buffered == 0
    with pytest.raises(MessagingProtocolViolation, match="already failed"):
        decoder.feed(b"")


def test_oversize_header_split_over_chunks_fails_when_complete() -> None:
    decoder = MessageDecoder(max_message_size=10)
    header = struct.pack(">I", 11)
    assert decoder.feed(header[:2]) == []
    with pytest.raises(FrameTooLargeError):
        decoder.feed(header[2:])


def test_oversize_frame_after_good_frames_in_the_same_chunk_still_fails() -> None:
    decoder = MessageDecoder(max_message_size=8)
    with pytest.raises(FrameTooLargeError):
        decoder.feed(frame(b"ok") + struct.pack(">I", 9))


def test_body_memory_is_allocated_only_after_the_check() -> None:
    decoder = MessageDecoder()
    tracemalloc.start()
    try:
        decoder.feed(frame_header(MAX_MESSAGE_SIZE))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # an accepted length gets exactly one buffer of its size, once
    assert MAX_MESSAGE_SIZE <= peak < MAX_MESSAGE_SIZE + 64 * 1024
    assert decoder.buffered == HEADER_SIZE


def test_configurable_maximum_and_its_range() -> None:
    decoder = MessageDecoder(max_message_size=2)
    assert decoder.feed(frame(b"12")) == [b"12"]
    with pytest.raises(FrameTooLargeError):
        decoder.feed(frame(b"123"))
    with pytest.raises(ValueError, match="u32"):
        MessageDecoder(max_message_size=2**32)
    with pytest.raises(ValueError, match="u32"):
        MessageDecoder(max_message_size=-1)


@pytest.mark.parametrize("cut", [1, 3, 4, 6])
def test_end_of_stream_inside_a_frame_is_truncation(cut: int) -> None:
    decoder = MessageDecoder()
    decoder.feed(frame(b"abcdef")[:cut])
    with pytest.raises(TruncatedFrameError, match="inside a frame") as info:
        decoder.end_of_stream()
    assert info.value.seen == cut
    with pytest.raises(MessagingProtocolViolation, match="already failed"):
        decoder.feed(b"x")
    decoder.end_of_stream()  # a failed decoder does not raise twice


def test_end_of_stream_between_frames_is_clean() -> None:
    decoder = MessageDecoder()
    decoder.end_of_stream()
    assert decoder.feed(frame(b"x")) == [b"x"]
    decoder.end_of_stream()


def test_error_classes_carry_blame_and_ban_tier() -> None:
    assert issubclass(FrameTooLargeError, ProtocolViolation)
    assert issubclass(TruncatedFrameError, MessagingProtocolViolation)
    assert FrameTooLargeError.ban is BanTier.LONG
    assert TruncatedFrameError.ban is BanTier.NONE  # tari: an I/O error, no ban


@given(st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_protocol_violations(data: bytes) -> None:
    decoder = MessageDecoder(max_message_size=16)
    try:
        for i in range(0, len(data), 3):
            decoder.feed(data[i : i + 3])
            assert decoder.buffered < HEADER_SIZE + 16  # never more than one partial frame
        decoder.end_of_stream()
    except MessagingProtocolViolation:
        assert decoder.buffered == 0

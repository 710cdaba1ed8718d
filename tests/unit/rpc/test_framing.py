"""u32-BE length-delimited framing (wire.md §3.1; hardening.md R12)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from plait.rpc._framing import HEADER_SIZE, FrameDecoder, frame_header
from plait.rpc.config import RPC_MAX_FRAME_SIZE
from plait.rpc.errors import RpcProtocolViolation

from .helpers import frame


def test_header_is_u32_big_endian_body_length() -> None:
    assert HEADER_SIZE == 4
    assert frame_header(3) == b"\x00\x00\x00\x03"
    assert frame_header(RPC_MAX_FRAME_SIZE) == b"\x00\x40\x00\x00"


def test_header_refuses_lengths_above_the_maximum() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        frame_header(RPC_MAX_FRAME_SIZE + 1)
    with pytest.raises(ValueError, match="exceeds"):
        frame_header(11, max_frame_size=10)


def test_decoder_returns_complete_frames_in_order_and_keeps_the_rest() -> None:
    decoder = FrameDecoder()
    data = frame(b"abc") + frame(b"") + frame(b"xyz")[:5]
    assert decoder.feed(data) == [b"abc", b""]
    assert decoder.buffered == 5
    assert not decoder.at_boundary
    assert decoder.feed(b"yz") == [b"xyz"]
    assert decoder.at_boundary


def test_zero_length_frame_is_legal() -> None:
    assert FrameDecoder().feed(b"\x00\x00\x00\x00") == [b""]


bodies = st.lists(st.binary(max_size=300), max_size=12)


@given(bodies=bodies, cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=30))
def test_frames_are_the_same_however_the_bytes_are_chunked(
    bodies: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(frame(b) for b in bodies)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    decoder = FrameDecoder()
    received: list[bytes] = []
    for chunk in chunks:
        received.extend(decoder.feed(chunk))
    assert received == bodies
    assert decoder.at_boundary


@given(bodies=bodies)
def test_byte_at_a_time_feeding_yields_every_frame(bodies: list[bytes]) -> None:
    stream = b"".join(frame(b) for b in bodies)
    decoder = FrameDecoder()
    received: list[bytes] = []
    for i in range(len(stream)):
        received.extend(decoder.feed(stream[i : i + 1]))
    assert received == bodies


def test_frame_of_exactly_the_maximum_is_accepted() -> None:
    body = bytes(RPC_MAX_FRAME_SIZE)
    decoder = FrameDecoder()
    assert decoder.feed(frame_header(len(body))) == []
    assert decoder.feed(memoryview(body)) == [body]


@pytest.mark.parametrize("length", [RPC_MAX_FRAME_SIZE + 1, 0xFFFFFFFF])
def test_oversize_length_fails_on_the_header_alone(length: int) -> None:
    decoder = FrameDecoder()
    with pytest.raises(RpcProtocolViolation, match="exceeds the maximum") as info:
        decoder.feed(struct.pack(">I", length))
    assert info.value.seen == length
    assert decoder.buffered == 0  # nothing kept, nothing allocated for the body
    with pytest.raises(RpcProtocolViolation, match="already failed"):
        decoder.feed(b"")


def test_oversize_frame_after_good_frames_in_the_same_chunk_still_fails() -> None:
    decoder = FrameDecoder(max_frame_size=8)
    with pytest.raises(RpcProtocolViolation):
        decoder.feed(frame(b"ok") + struct.pack(">I", 9))


def test_configurable_maximum() -> None:
    decoder = FrameDecoder(max_frame_size=2)
    assert decoder.max_frame_size == 2
    assert decoder.feed(frame(b"12")) == [b"12"]
    with pytest.raises(RpcProtocolViolation):
        decoder.feed(frame(b"123"))
    with pytest.raises(ValueError, match="u32"):
        FrameDecoder(max_frame_size=2**32)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_protocol_violations(data: bytes) -> None:
    decoder = FrameDecoder(max_frame_size=16)
    try:
        for i in range(0, len(data), 3):
            decoder.feed(data[i : i + 3])
            assert decoder.buffered < HEADER_SIZE + 16  # never more than one partial frame
    except RpcProtocolViolation:
        assert decoder.buffered == 0

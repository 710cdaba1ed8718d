"""EnvelopeBody: tari's ``repeated bytes parts = 1`` message, checked against protobuf itself."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st
from plait.errors import BanTier, ProtocolViolation
from plait.messaging import EnvelopeBody, EnvelopeDecodeError


def _reference_class() -> Any:
    """``tari.comms.envelope.EnvelopeBody`` built from its descriptor (envelope.proto)."""
    file = descriptor_pb2.FileDescriptorProto(
        name="plait_test_envelope.proto", package="tari.comms.envelope", syntax="proto3"
    )
    message = file.message_type.add(name="EnvelopeBody")
    message.field.add(
        name="parts",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tari.comms.envelope.EnvelopeBody")
    )


Reference = _reference_class()
parts_strategy = st.lists(st.binary(max_size=200), max_size=10)


def test_known_encoding() -> None:
    body = EnvelopeBody((b"ab", b"", b"\xff"))
    assert body.encode() == b"\x0a\x02ab\x0a\x00\x0a\x01\xff"
    assert EnvelopeBody.decode(body.encode()) == body
    assert EnvelopeBody().encode() == b""
    assert EnvelopeBody.decode(b"") == EnvelopeBody(())


def test_long_part_uses_a_multi_byte_length() -> None:
    part = bytes(300)
    encoded = EnvelopeBody((part,)).encode()
    assert encoded[:3] == b"\x0a\xac\x02"  # 300 = 0b10_0101100
    assert EnvelopeBody.decode(encoded).parts == (part,)


@given(parts=parts_strategy)
def test_encoding_matches_protobuf(parts: list[bytes]) -> None:
    ours = EnvelopeBody(tuple(parts)).encode()
    assert ours == Reference(parts=parts).SerializeToString()
    assert list(Reference.FromString(ours).parts) == parts


@given(parts=parts_strategy)
def test_decodes_what_protobuf_encodes(parts: list[bytes]) -> None:
    assert EnvelopeBody.decode(Reference(parts=parts).SerializeToString()).parts == tuple(parts)


@given(data=st.binary(max_size=64))
def test_anything_accepted_is_accepted_by_protobuf_with_the_same_parts(data: bytes) -> None:
    try:
        ours = EnvelopeBody.decode(data)
    except EnvelopeDecodeError as exc:
        assert isinstance(exc, ProtocolViolation)  # the only exception that may escape
        return
    try:
        reference = Reference.FromString(data)
    except DecodeError:
        pytest.fail(f"accepted {data!r}, which protobuf rejects")
    assert tuple(reference.parts) == ours.parts


def test_unknown_fields_of_every_valid_wire_type_are_skipped() -> None:
    data = (
        b"\x10\x96\x01"  # field 2, varint 150
        + b"\x19" + bytes(8)  # field 3, 64-bit
        + b"\x22\x02zz"  # field 4, length-delimited
        + b"\x2d" + bytes(4)  # field 5, 32-bit
        + b"\x0a\x01p"  # parts
    )
    assert EnvelopeBody.decode(data).parts == (b"p",)
    assert list(Reference.FromString(data).parts) == [b"p"]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x0a", "truncated field length"),
        (b"\x0a\x05ab", "overruns"),
        (b"\x0a\x80", "truncated field length"),
        (b"\x80", "truncated field key"),
        (b"\x0a" + b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
        (b"\x0a" + b"\xff" * 9 + b"\x7f", "overflows 64 bits"),
        (b"\x02\x00", "invalid field number 0"),
        (b"\x80\x80\x80\x80\x10\x00", "invalid field number"),  # field 2**29
        (b"\x08\x01", "parts sent with wire type 0"),
        (b"\x0d\x00\x00\x00\x00", "parts sent with wire type 5"),
        (b"\x13", "unsupported wire type 3"),  # start group
        (b"\x14", "unsupported wire type 4"),  # end group
        (b"\x16", "unsupported wire type 6"),
        (b"\x17", "unsupported wire type 7"),
        (b"\x10", "truncated varint field"),
        (b"\x10\x80", "truncated varint field"),
        (b"\x19\x00\x00", "64-bit field of 8 bytes overruns"),
        (b"\x1d\x00", "32-bit field of 4 bytes overruns"),
        (b"\x22\x03ab", "overruns"),
    ],
)
def test_every_malformed_input_raises_a_typed_error(data: bytes, match: str) -> None:
    with pytest.raises(EnvelopeDecodeError, match=match):
        EnvelopeBody.decode(data)


def test_decode_error_is_a_ban_tier_violation() -> None:
    assert issubclass(EnvelopeDecodeError, ProtocolViolation)
    assert EnvelopeDecodeError.ban is BanTier.LONG


def test_accepts_any_buffer() -> None:
    data = EnvelopeBody((b"a", b"b")).encode()
    assert EnvelopeBody.decode(bytearray(data)).parts == (b"a", b"b")
    assert EnvelopeBody.decode(memoryview(data)).parts == (b"a", b"b")

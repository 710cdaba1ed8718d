"""Fuzz target ``messaging``: the messaging frame decoder and the hand-written
``EnvelopeBody`` protobuf codec (wire.md §4).

Byte 0 picks the mode, byte 1 the chunk size:

- mode 0: ``MessageDecoder`` (a small maximum) fed the input in chunks, then end of stream;
  each frame body is decoded as an ``EnvelopeBody``;
- mode 1: differential test of ``EnvelopeBody.decode`` against the protobuf runtime parsing
  the same bytes as ``message EnvelopeBody { repeated bytes parts = 1; }``: when both
  accept they agree on the parts, and ``encode`` round-trips what plait accepts; whatever
  protobuf accepts, plait accepts too, except for the group wire types and varints above
  64 bits, which plait refuses (as prost, tari's decoder, does). plait, like prost, accepts
  over-long varint keys that the Python runtime refuses.

Only :class:`~plait.messaging.MessagingError` subclasses (PlaitErrors) may escape.
"""

from __future__ import annotations

from _common import Cursor, split, test_one_input
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from plait.messaging import EnvelopeBody, EnvelopeDecodeError, MessageDecoder

__all__ = ("SEEDS", "TestOneInput", "run_one")


def _reference_class() -> type:
    proto = descriptor_pb2.FileDescriptorProto(name="fuzz_envelope.proto", package="fuzz",
                                               syntax="proto3")
    message = proto.message_type.add(name="EnvelopeBody")
    message.field.add(name="parts", number=1,
                      type=descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("fuzz.EnvelopeBody"))


_Reference = _reference_class()
_STRICTER = ("wire type", "overflows 64 bits")


def _differential(data: bytes) -> None:
    try:
        reference = _Reference.FromString(data)
    except DecodeError:
        reference = None
    try:
        body = EnvelopeBody.decode(data)
    except EnvelopeDecodeError as exc:
        # plait is stricter than the Python runtime in two documented ways: it refuses the
        # group wire types, and 10-byte varints above 2**64 - 1 (as prost, tari's decoder,
        # does; the Python runtime drops the excess bits)
        stricter = any(reason in str(exc) for reason in _STRICTER)
        assert reference is None or stricter, f"plait refused what protobuf accepts: {exc}"
        raise
    # plait may accept what the Python runtime refuses: over-long (non-canonical) varint
    # keys, which prost accepts too; when both accept, they must agree
    if reference is not None:
        assert list(body.parts) == list(reference.parts)
    assert EnvelopeBody.decode(body.encode()) == body


def run_one(data: bytes) -> None:
    cur = Cursor(data)
    mode = cur.byte() % 2
    step = cur.byte()
    if mode == 1:
        _differential(cur.rest())
        return
    decoder = MessageDecoder(max_message_size=64 + step * 4)
    for chunk in split(cur.rest(), step % 13 or 1):
        for body in decoder.feed(chunk):
            assert len(body) <= decoder.max_message_size
            try:
                EnvelopeBody.decode(body)
            except EnvelopeDecodeError:
                pass
    decoder.end_of_stream()


def TestOneInput(data: bytes) -> None:
    test_one_input(run_one, data)


def _frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


SEEDS: list[bytes] = [
    b"\x00\x04" + _frame(EnvelopeBody((b"a", b"", b"ccc")).encode()) + _frame(b""),
    b"\x00\x00" + b"\xff\xff\xff\xff",
    b"\x00\x01" + _frame(b"x" * 10)[:7],
    b"\x01\x00" + EnvelopeBody((b"part", b"two")).encode(),
    b"\x01\x00" + b"\x08\x96\x01\x0a\x02hi\x11" + bytes(8) + b"\x15" + bytes(4),
    b"\x01\x00" + b"\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
    b"\x01\x00" + b"\x0b\x0c",
    b"\x01\x00" + b"\x00",
]

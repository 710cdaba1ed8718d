"""``EnvelopeBody``: the multi-part message container of tari's ``envelope.proto`` (wire.md §4).

Theory of operation: the messaging protocol itself carries opaque bodies; tari's comms core
never wraps a frame in anything. Its ``proto/envelope.proto`` nevertheless defines one utility
message that higher layers use to put several byte strings into one body::

    package tari.comms.envelope;
    message EnvelopeBody { repeated bytes parts = 1; }

This module encodes and decodes exactly that message by hand (it is small enough that a
generated module would add nothing), with the protobuf wire format's rules: each part is the
key byte ``0x0A`` (field 1, wire type 2), a varint length and the bytes; a decoder skips
fields it does not know (varint, 64-bit, length-delimited, 32-bit) as protobuf does, so a
newer sender's extra fields are tolerated. The decoder is strict where protobuf is strict
and also refuses the deprecated group wire types (3, 4): every malformed input raises
:class:`~plait.messaging.EnvelopeDecodeError`, never another exception, and nothing is
allocated beyond the input's own size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, final

from ..transport._multiaddr import encode_varint
from .errors import EnvelopeDecodeError

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ("EnvelopeBody",)

_PARTS_KEY = 0x0A  # field 1, wire type 2 (length-delimited)
_MAX_VARINT_BYTES = 10  # a u64 takes at most 10 bytes of 7 bits
_MAX_FIELD_NUMBER = (1 << 29) - 1  # protobuf's largest field number


def _decode_varint(view: memoryview, offset: int, what: str) -> tuple[int, int]:
    """Read a varint at ``offset``; return ``(value, new_offset)``."""
    value = 0
    for index in range(_MAX_VARINT_BYTES):
        if offset + index >= len(view):
            raise EnvelopeDecodeError(f"EnvelopeBody: truncated {what}", seen=offset)
        byte = view[offset + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if value >> 64:
                raise EnvelopeDecodeError(f"EnvelopeBody: {what} overflows 64 bits", seen=offset)
            return value, offset + index + 1
    raise EnvelopeDecodeError(f"EnvelopeBody: {what} longer than 10 bytes", seen=offset)


def _skip(view: memoryview, offset: int, count: int, what: str) -> int:
    if count > len(view) - offset:
        raise EnvelopeDecodeError(
            f"EnvelopeBody: {what} of {count} bytes overruns the message", seen=count
        )
    return offset + count


@final
@dataclass(frozen=True, slots=True)
class EnvelopeBody:
    """An ordered list of byte strings carried as one message body."""

    parts: tuple[bytes, ...] = ()
    """The parts, in order; each may be empty."""

    def encode(self) -> bytes:
        """The protobuf encoding (``repeated bytes parts = 1``)."""
        out = bytearray()
        for part in self.parts:
            out.append(_PARTS_KEY)
            out += encode_varint(len(part))
            out += part
        return bytes(out)

    @classmethod
    def decode(cls, data: Buffer) -> EnvelopeBody:
        """Decode a protobuf ``EnvelopeBody``; unknown fields are skipped.

        :raises EnvelopeDecodeError: truncated or over-long varints or fields, field number
            0 or above ``2**29 - 1``, the group wire types (3, 4) or the invalid ones (6, 7),
            or ``parts`` sent with a wire type other than length-delimited.
        """
        parts: list[bytes] = []
        with memoryview(data) as raw, raw.cast("B") as view:
            offset = 0
            end = len(view)
            while offset < end:
                key, offset = _decode_varint(view, offset, "field key")
                field_number, wire_type = key >> 3, key & 7
                if not 1 <= field_number <= _MAX_FIELD_NUMBER:
                    raise EnvelopeDecodeError(
                        f"EnvelopeBody: invalid field number {field_number}", seen=key
                    )
                if wire_type == 2:
                    length, offset = _decode_varint(view, offset, "field length")
                    start = offset
                    offset = _skip(view, offset, length, "field")
                    if field_number == 1:
                        parts.append(bytes(view[start:offset]))
                    continue
                if field_number == 1:
                    raise EnvelopeDecodeError(
                        f"EnvelopeBody: parts sent with wire type {wire_type}", seen=key
                    )
                if wire_type == 0:
                    _, offset = _decode_varint(view, offset, "varint field")
                elif wire_type == 1:
                    offset = _skip(view, offset, 8, "64-bit field")
                elif wire_type == 5:
                    offset = _skip(view, offset, 4, "32-bit field")
                else:
                    raise EnvelopeDecodeError(
                        f"EnvelopeBody: unsupported wire type {wire_type}", seen=key
                    )
        return cls(tuple(parts))

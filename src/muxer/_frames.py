"""Yamux frame constants and the 12-byte header codec.

Theory of operation (yamux.md §1, wire.md §1.5.2): every Yamux frame starts with a
12-byte big-endian header ``version u8 | type u8 | flags u16 | stream id u32 |
length u32``. Only DATA frames carry a body (``length`` bytes); for WINDOW_UPDATE the
length is a credit delta, for PING an opaque value echoed back, for GO_AWAY an error
code. The header is packed and unpacked with one precompiled :class:`struct.Struct`
(performance.md §4 rule 5); the connection core parses headers in place with
``HEADER.unpack_from(buffer, offset)`` so no slice is made per frame.
"""

from __future__ import annotations

import enum
import struct
from typing import Final

__all__ = (
    "HEADER",
    "HEADER_SIZE",
    "MAX_U32",
    "YAMUX_VERSION",
    "Flag",
    "FrameType",
    "GoAwayCode",
    "encode_header",
)

#: ``version u8 | type u8 | flags u16 | stream id u32 | length u32``, network byte order.
HEADER: Final = struct.Struct(">BBHII")
#: Size of the fixed header in bytes.
HEADER_SIZE: Final = HEADER.size
#: The only protocol version defined by the spec (yamux.md §1).
YAMUX_VERSION: Final = 0
#: Largest value of a u32 field; window credit may never exceed it (hardening.md §1.3).
MAX_U32: Final = 0xFFFF_FFFF


class FrameType(enum.IntEnum):
    """The ``type`` byte of a frame header."""

    DATA = 0
    WINDOW_UPDATE = 1
    PING = 2
    GO_AWAY = 3


class Flag(enum.IntFlag):
    """The ``flags`` field of a frame header. Undefined bits are ignored on receipt."""

    NONE = 0
    SYN = 0x1
    ACK = 0x2
    FIN = 0x4
    RST = 0x8


class GoAwayCode(enum.IntEnum):
    """GO_AWAY error codes (yamux.md §1). Peers may send other values (go-yamux 0x1005)."""

    NORMAL = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


def encode_header(frame_type: int, flags: int, stream_id: int, length: int) -> bytes:
    """Return the 12-byte header of one frame.

    :param frame_type: a :class:`FrameType` value.
    :param flags: a combination of :class:`Flag` bits.
    :param stream_id: 0 for the session, else the stream id.
    :param length: body length (DATA), delta (WINDOW_UPDATE), opaque (PING) or code (GO_AWAY).
    """
    return HEADER.pack(YAMUX_VERSION, frame_type, flags, stream_id, length)

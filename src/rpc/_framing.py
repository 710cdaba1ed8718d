"""u32 big-endian length-delimited framing of RPC substreams (wire.md §3.1).

Theory of operation: every RPC message travels as ``u32 BE length ‖ body`` (tokio-util's
``LengthDelimitedCodec`` in tari), the length counting the body only. A receiver must never
trust the length before checking it, so :class:`FrameDecoder` compares each declared length
with its maximum (default ``RPC_MAX_FRAME_SIZE`` = 4 MiB) as soon as the 4 header bytes are
in, before buffering a byte of the body; an excess is an :class:`RpcProtocolViolation` and
leaves the decoder failed (every later call raises). Bytes may arrive in any chunking: the
decoder keeps one ``bytearray``, parses every complete frame through a ``memoryview`` and
drops the consumed prefix once per call (style.md §8). Zero-length frames are legal (an
all-default protobuf message). The sender side only builds the 4-byte header, so a large
body is never copied just to prepend its length.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .config import RPC_MAX_FRAME_SIZE
from .errors import RpcProtocolViolation

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ("HEADER_SIZE", "FrameDecoder", "frame_header")

_HEADER = struct.Struct(">I")
HEADER_SIZE = _HEADER.size


def frame_header(length: int, max_frame_size: int = RPC_MAX_FRAME_SIZE) -> bytes:
    """The 4-byte prefix announcing a body of ``length`` bytes.

    :raises ValueError: ``length`` exceeds ``max_frame_size`` (callers check first and raise
        their own typed error; reaching this is a bug).
    """
    if not 0 <= length <= max_frame_size:
        raise ValueError(f"frame body of {length} bytes exceeds the maximum {max_frame_size}")
    return _HEADER.pack(length)


class FrameDecoder:
    """Reassembles frames from arbitrary chunks of a byte stream.

    :param max_frame_size: the largest acceptable body, in bytes.
    """

    __slots__ = ("_buffer", "_failed", "_max_frame_size")

    def __init__(self, max_frame_size: int = RPC_MAX_FRAME_SIZE) -> None:
        if not 0 <= max_frame_size <= 0xFFFFFFFF:
            raise ValueError("max_frame_size must fit in a u32")
        self._max_frame_size = max_frame_size
        self._buffer = bytearray()
        self._failed = False

    @property
    def max_frame_size(self) -> int:
        """The largest frame body accepted, in bytes."""
        return self._max_frame_size

    @property
    def buffered(self) -> int:
        """Bytes held for a frame that is not complete yet (at most ``4 + max_frame_size``
        plus one chunk)."""
        return len(self._buffer)

    @property
    def at_boundary(self) -> bool:
        """Whether no partial frame is buffered (an EOF here is clean)."""
        return not self._buffer

    def feed(self, data: Buffer) -> list[bytes]:
        """Add received bytes and return every frame body they complete, in order.

        :raises RpcProtocolViolation: a frame declares a length above the maximum.
        """
        if self._failed:
            raise RpcProtocolViolation("the RPC frame stream already failed")
        buffer = self._buffer
        if not buffer and type(data) is bytes and len(data) >= HEADER_SIZE:
            # the common case: one whole frame in one read, nothing held before
            (length,) = _HEADER.unpack_from(data)
            if length + HEADER_SIZE == len(data) and length <= self._max_frame_size:
                return [data[HEADER_SIZE:]]
        buffer += data
        frames: list[bytes] = []
        offset = 0
        size = len(buffer)
        oversize: int | None = None
        with memoryview(buffer) as view:
            while size - offset >= HEADER_SIZE:
                (length,) = _HEADER.unpack_from(view, offset)
                if length > self._max_frame_size:
                    oversize = length
                    break
                end = offset + HEADER_SIZE + length
                if end > size:
                    break
                frames.append(bytes(view[offset + HEADER_SIZE : end]))
                offset = end
        if oversize is not None:
            self._failed = True
            buffer.clear()
            raise RpcProtocolViolation(
                f"RPC frame of {oversize} bytes exceeds the maximum of {self._max_frame_size}",
                seen=oversize,
            )
        if offset:
            del buffer[:offset]
        return frames

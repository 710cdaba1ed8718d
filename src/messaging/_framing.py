"""u32 big-endian length-delimited framing of messaging substreams (wire.md §4).

Theory of operation: a messaging substream is one-way. The sender writes each message as
``u32 BE length ‖ body`` (tokio-util's ``LengthDelimitedCodec`` in tari) and never reads; the
receiver only reads. The length counts the body only; a body of 0 bytes is legal. The
maximum is 8 MiB (tari ``MAX_FRAME_LENGTH``) in either direction.

:class:`MessageDecoder` is the receiver's sans-IO core. It never trusts a length before
checking it: the 4 header bytes are collected first (at most 4 bytes are ever buffered for a
header), the announced length is compared with the maximum, and only then is room for the
body allocated — so a peer announcing 4 GiB costs 4 bytes of memory and raises
:class:`FrameTooLargeError` at once. A frame wholly inside one received chunk is sliced out
of it directly; a frame spread over chunks is filled into one ``bytearray`` of exactly its
length, so a large message is copied once on arrival and once when handed out, never
re-joined piece by piece. After a violation the decoder is failed and every later call
raises. :meth:`MessageDecoder.end_of_stream` tells a clean end (between frames) from a
truncated one.

The sender side only builds the 4-byte header (:func:`frame_header`), so a large body is
never copied just to prepend its length.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .config import MAX_MESSAGE_SIZE
from .errors import FrameTooLargeError, MessagingProtocolViolation, TruncatedFrameError

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ("HEADER_SIZE", "MessageDecoder", "frame_header")

_HEADER = struct.Struct(">I")
HEADER_SIZE = _HEADER.size


def frame_header(length: int, max_message_size: int = MAX_MESSAGE_SIZE) -> bytes:
    """The 4-byte prefix announcing a body of ``length`` bytes.

    :raises ValueError: ``length`` is negative or above ``max_message_size`` (the adapter
        checks first and raises :class:`~plait.messaging.MessageTooLargeError`).
    """
    if not 0 <= length <= max_message_size:
        raise ValueError(f"message of {length} bytes exceeds the maximum {max_message_size}")
    return _HEADER.pack(length)


class MessageDecoder:
    """Reassembles message bodies from arbitrary chunks of a messaging substream.

    :param max_message_size: the largest acceptable body, bytes (at most ``2**32 - 1``).
    """

    __slots__ = ("_body", "_failed", "_filled", "_header", "_max_message_size")

    def __init__(self, max_message_size: int = MAX_MESSAGE_SIZE) -> None:
        if not 0 <= max_message_size <= 0xFFFFFFFF:
            raise ValueError("max_message_size must fit in a u32")
        self._max_message_size = max_message_size
        self._header = bytearray()  # 0..3 bytes of a header not complete yet
        self._body: bytearray | None = None  # the body being filled, exactly its length
        self._filled = 0
        self._failed = False

    def __repr__(self) -> str:
        return f"<MessageDecoder buffered={self.buffered} failed={self._failed}>"

    @property
    def max_message_size(self) -> int:
        return self._max_message_size

    @property
    def buffered(self) -> int:
        """Bytes held for a frame that is not complete yet (header bytes plus body bytes
        received so far; the body's allocation is its announced length)."""
        return len(self._header) + self._filled + (HEADER_SIZE if self._body is not None else 0)

    @property
    def at_boundary(self) -> bool:
        """Whether no partial frame is held (an end of stream here is clean)."""
        return not self._header and self._body is None

    def feed(self, data: Buffer) -> list[bytes]:
        """Add received bytes and return every message body they complete, in order.

        :raises FrameTooLargeError: a header announces a body above the maximum (the decoder
            is failed from then on).
        :raises MessagingProtocolViolation: the decoder already failed.
        """
        if self._failed:
            raise MessagingProtocolViolation("the messaging frame stream already failed")
        messages: list[bytes] = []
        with memoryview(data) as raw, raw.cast("B") as view:
            size = len(view)
            offset = 0
            while offset < size:
                body = self._body
                if body is not None:  # continue a body spread over chunks
                    take = min(len(body) - self._filled, size - offset)
                    body[self._filled : self._filled + take] = view[offset : offset + take]
                    self._filled += take
                    offset += take
                    if self._filled == len(body):
                        messages.append(bytes(body))
                        self._body = None
                        self._filled = 0
                    continue
                header = self._header
                if header or size - offset < HEADER_SIZE:  # a header spread over chunks
                    take = min(HEADER_SIZE - len(header), size - offset)
                    header += view[offset : offset + take]
                    offset += take
                    if len(header) < HEADER_SIZE:
                        break
                    (length,) = _HEADER.unpack(header)
                    header.clear()
                else:
                    (length,) = _HEADER.unpack_from(view, offset)
                    offset += HEADER_SIZE
                if length > self._max_message_size:  # checked before any allocation
                    self._fail()
                    raise FrameTooLargeError(
                        f"message frame of {length} bytes exceeds the maximum of "
                        f"{self._max_message_size}",
                        seen=length,
                    )
                if size - offset >= length:  # the whole body is in this chunk
                    messages.append(bytes(view[offset : offset + length]))
                    offset += length
                else:
                    self._body = bytearray(length)
                    self._filled = 0
        return messages

    def end_of_stream(self) -> None:
        """Note that the stream ended; clean only between frames.

        :raises TruncatedFrameError: a frame was cut short (the decoder is failed).
        """
        if self._failed or self.at_boundary:
            return
        held = self.buffered
        self._fail()
        raise TruncatedFrameError(
            f"the messaging stream ended inside a frame ({held} bytes held)", seen=held
        )

    def _fail(self) -> None:
        self._failed = True
        self._header.clear()
        self._body = None
        self._filled = 0

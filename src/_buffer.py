"""A receive buffer for the sans-IO parsers: one ``bytearray`` per connection.

Theory of operation (style.md §8): bytes arriving from the transport are appended to a
single ``bytearray``; a parser looks at the front through :meth:`ReceiveBuffer.unpack_from`
or :meth:`ReceiveBuffer.byte_at` (no copies) and removes complete frames with
:meth:`ReceiveBuffer.maybe_extract`, which deletes the consumed prefix in place
(``del buf[:n]``). No memoryview on the internal ``bytearray`` outlives a method call, so
the buffer can always be resized.

The buffer itself has no cap: every parser checks the length field it has just read
against its own documented limit *before* waiting for that many bytes, so what is held
here is bounded by the largest frame the parser admits plus one read from the transport.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import struct

    from typing_extensions import Buffer

__all__ = ("ReceiveBuffer",)


class ReceiveBuffer:
    """An append-at-the-end, consume-from-the-front byte accumulator."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data = bytearray()

    def __len__(self) -> int:
        return len(self._data)

    def __bool__(self) -> bool:
        return bool(self._data)

    def __repr__(self) -> str:
        return f"<ReceiveBuffer {len(self._data)} bytes>"

    def extend(self, data: Buffer) -> None:
        """Append ``data`` (any object supporting the buffer protocol)."""
        self._data += data

    def byte_at(self, index: int) -> int:
        """Return the byte at ``index`` (which must be below ``len(self)``)."""
        return self._data[index]

    def unpack_from(self, layout: struct.Struct, offset: int = 0) -> tuple[Any, ...]:
        """Decode a fixed header at ``offset`` without copying; the caller checks the length."""
        return layout.unpack_from(self._data, offset)

    def maybe_extract(self, count: int) -> bytes | None:
        """Remove and return the first ``count`` bytes, or ``None`` if fewer are buffered."""
        if len(self._data) < count:
            return None
        out = bytes(self._data[:count])
        del self._data[:count]
        return out

    def discard(self, count: int) -> None:
        """Drop the first ``count`` bytes (all of them if fewer are buffered)."""
        del self._data[:count]

    def extract_all(self) -> bytes:
        """Remove and return everything buffered."""
        out = bytes(self._data)
        self._data.clear()
        return out

"""Shared helpers of the fuzz harnesses (no atheris needed).

Each harness module ``fuzz_<name>.py`` defines ``run_one(data: bytes) -> None``, which drives
one parser with ``data`` and may raise only a :class:`plait.errors.PlaitError` subclass (a
typed, documented failure), and ``SEEDS``, a few inputs that reach its interesting paths.
:func:`test_one_input` wraps ``run_one`` for atheris: a ``PlaitError`` is an accepted
outcome, anything else (``IndexError``, ``AssertionError`` from an invariant check,
``struct.error``, a protobuf ``DecodeError`` that escaped, ...) propagates and is a crash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plait.errors import PlaitError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ("Cursor", "split", "test_one_input")


def test_one_input(run_one: Callable[[bytes], None], data: bytes) -> None:
    """Run one input; only typed plait errors are accepted outcomes."""
    try:
        run_one(data)
    except PlaitError:
        pass


class Cursor:
    """Consumes a fuzz input deterministically (a dependency-free FuzzedDataProvider)."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def __bool__(self) -> bool:
        return self.pos < len(self.data)

    def byte(self, default: int = 0) -> int:
        if self.pos >= len(self.data):
            return default
        value = self.data[self.pos]
        self.pos += 1
        return value

    def u16(self) -> int:
        return self.byte() << 8 | self.byte()

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos)


def split(data: bytes, step: int) -> list[bytes]:
    """``data`` cut into pieces of ``step`` bytes (``step`` < 1 means one piece)."""
    if step < 1 or step >= len(data):
        return [data] if data else []
    return [data[i : i + step] for i in range(0, len(data), step)]

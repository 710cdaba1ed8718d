"""What a benchmark run is made of: settings, variants, derived figures, checks, layers.

A *variant* is one measurement (``tcp-bulk``, ``stack-streams``, ...) returning one number in
its unit. Each round runs every selected variant once. A *derived* figure is computed from
other figures of the same round (``serial-ceiling``). A *check* compares a figure with its
ceiling inside each round (a ratio), or a figure with an absolute target; the report gives
the median of the per-round values. A *layer* groups the variants and checks of one part of
the stack; selecting a layer also runs every ceiling its checks need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

__all__ = (
    "KiB",
    "MiB",
    "Check",
    "Derived",
    "Layer",
    "LayerParts",
    "Settings",
    "Variant",
    "format_size",
)

KiB = 1024
MiB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """The options of one benchmark run, as every variant sees them."""

    size: int = 64 * MiB
    """Bytes per bulk transfer (``--size``): the Noise, Yamux and full-stack figures."""
    streams: int = 16
    """Concurrent streams of the multi-stream bulk figures (``--streams``)."""
    rounds: int = 5
    """Measured rounds (``--rounds``)."""
    quick: bool = False
    """Small counts and sizes: a smoke run of a few seconds (``--quick``)."""
    backend: str = "asyncio"
    """The anyio backend (``--backend``)."""
    uvloop: bool = False
    """asyncio on uvloop's event loop (``--uvloop``)."""

    def pick(self, full: int, quick: int) -> int:
        """``full`` operations normally, ``quick`` in a quick run."""
        return quick if self.quick else full


@dataclass(frozen=True, slots=True, kw_only=True)
class Variant:
    """One measurement: ``run(settings)`` returns a figure in ``unit`` (higher is better)."""

    name: str
    layer: str
    unit: str
    note: str
    run: Callable[[Settings], Awaitable[float]]
    warm_up: bool = True
    """Run it once, unrecorded, before the first round (off for slow, stateless ones)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Derived:
    """A figure computed from others of the same round."""

    name: str
    layer: str
    unit: str
    note: str
    inputs: tuple[str, ...]
    compute: Callable[[Mapping[str, float]], float]


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """``numerator / denominator`` per round (or the figure itself when ``denominator`` is
    None), with an optional target it must reach (median of the per-round values)."""

    layer: str
    numerator: str
    denominator: str | None = None
    target: float | None = None
    note: str = ""

    @property
    def name(self) -> str:
        if self.denominator is None:
            return self.numerator
        return f"{self.numerator} / {self.denominator}"

    @property
    def inputs(self) -> tuple[str, ...]:
        if self.denominator is None:
            return (self.numerator,)
        return (self.numerator, self.denominator)


@dataclass(frozen=True, slots=True, kw_only=True)
class Layer:
    """A named group of variants, derived figures and checks built for given settings."""

    name: str
    description: str
    build: Callable[[Settings], LayerParts]
    default: bool = True
    """Part of the default run (``--layer`` absent)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerParts:
    """What a layer contributes to a run."""

    variants: Sequence[Variant] = ()
    derived: Sequence[Derived] = ()
    checks: Sequence[Check] = ()


def format_size(size: int) -> str:
    """``64 MiB``, ``4 KiB``, ``100 B``, ``1.5 MiB``."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", KiB)):
        if size >= scale:
            value = size / scale
            return f"{value:g} {unit}" if value != int(value) else f"{int(value)} {unit}"
    return f"{size} B"

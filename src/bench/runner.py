"""Choosing what runs, running the rounds, and the statistics over them.

Selection. Every layer is built for the run's settings; the selected layers contribute
their variants, derived figures and checks, and every figure a check or a derived figure
needs is added from whichever layer provides it (so ``--layer rpc`` also measures the raw
TCP ping-pong it is compared with).

Rounds (performance.md §5). ``plait bench`` runs each round in a fresh process
(:mod:`plait.bench.isolate`), which calls :func:`run_plan` for one round; ``--in-process``
runs them all here. A warm-up pass runs each variant once at quick sizes, unrecorded
(skipped by ``--quick``). Then each round runs every selected variant once, in a freshly
shuffled order, after a garbage collection, each under a time limit. Derived figures and
check values are computed *inside* each round; the report gives, for every figure and
check, the median of the rounds with its [min..max] (never a ratio of medians). A variant
that fails is recorded with its error and the run goes on; the round's checks that needed
it are skipped.
"""

from __future__ import annotations

import gc
import random
import statistics
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import anyio

from .model import Check, Derived, Layer, MiB, Settings, Variant

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

__all__ = (
    "VARIANT_TIME_LIMIT",
    "Plan",
    "Results",
    "SelectionError",
    "Summary",
    "check_value",
    "plan",
    "run_plan",
    "summarize",
)

VARIANT_TIME_LIMIT = 300.0
"""Seconds one variant may take before it is recorded as failed (60 s in a quick run)."""
QUICK_TIME_LIMIT = 60.0


class SelectionError(ValueError):
    """A requested layer is unknown or a needed figure has no provider."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What one run measures."""

    layers: tuple[str, ...]
    variants: tuple[Variant, ...]
    derived: tuple[Derived, ...]
    checks: tuple[Check, ...]


def plan(layers: Sequence[Layer], selected: Iterable[str], settings: Settings) -> Plan:
    """Build every layer and keep the selected ones plus the figures they depend on.

    :raises SelectionError: an unknown layer, or a dependency no layer provides.
    """
    by_name = {layer.name: layer for layer in layers}
    chosen = list(dict.fromkeys(selected))
    unknown = [name for name in chosen if name not in by_name]
    if unknown:
        raise SelectionError(f"unknown layer(s): {', '.join(unknown)}")
    built = {layer.name: layer.build(settings) for layer in layers}
    variants: dict[str, Variant] = {}
    derived: dict[str, Derived] = {}
    for parts in built.values():
        variants.update((v.name, v) for v in parts.variants)
        derived.update((d.name, d) for d in parts.derived)
    keep: dict[str, Variant] = {}
    keep_derived: dict[str, Derived] = {}
    checks: list[Check] = []

    def need(name: str, why: str) -> None:
        if name in keep or name in keep_derived:
            return
        if name in variants:
            keep[name] = variants[name]
        elif name in derived:
            keep_derived[name] = derived[name]
            for dependency in derived[name].inputs:
                need(dependency, name)
        else:
            raise SelectionError(f"{why} needs the figure {name!r}, which no layer provides")

    for name in chosen:
        parts = built[name]
        for variant in parts.variants:
            need(variant.name, name)
        for d in parts.derived:
            need(d.name, name)
        for check in parts.checks:
            for dependency in check.inputs:
                need(dependency, check.name)
            checks.append(check)
    ordered = tuple(v for v in variants.values() if v.name in keep)
    ordered_derived = tuple(d for d in derived.values() if d.name in keep_derived)
    return Plan(tuple(chosen), ordered, ordered_derived, tuple(checks))


@dataclass
class Results:
    """Per-round figures and check values, and the failures."""

    rounds: list[dict[str, float]] = field(default_factory=list)
    checks: list[dict[str, float]] = field(default_factory=list)
    errors: dict[str, list[str]] = field(default_factory=dict)


    def merge(self, other: Results) -> None:
        """Append ``other``'s rounds and failures to these."""
        self.rounds.extend(other.rounds)
        self.checks.extend(other.checks)
        for name, errors in other.errors.items():
            self.errors.setdefault(name, []).extend(errors)


def check_value(check: Check, values: dict[str, float]) -> float | None:
    """The check's value in one round, or None when a figure is missing or zero."""
    if any(name not in values for name in check.inputs):
        return None
    if check.denominator is None:
        return values[check.numerator]
    denominator = values[check.denominator]
    if denominator <= 0:
        return None
    return values[check.numerator] / denominator



SETTLE_BLOCK = 8 * MiB
"""Size of the block :func:`settle_allocator` allocates and frees."""


def settle_allocator() -> None:
    """Put the process's allocator where a long-running process's is, before measuring.

    glibc serves blocks above its mmap threshold (128 KiB at start) with mmap, and raises
    the threshold to the size of the largest such block once it is freed. asyncio's plain
    protocols allocate 256 KiB per socket read: until something larger was freed, whether
    that allocation is cheap depends on the heap's history, which can make the raw anyio
    TCP ping-pong ceiling up to 40% slower in some rounds than in others. Freeing one 8 MiB
    block first gives every round the same, settled allocator.
    """
    block = bytearray(SETTLE_BLOCK)
    del block


async def run_plan(
    the_plan: Plan,
    settings: Settings,
    progress: Callable[[str], None] | None = None,
    *,
    round_numbers: tuple[int, int] | None = None,
) -> Results:
    """Warm up, then run ``settings.rounds`` rounds (module docstring).

    :param progress: called with a label before each step.
    :param round_numbers: ``(first, total)`` for the labels when these rounds are part of a
        larger run (a child process runs round ``first`` of ``total``).
    """
    first, total = round_numbers if round_numbers is not None else (1, settings.rounds)
    settle_allocator()
    results = Results()
    limit = QUICK_TIME_LIMIT if settings.quick else VARIANT_TIME_LIMIT
    if not settings.quick:
        warm = replace(settings, quick=True, size=min(settings.size, 4 * MiB))
        for variant in the_plan.variants:
            if variant.warm_up:
                if progress is not None:
                    progress(f"warm-up: {variant.name}")
                await _run_one(variant, warm, limit, results)
    for number in range(settings.rounds):
        order = list(the_plan.variants)
        random.shuffle(order)
        values: dict[str, float] = {}
        for variant in order:
            if progress is not None:
                progress(f"round {first + number}/{total}: {variant.name}")
            value = await _run_one(variant, settings, limit, results)
            if value is not None:
                values[variant.name] = value
        for d in the_plan.derived:
            if all(name in values for name in d.inputs):
                values[d.name] = d.compute(values)
        results.rounds.append(values)
        results.checks.append(
            {
                check.name: value
                for check in the_plan.checks
                if (value := check_value(check, values)) is not None
            }
        )
    return results


async def _run_one(
    variant: Variant, settings: Settings, limit: float, results: Results
) -> float | None:
    gc.collect()
    try:
        with anyio.fail_after(limit):
            value = await variant.run(settings)
    except Exception as exc:  # recorded and reported; the run goes on
        text = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, TimeoutError):
            text = f"did not finish within {limit:g} s"
        results.errors.setdefault(variant.name, []).append(text)
        return None
    if not value > 0:
        results.errors.setdefault(variant.name, []).append(f"non-positive figure {value!r}")
        return None
    return value


@dataclass(frozen=True, slots=True)
class Summary:
    """Median, min and max of one figure or check over the rounds."""

    median: float
    min: float
    max: float
    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary | None:
        if not samples:
            return None
        return cls(statistics.median(samples), min(samples), max(samples), tuple(samples))


def summarize(per_round: Sequence[dict[str, float]], names: Iterable[str]) -> dict[str, Summary]:
    """For each name, the summary of its per-round values (names never measured are left
    out)."""
    out: dict[str, Summary] = {}
    for name in names:
        summary = Summary.of([r[name] for r in per_round if name in r])
        if summary is not None:
            out[name] = summary
    return out

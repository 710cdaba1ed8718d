"""The terminal table, the JSON document, and the machine and versions they record."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import TYPE_CHECKING, Any

from .model import format_size

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .model import Check, Derived, Settings, Variant
    from .runner import Plan, Results, Summary

__all__ = ("JSON_SCHEMA_VERSION", "document", "machine_facts", "table", "versions")

JSON_SCHEMA_VERSION = 1


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_facts() -> dict[str, Any]:
    """CPU model, cores, memory, OS and the load average now."""
    facts: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "memory_bytes": _memory_bytes(),
    }
    if hasattr(os, "sched_getaffinity"):
        facts["usable_cores"] = len(os.sched_getaffinity(0))
    if hasattr(os, "getloadavg"):
        facts["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return facts


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """Python, plait and the libraries whose speed the figures depend on."""
    from cryptography.hazmat.backends.openssl.backend import backend

    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "plait": _version("plait"),
        "anyio": _version("anyio"),
        "cryptography": _version("cryptography"),
        "openssl": backend.openssl_version_text(),
        "protobuf": _version("protobuf"),
        "trio": _version("trio"),
        "uvloop": _version("uvloop"),
    }


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _check_text(check: Check, value: float) -> str:
    return _number(value) if check.denominator is None else _ratio(value)


def _target_text(check: Check) -> str:
    if check.target is None:
        return ""
    return f">= {_check_text(check, check.target)}"


def _met(check: Check, summary: Summary | None) -> bool | None:
    if check.target is None or summary is None:
        return None
    return summary.median >= check.target


def _figures_in_order(the_plan: Plan) -> dict[str, Variant | Derived]:
    """Measured figures in plan order, each derived one right after its last input."""
    out: dict[str, Variant | Derived] = {v.name: v for v in the_plan.variants}
    for d in the_plan.derived:
        names = list(out)
        at = max((names.index(n) + 1 for n in d.inputs if n in out), default=len(names))
        items = list(out.items())
        items.insert(at, (d.name, d))
        out = dict(items)
    return out


def header(
    settings: Settings,
    facts: Mapping[str, Any],
    vers: Mapping[str, str | None],
    isolation: str,
) -> str:
    loop = settings.backend + (" + uvloop" if settings.uvloop else "")
    lines = [
        f"plait bench: backend {loop}, {settings.rounds} round(s), {isolation}; both ends "
        "on one event loop, loopback TCP; "
        f"size {format_size(settings.size)}, {settings.streams} streams"
        + (", quick" if settings.quick else ""),
        f"machine: {facts['cpu']}, {facts['cores']} cores, {facts['os']}; "
        f"load {'/'.join(str(x) for x in facts.get('loadavg', []))} at start",
        "versions: "
        + ", ".join(f"{name} {value}" for name, value in vers.items() if value is not None),
    ]
    return "\n".join(lines)


def table(
    the_plan: Plan,
    figures: Mapping[str, Summary],
    checks: Mapping[str, Summary],
    results: Results,
) -> str:
    """The figures, then every check with its target and whether it was met."""
    units = {
        name: (f.layer, f.unit, f.note) for name, f in _figures_in_order(the_plan).items()
    }
    lines = [
        f"{'layer':<8}{'figure':<18}{'median':>12}  {'[min..max]':<24}{'unit':<9}what",
    ]
    for name, (layer, unit, note) in units.items():
        summary = figures.get(name)
        if summary is None:
            lines.append(f"{layer:<8}{name:<18}{'failed':>12}  {'':<24}{unit:<9}{note}")
            continue
        spread = f"[{_number(summary.min)}..{_number(summary.max)}]"
        lines.append(
            f"{layer:<8}{name:<18}{_number(summary.median):>12}  {spread:<24}{unit:<9}{note}"
        )
    lines.append("")
    lines.append(
        f"{'layer':<8}{'check (median of per-round values)':<38}{'median':>9}  "
        f"{'[min..max]':<18}{'target':<10}met"
    )
    met_count = total = 0
    for check in the_plan.checks:
        summary = checks.get(check.name)
        target = _target_text(check)
        if summary is None:
            verdict = "no data" if check.target is not None else ""
            total += check.target is not None
            lines.append(f"{check.layer:<8}{check.name:<38}{'-':>9}  {'':<18}{target:<10}{verdict}")
            continue
        spread = f"[{_check_text(check, summary.min)}..{_check_text(check, summary.max)}]"
        met = _met(check, summary)
        verdict = "" if met is None else ("yes" if met else "NO")
        if met is not None:
            total += 1
            met_count += met
        lines.append(
            f"{check.layer:<8}{check.name:<38}{_check_text(check, summary.median):>9}  "
            f"{spread:<18}{target:<10}{verdict}"
        )
    lines.append("")
    lines.append(f"targets met: {met_count} of {total}")
    for name, errors in results.errors.items():
        lines.append(f"FAILED {name} ({len(errors)}x): {errors[0]}")
    return "\n".join(lines)


def document(
    *,
    settings: Settings,
    the_plan: Plan,
    results: Results,
    figures: Mapping[str, Summary],
    checks: Mapping[str, Summary],
    facts: Mapping[str, Any],
    vers: Mapping[str, str | None],
    started: str,
    elapsed: float,
    load_after: list[float] | None,
    command: list[str],
    isolation: str,
) -> dict[str, Any]:
    """The ``--json`` document."""
    figure_info: dict[str, Any] = {
        name: {"layer": f.layer, "unit": f.unit, "note": f.note, "derived": f in the_plan.derived}
        for name, f in _figures_in_order(the_plan).items()
    }
    out_figures: dict[str, Any] = {}
    for name, info in figure_info.items():
        summary = figures.get(name)
        entry = dict(info)
        if summary is not None:
            entry.update(
                median=summary.median, min=summary.min, max=summary.max,
                samples=list(summary.samples),
            )
        if name in results.errors:
            entry["errors"] = results.errors[name]
        out_figures[name] = entry
    out_checks = []
    for check in the_plan.checks:
        summary = checks.get(check.name)
        entry = {
            "name": check.name,
            "layer": check.layer,
            "numerator": check.numerator,
            "denominator": check.denominator,
            "target": check.target,
            "met": _met(check, summary),
        }
        if summary is not None:
            entry.update(
                median=summary.median, min=summary.min, max=summary.max,
                samples=list(summary.samples),
            )
        out_checks.append(entry)
    return {
        "schema": JSON_SCHEMA_VERSION,
        "started": started,
        "elapsed_s": round(elapsed, 3),
        "command": command,
        "options": {
            "layers": list(the_plan.layers),
            "backend": settings.backend,
            "uvloop": settings.uvloop,
            "rounds": settings.rounds,
            "size": settings.size,
            "streams": settings.streams,
            "quick": settings.quick,
            "isolation": isolation,
        },
        "machine": dict(facts) | {"loadavg_after": load_after},
        "versions": dict(vers),
        "figures": out_figures,
        "checks": out_checks,
        "rounds": results.rounds,
        "errors": results.errors,
    }

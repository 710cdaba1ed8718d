"""``plait bench``: the command line of the benchmark (also ``benchmarks/throughput.py``)."""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import re
import sys
import time
from typing import TYPE_CHECKING

import anyio

from .isolate import CHILD_OPTION, child_round, rounds_in_children
from .layers import BUILTIN_LAYERS
from .model import MiB, Settings
from .progress import ProgressBar
from .report import document, header, machine_facts, table, versions
from .runner import SelectionError, plan, run_plan, summarize

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .model import Layer

__all__ = ("ALL_LAYER_NAMES", "main", "parse_size")

ALL_LAYER_NAMES = ("tcp", "crypto", "noise", "yamux", "stack", "connect", "rpc", "wan")
"""Every layer name ``--layer`` accepts (``wan`` needs the source tree's shaping proxy)."""
QUICK_SIZE = 4 * MiB
QUICK_ROUNDS = 2

DESCRIPTION = """\
Measure every layer of plait against ceilings measured in the same run: raw anyio TCP
(bulk and 100-byte ping-pong), ChaCha20-Poly1305, Noise, Yamux, the full stack
(Yamux over Noise over TCP), connection setup and RPC. Both ends run in this process on
one event loop over TCP on 127.0.0.1. Each round runs every selected measurement once in
a shuffled order; figures are medians over the rounds with [min..max], and each check is
the median of its per-round values (a ratio to a ceiling of the same round).
"""

EPILOG = """\
layers: tcp, crypto, noise, yamux, stack, connect, rpc (the default: all of them), and
wan (Yamux window auto-tuning at 50 ms RTT through the shaping proxy; only from
benchmarks/throughput.py in a source checkout). A layer's ceilings run with it.
Progress goes to stderr when it is a terminal; the table goes to stdout.

targets (performance.md §1, same-round ratios; set on asyncio):
  noise-64k / serial-ceiling >= 0.75    serial-ceiling = 1/(1/tcp-bulk + 1/crypto)
  stack-bulk-1 / serial-ceiling >= 0.60 stack-bulk-n / stack-bulk-1 >= 0.90
  stack-streams >= 5000/s               connect / noise-handshake >= 0.40
  rpc-unary / tcp-pingpong >= 0.50      wan-tuned / wan-fixed >= 10 (wan layer)
"""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from ``67108864``, ``64M``, ``64MiB``, ``512k`` (binary multiples)."""
    match = _SIZE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    number, unit = match.groups()
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get((unit or "b")[0].lower(), 1)
    return int(float(number) * scale)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parser(prog: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--layer", action="append", metavar="LAYER[,LAYER...]",
        help="layers to measure, repeatable or comma-separated; 'all' adds wan "
        "(default: every layer but wan)",
    )
    parser.add_argument("--streams", type=_positive, default=16, metavar="N",
                        help="streams of the multi-stream bulk figures (default 16)")
    parser.add_argument("--size", type=parse_size, default=None, metavar="BYTES",
                        help="bytes per bulk transfer, e.g. 64M (default 64 MiB; 4 MiB quick)")
    parser.add_argument("--rounds", type=_positive, default=None, metavar="N",
                        help="measured rounds (default 5; 2 quick)")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--uvloop", action="store_true",
                        help="run asyncio on uvloop (it must be installed)")
    parser.add_argument("--json", metavar="FILE",
                        help="also write machine-readable results to FILE")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and counts, no warm-up: a few seconds in all")
    parser.add_argument("--in-process", action="store_true",
                        help="run every round in this process (default: a fresh process "
                        "per round, each warmed up)")
    parser.add_argument(CHILD_OPTION, dest="child_round", type=_round, default=None,
                        help=argparse.SUPPRESS)
    return parser


def _round(text: str) -> tuple[int, int]:
    number, _, total = text.partition("/")
    try:
        return int(number), int(total)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not K/N: {text!r}") from None


def _without_json(arguments: Sequence[str]) -> list[str]:
    """The arguments for a child round: the same, less ``--json`` (the parent writes it)."""
    out: list[str] = []
    skip = False
    for argument in arguments:
        if skip:
            skip = False
        elif argument == "--json":
            skip = True
        elif not argument.startswith("--json="):
            out.append(argument)
    return out


def _layers(requested: Sequence[str] | None, available: Sequence[Layer]) -> list[str]:
    names = {layer.name for layer in available}
    if not requested:
        return [layer.name for layer in available if layer.default]
    out: list[str] = []
    for item in requested:
        for name in (part.strip() for part in item.split(",")):
            if not name:
                continue
            if name == "all":
                out.extend(layer.name for layer in available)
            elif name in names:
                out.append(name)
            elif name == "wan":
                raise SelectionError(
                    "the wan layer needs the WAN shaping proxy of the source tree: run "
                    "benchmarks/throughput.py --layer wan from a plait checkout"
                )
            else:
                raise SelectionError(
                    f"unknown layer {name!r} (choose from {', '.join(ALL_LAYER_NAMES)}, all)"
                )
    return list(dict.fromkeys(out))


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = "plait bench",
    extra_layers: Sequence[Layer] = (),
    child_command: Sequence[str] | None = None,
) -> int:
    """Run the benchmark; return the exit status.

    0 when every measurement ran (whether or not the targets were met), 1 when one failed,
    2 on a usage error.

    :param argv: the arguments after the command (default ``sys.argv[1:]``).
    :param prog: the command name shown in usage messages.
    :param extra_layers: layers beyond the built-in ones (``benchmarks/throughput.py`` adds
        ``wan``).
    :param child_command: the command that runs this benchmark again, for the fresh process
        of each round (:mod:`plait.bench.isolate`); default ``python -m plait.bench`` when
        there are no extra layers. With extra layers and no command, every round runs in
        this process (as with ``--in-process``).
    """
    parser = _parser(prog)
    arguments = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(arguments)
    available = [*BUILTIN_LAYERS, *extra_layers]
    if args.uvloop:
        if args.backend != "asyncio":
            parser.error("--uvloop runs asyncio on uvloop: it needs --backend asyncio")
        if importlib.util.find_spec("uvloop") is None:
            parser.error("--uvloop: uvloop is not installed (pip install uvloop)")
    settings = Settings(
        size=args.size if args.size is not None else (QUICK_SIZE if args.quick else 64 * MiB),
        streams=args.streams,
        rounds=args.rounds if args.rounds is not None else (QUICK_ROUNDS if args.quick else 5),
        quick=args.quick,
        backend=args.backend,
        uvloop=args.uvloop,
    )
    if settings.size < settings.streams * 1024:
        parser.error(f"--size must be at least 1 KiB per stream ({settings.streams * 1024})")
    try:
        the_plan = plan(available, _layers(args.layer, available), settings)
    except SelectionError as exc:
        parser.error(str(exc))
    facts, vers = machine_facts(), versions()
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    backend_options = {"use_uvloop": True} if settings.uvloop else None
    if args.child_round is not None:
        number, total = args.child_round
        return child_round(the_plan, settings, number, total, backend_options)
    if child_command is None and not extra_layers:
        child_command = [sys.executable, "-m", "plait.bench"]
    fresh = child_command is not None and not args.in_process
    warm = 0 if settings.quick else sum(v.warm_up for v in the_plan.variants)
    steps = settings.rounds * (warm * fresh + len(the_plan.variants)) + warm * (not fresh)
    bar = ProgressBar(steps)
    clock = time.perf_counter()
    try:
        if fresh:
            assert child_command is not None
            results = rounds_in_children(
                child_command, _without_json(arguments), settings.rounds, bar.step
            )
        else:
            results = anyio.run(
                run_plan, the_plan, settings, bar.step,
                backend=settings.backend, backend_options=backend_options,
            )
    finally:
        bar.close()
    elapsed = time.perf_counter() - clock
    load_after = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    names = [v.name for v in the_plan.variants] + [d.name for d in the_plan.derived]
    figures = summarize(results.rounds, names)
    checks = summarize(results.checks, [c.name for c in the_plan.checks])
    isolation = "a fresh process per round" if fresh else "every round in one process"
    if args.json:
        doc = document(
            settings=settings, the_plan=the_plan, results=results, figures=figures,
            checks=checks, facts=facts, vers=vers, started=started, elapsed=elapsed,
            load_after=load_after, command=[parser.prog, *arguments], isolation=isolation,
        )
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
    print(header(settings, facts, vers, isolation))
    print(f"{elapsed:.0f} s in all; load {'/'.join(map(str, load_after or []))} at the end")
    print()
    print(table(the_plan, figures, checks, results))
    if args.json:
        print(f"\nresults written to {args.json}")
    sys.stdout.flush()
    return 1 if results.errors else 0

#!/usr/bin/env python3
"""plait over a WAN: one Yamux stream over Noise over TCP through a latency-shaping proxy.

Measures the WAN target of performance.md §1: with Yamux window auto-tuning
(yamux.md §2.2, libp2p/rust-yamux#176) one stream at 50 ms RTT must move at least 10× what
a fixed 256 KiB window allows. A fixed window caps a stream at ``window / RTT``
(≈ 5.2 MB/s at 50 ms, 2.6 MB/s at 100 ms) whatever the link; auto-tuning grows the window
towards the bandwidth-delay product (yamux.md §4 lessons 1–2: test it under emulated RTT).

Method. Both ends and the proxy (``benchmarks/wan_proxy.py``, no bandwidth cap unless
``--bandwidth``) run in one process, one event loop. For each variant — RTT × auto-tuning
on/off (off = ``YamuxConfig(auto_tune=False)``, the fixed 256 KiB initial window) — a fresh
connection is set up through the proxy, the client writes 256 KiB chunks on one stream as
fast as it can, and the receiver counts the bytes that arrive during a fixed interval that
starts after a warm-up (the window needs a few round trips to grow). Each round runs every
variant once in a shuffled order; figures are medians over the rounds with [min..max], and
the on/off ratio is computed inside each round, its median reported (performance.md §5).
The receiver's stream window and the RTT the muxer measured are reported too.

Reading the figures. A window W allows at most W per RTT, but the receiver grants credit
only once half the window has been consumed (yamux.md §2.2), and a window-limited sender
sends each grant as one burst: the flow settles at one update of about W/2 per RTT, so a
stream tops out near ``W / (2 × RTT)``: ≈ 168 MB/s at 50 ms and 84 MB/s at 100 ms with the
default 16 MiB ``max_stream_window`` (``--max-window`` raises it), and between 2.6 and
5.2 MB/s for the fixed 256 KiB window at 50 ms. ``--bandwidth`` caps the proxy instead.

Usage: python benchmarks/wan.py [--rtt 50 --rtt 100] [--rounds 3] [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio
from anyio.abc import SocketAttribute

if TYPE_CHECKING:
    from types import ModuleType

    from anyio.abc import SocketListener

MiB = 1024 * 1024
FIXED_WINDOW = 256 * 1024
CHUNK = 256 * 1024


def _load_sibling(name: str) -> ModuleType:
    """Import a module from this directory (benchmarks/ is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


WanProxy = _load_sibling("wan_proxy").WanProxy


@dataclass
class Measurement:
    """One run of one variant."""

    rtt_ms: float
    auto_tune: bool
    mb_per_s: float
    """Bytes received during the measured interval / its length, in MB/s (1e6 bytes)."""
    final_window: int
    """Receive window of the receiving stream at the end, in bytes."""
    muxer_rtt_ms: float | None
    """The RTT the receiving muxer measured with its first ping."""
    window_trace: list[tuple[float, int]] = field(default_factory=list)
    """(seconds since the first byte, window) every time the receiver's window changed."""


async def run_variant(
    rtt: float,
    auto_tune: bool,
    *,
    warmup: float,
    interval: float,
    bandwidth: float | None = None,
    max_window: int | None = None,
) -> Measurement:
    """Stream for ``warmup + interval`` seconds; return the rate over the interval."""
    from plait.muxer import MuxedConnection, YamuxConfig
    from plait.noise import NoiseStream

    config = YamuxConfig(auto_tune=auto_tune)
    if max_window is not None and auto_tune:
        config = replace(config, max_stream_window=max_window)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    secured: dict[str, Any] = {}
    async with listener, WanProxy(
        "127.0.0.1", port, one_way_delay=rtt / 2, bandwidth=bandwidth
    ) as proxy:

        async def accept() -> None:
            tcp = await cast("SocketListener", listener.listeners[0]).accept()
            secured["server"] = await NoiseStream.wrap(tcp, initiator=False)

        async with anyio.create_task_group() as tg:
            tg.start_soon(accept)
            tcp = await anyio.connect_tcp("127.0.0.1", proxy.port)
            secured["client"] = await NoiseStream.wrap(tcp, initiator=True)
        async with (
            MuxedConnection(secured["client"], is_client=True, config=config) as client,
            MuxedConnection(secured["server"], is_client=False, config=config) as server,
        ):
            payload = os.urandom(CHUNK)
            trace: list[tuple[float, int]] = []
            counts: dict[str, float] = {}

            async def send() -> None:
                stream = await client.open_stream()
                while True:
                    await stream.send(payload)

            async with anyio.create_task_group() as tg:
                tg.start_soon(send)
                stream = await server.accept_stream()
                core = server.core
                receive = stream.receive
                got = len(await receive(CHUNK))
                start = anyio.current_time()
                mark = start + warmup
                end = mark + interval
                window = 0
                while True:
                    got += len(await receive(CHUNK))
                    state = core.stream_state(stream.stream_id)
                    if state is not None and state.recv.size != window:
                        window = state.recv.size
                        trace.append((round(anyio.current_time() - start, 4), window))
                    now = anyio.current_time()
                    if "mark" not in counts and now >= mark:
                        counts["mark"], counts["mark_time"] = got, now
                    elif now >= end:
                        counts["end"], counts["end_time"] = got, now
                        break
                tg.cancel_scope.cancel()
            muxer_rtt = server.rtt
    rate = (counts["end"] - counts["mark"]) / (counts["end_time"] - counts["mark_time"]) / 1e6
    return Measurement(
        rtt_ms=rtt * 1000,
        auto_tune=auto_tune,
        mb_per_s=rate,
        final_window=window,
        muxer_rtt_ms=None if muxer_rtt is None else muxer_rtt * 1000,
        window_trace=trace,
    )


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "anyio": version("anyio"),
        "cryptography": version("cryptography"),
        "loadavg": os.getloadavg(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


@dataclass
class Options:
    rtts: list[float]
    rounds: int
    warmup: float
    interval: float
    bandwidth: float | None
    backend: str
    max_window: int | None = None


async def run_all(opts: Options) -> list[list[Measurement]]:
    """Every round runs each (rtt, auto_tune) variant once, in a shuffled order."""
    variants = [(rtt, tuned) for rtt in opts.rtts for tuned in (True, False)]
    rounds = []
    for number in range(opts.rounds):
        random.shuffle(variants)
        results = []
        for rtt, tuned in variants:
            if sys.stderr.isatty():
                print(
                    f"\r\x1b[Kround {number + 1}/{opts.rounds}: {rtt * 1000:.0f} ms, "
                    f"auto-tune {'on' if tuned else 'off'}",
                    end="", file=sys.stderr, flush=True,
                )
            results.append(
                await run_variant(
                    rtt, tuned, warmup=opts.warmup, interval=opts.interval,
                    bandwidth=opts.bandwidth, max_window=opts.max_window,
                )
            )
        rounds.append(results)
    if sys.stderr.isatty():
        print("\r\x1b[K", end="", file=sys.stderr)
    return rounds


def summarize(rounds: list[list[Measurement]], opts: Options) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for rtt in opts.rtts:
        row: dict[str, Any] = {"rtt_ms": rtt * 1000, "fixed_cap_mb_per_s": FIXED_WINDOW / rtt / 1e6}
        for tuned, key in ((True, "on"), (False, "off")):
            runs = [m for r in rounds for m in r if m.rtt_ms == rtt * 1000 and m.auto_tune == tuned]
            rates = [m.mb_per_s for m in runs]
            row[key] = {
                "median": statistics.median(rates),
                "min": min(rates),
                "max": max(rates),
                "samples": rates,
                "final_window_median": statistics.median(m.final_window for m in runs),
                "window_settled_s_median": statistics.median(
                    m.window_trace[-1][0] if m.window_trace else 0.0 for m in runs
                ),
                "muxer_rtt_ms": [m.muxer_rtt_ms for m in runs],
            }
        ratios = []
        for r in rounds:
            on = [m.mb_per_s for m in r if m.rtt_ms == rtt * 1000 and m.auto_tune]
            off = [m.mb_per_s for m in r if m.rtt_ms == rtt * 1000 and not m.auto_tune]
            ratios.append(on[0] / off[0])
        row["ratio"] = {"median": statistics.median(ratios), "min": min(ratios),
                        "max": max(ratios), "samples": ratios}
        table[f"{rtt * 1000:.0f}ms"] = row
    return table


def report(table: dict[str, Any], opts: Options) -> str:
    lines = [
        f"{'RTT':>6}  {'auto-tune on':>22}  {'off (256 KiB)':>20}  {'cap':>5}  "
        f"{'window on':>9}  {'grown at':>8}  {'ratio on/off':>20}  target",
    ]
    for row in table.values():
        on, off, ratio = row["on"], row["off"], row["ratio"]
        target = ""
        if row["rtt_ms"] == 50:
            target = ">= 10 " + ("ok" if ratio["median"] >= 10 else "MISSED")
        lines.append(
            f"{row['rtt_ms']:>4.0f}ms  "
            f"{on['median']:>7.1f} [{on['min']:.1f}..{on['max']:.1f}]".ljust(32)
            + f"{off['median']:>6.2f} [{off['min']:.2f}..{off['max']:.2f}]".ljust(22)
            + f"{row['fixed_cap_mb_per_s']:>5.1f}  "
            + f"{on['final_window_median'] / MiB:>6.1f}MiB  "
            + f"{on['window_settled_s_median']:>7.2f}s  "
            + f"{ratio['median']:>7.1f} [{ratio['min']:.1f}..{ratio['max']:.1f}]".ljust(22)
            + target
        )
    lines.append("MB/s = 1e6 bytes/s, median [min..max] over rounds; cap = 256 KiB / RTT;")
    lines.append("window on = the receiving stream's window at the end, grown at = when it last")
    lines.append("grew (s after the first byte), medians; ratio = median of per-round on/off")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rtt", type=float, action="append",
                        help="round-trip time in ms (repeatable; default 50 and 100)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds before measuring")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds measured")
    parser.add_argument("--bandwidth", type=float, default=None,
                        help="proxy cap in bytes/s per direction (default: none)")
    parser.add_argument("--max-window", type=float, default=None, metavar="MIB",
                        help="max_stream_window for the auto-tuned runs, in MiB "
                        "(default: the YamuxConfig default)")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--quick", action="store_true", help="one short round (smoke run)")
    parser.add_argument("--json", metavar="FILE", help="write machine-readable results")
    args = parser.parse_args(argv)
    opts = Options(
        rtts=[r / 1000 for r in (args.rtt or [50.0, 100.0])],
        rounds=args.rounds,
        warmup=args.warmup,
        interval=args.interval,
        bandwidth=args.bandwidth,
        backend=args.backend,
        max_window=None if args.max_window is None else int(args.max_window * MiB),
    )
    if args.quick:
        opts.rounds, opts.warmup, opts.interval = 1, 0.5, 0.5
    started = time.perf_counter()
    rounds = anyio.run(run_all, opts, backend=opts.backend)
    table = summarize(rounds, opts)
    info = machine()
    cap = "no bandwidth cap" if opts.bandwidth is None else f"cap {opts.bandwidth / 1e6:g} MB/s"
    if opts.max_window is not None:
        cap += f", max_stream_window {opts.max_window / MiB:g} MiB"
    print(
        f"plait WAN: 1 stream, Yamux over Noise over TCP via the shaping proxy ({cap}), "
        f"backend {opts.backend}, one process, {opts.rounds} rounds, warm-up {opts.warmup} s, "
        f"measured {opts.interval} s"
    )
    print(
        f"machine: {info.get('cpu', '?')}, {info['cpus']} CPUs, Python {info['python']}, "
        f"load average {info['loadavg'][0]:.2f} at the end, {time.perf_counter() - started:.0f} s"
    )
    print(report(table, opts))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "machine": info,
                    "options": asdict(opts),
                    "table": table,
                    "runs": [[asdict(m) for m in r] for r in rounds],
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

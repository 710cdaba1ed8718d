#!/usr/bin/env python3
"""plait throughput benchmark: every layer against ceilings measured in the same run.

One process, both ends on one event loop over TCP on 127.0.0.1 (performance.md §5). Each
round runs every selected variant once, in a shuffled order; a figure is reported as the
median of the rounds with its [min..max], and every ratio is computed inside a round (the
median of those per-round ratios is reported, never a ratio of medians).

Ceilings measured in every run:
  raw-tcp          anyio TCP bulk, 256 KiB sends (the transport ceiling)
  raw-tcp-64k      anyio TCP bulk, 64 KiB sends (same write size as the Noise figure)
  raw-tcp-1k       anyio TCP bulk, 1 KiB sends
  crypto           ChaCha20-Poly1305 encrypt+decrypt of 65519-byte blocks, one core
  serial-ceiling   C = 1 / (1/raw-tcp + 1/crypto): one process pays for both

Usage: python benchmarks/throughput.py [--layer noise] [--rounds 5] [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ByteStream, SocketAttribute

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

MiB = 1024 * 1024
RECEIVE_SIZE = 262144


@dataclass
class Options:
    total: int = 64 * MiB
    small_total: int = 8 * MiB
    rounds: int = 5
    backend: str = "asyncio"


@dataclass
class Variant:
    name: str
    unit: str
    run: Callable[[Options], Awaitable[float]]
    layer: str
    note: str = ""


@dataclass
class Results:
    samples: dict[str, list[float]] = field(default_factory=dict)
    ratios: dict[str, list[float]] = field(default_factory=dict)


# -- helpers -------------------------------------------------------------------------


async def tcp_pair() -> tuple[ByteStream, ByteStream, Any]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    client = await anyio.connect_tcp("127.0.0.1", port)
    server = await listener.listeners[0].accept()
    return client, server, listener


async def bulk_transfer(sender: ByteStream, receiver: ByteStream, total: int, write: int) -> float:
    """MB/s from the first send until the receiver acknowledges the last byte."""
    payload = os.urandom(write)
    done = anyio.Event()

    async def receive_all() -> None:
        got = 0
        while got < total:
            got += len(await receiver.receive(RECEIVE_SIZE))
        await receiver.send(b"k")
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(receive_all)
        start = time.perf_counter()
        sent = 0
        while sent < total:
            n = min(write, total - sent)
            await sender.send(payload if n == write else payload[:n])
            sent += n
        await sender.receive(1)
        elapsed = time.perf_counter() - start
    return total / elapsed / 1e6


# -- ceilings ------------------------------------------------------------------------


async def raw_tcp(opts: Options, write: int, total: int) -> float:
    client, server, listener = await tcp_pair()
    async with client, server, listener:
        return await bulk_transfer(client, server, total, write)


async def crypto_ceiling(opts: Options) -> float:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    aead = ChaCha20Poly1305(os.urandom(32))
    block = os.urandom(65519)
    count = max(1, opts.total // 65519)
    start = time.perf_counter()
    for n in range(count):
        nonce = n.to_bytes(12, "little")
        aead.decrypt(nonce, aead.encrypt(nonce, block, None), None)
    elapsed = time.perf_counter() - start
    await anyio.lowlevel.checkpoint()
    return count * 65519 / elapsed / 1e6


# -- noise ---------------------------------------------------------------------------


async def noise_pair() -> tuple[ByteStream, ByteStream, Any]:
    from plait.noise import NoiseStream

    client, server, listener = await tcp_pair()
    result: dict[str, ByteStream] = {}

    async def wrap(name: str, stream: ByteStream, initiator: bool) -> None:
        result[name] = await NoiseStream.wrap(stream, initiator=initiator)

    async with anyio.create_task_group() as tg:
        tg.start_soon(wrap, "i", client, True)
        tg.start_soon(wrap, "r", server, False)
    return result["i"], result["r"], listener


async def noise_bulk(opts: Options, write: int, total: int) -> float:
    client, server, listener = await noise_pair()
    async with client, server, listener:
        return await bulk_transfer(client, server, total, write)


async def noise_handshakes(opts: Options) -> float:
    """Bare Noise XX handshakes over fresh TCP connections per second."""
    count = 50 if opts.total < 64 * MiB else 300
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    from plait.noise import NoiseConfig, NoiseStream, StaticKeypair

    cfg_i = NoiseConfig(static_key=StaticKeypair.generate())
    cfg_r = NoiseConfig(static_key=StaticKeypair.generate())
    async with listener:
        start = time.perf_counter()
        for _ in range(count):
            client = await anyio.connect_tcp("127.0.0.1", port)
            server = await listener.listeners[0].accept()
            async with anyio.create_task_group() as tg:
                tg.start_soon(functools.partial(NoiseStream.wrap, server, cfg_r, initiator=False))
                await NoiseStream.wrap(client, cfg_i, initiator=True)
            await client.aclose()
            await server.aclose()
        elapsed = time.perf_counter() - start
    return count / elapsed


# -- yamux and the full stack ----------------------------------------------------------


async def mux_pair(secure: bool) -> tuple[Any, Any, list[Any]]:
    """Entered (client, server) MuxedConnections over TCP, or over Noise over TCP."""
    from plait.muxer import MuxedConnection

    if secure:
        a, b, listener = await noise_pair()
    else:
        a, b, listener = await tcp_pair()
    client = MuxedConnection(a, is_client=True)
    server = MuxedConnection(b, is_client=False)
    await client.__aenter__()
    await server.__aenter__()
    return client, server, [client, server, listener]


async def close_all(resources: list[Any]) -> None:
    for resource in resources:
        await resource.aclose()


async def mux_bulk(opts: Options, secure: bool, streams: int, total: int) -> float:
    """Aggregate MB/s of ``streams`` concurrent streams each sending total/streams bytes."""
    client, server, resources = await mux_pair(secure)
    per_stream = total // streams
    payload = os.urandom(256 * 1024)

    async def serve(stream: Any) -> None:
        got = 0
        try:
            while True:
                got += len(await stream.receive(RECEIVE_SIZE))
        except anyio.EndOfStream:
            pass
        assert got == per_stream, (got, per_stream)
        await stream.send(b"k")
        await stream.aclose()

    async def accept_all() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(streams):
                tg.start_soon(serve, await server.accept_stream())

    async def send_one() -> None:
        stream = await client.open_stream()
        sent = 0
        while sent < per_stream:
            n = min(len(payload), per_stream - sent)
            await stream.send(payload if n == len(payload) else payload[:n])
            sent += n
        await stream.send_eof()
        assert await stream.receive(1) == b"k"
        await stream.aclose()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(accept_all)
            start = time.perf_counter()
            async with anyio.create_task_group() as senders:
                for _ in range(streams):
                    senders.start_soon(send_one)
            elapsed = time.perf_counter() - start
    finally:
        await close_all(resources)
    return per_stream * streams / elapsed / 1e6


async def mux_stream_rate(opts: Options, secure: bool) -> float:
    """Sequential stream open + 1-byte echo + close, per second."""
    count = 500 if opts.total < 64 * MiB else 3000
    client, server, resources = await mux_pair(secure)

    async def echo(stream: Any) -> None:
        data = await stream.receive()
        await stream.send(data)
        await stream.aclose()

    try:
        async with anyio.create_task_group() as tg:

            async def acceptor() -> None:
                while True:
                    tg.start_soon(echo, await server.accept_stream())

            tg.start_soon(acceptor)
            start = time.perf_counter()
            for _ in range(count):
                stream = await client.open_stream()
                await stream.send(b"x")
                assert await stream.receive() == b"x"
                await stream.aclose()
            elapsed = time.perf_counter() - start
            tg.cancel_scope.cancel()
    finally:
        await close_all(resources)
    return count / elapsed


def variants(opts: Options) -> list[Variant]:
    t, s = opts.total, opts.small_total
    return [
        Variant("raw-tcp", "MB/s", lambda o: raw_tcp(o, 256 * 1024, t), "ceiling", "256 KiB sends"),
        Variant("raw-tcp-64k", "MB/s", lambda o: raw_tcp(o, 65536, t), "ceiling", "64 KiB sends"),
        Variant("raw-tcp-1k", "MB/s", lambda o: raw_tcp(o, 1024, s), "ceiling", "1 KiB sends"),
        Variant("crypto", "MB/s", crypto_ceiling, "ceiling", "ChaChaPoly enc+dec, 65519 B"),
        Variant("noise-64k", "MB/s", lambda o: noise_bulk(o, 65536, t), "noise", "64 KiB sends"),
        Variant("noise-1k", "MB/s", lambda o: noise_bulk(o, 1024, s), "noise", "1 KiB sends"),
        Variant("noise-handshake", "/s", noise_handshakes, "noise", "XX over fresh TCP"),
        Variant(
            "yamux-1x64M",
            "MB/s",
            lambda o: mux_bulk(o, False, 1, t),
            "yamux",
            "plaintext TCP, 1 stream",
        ),
        Variant(
            "yamux-16x4M",
            "MB/s",
            lambda o: mux_bulk(o, False, 16, t),
            "yamux",
            "plaintext TCP, 16 streams",
        ),
        Variant(
            "yamux-streams",
            "/s",
            lambda o: mux_stream_rate(o, False),
            "yamux",
            "open+1B echo+close",
        ),
        Variant(
            "stack-1x64M",
            "MB/s",
            lambda o: mux_bulk(o, True, 1, t),
            "stack",
            "Yamux/Noise/TCP, 1 stream",
        ),
        Variant(
            "stack-16x4M",
            "MB/s",
            lambda o: mux_bulk(o, True, 16, t),
            "stack",
            "Yamux/Noise/TCP, 16 streams",
        ),
        Variant(
            "stack-streams", "/s", lambda o: mux_stream_rate(o, True), "stack", "open+1B echo+close"
        ),
    ]


# Ratios reported per round: (name, numerator, denominator or "serial-ceiling", target).
RATIOS: list[tuple[str, str, str, float | None]] = [
    ("noise-64k / serial-ceiling", "noise-64k", "serial-ceiling", 0.75),
    ("noise-64k / raw-tcp-64k", "noise-64k", "raw-tcp-64k", None),
    ("noise-1k / raw-tcp-1k", "noise-1k", "raw-tcp-1k", None),
    ("yamux-1x64M / raw-tcp", "yamux-1x64M", "raw-tcp", None),
    ("stack-1x64M / serial-ceiling", "stack-1x64M", "serial-ceiling", 0.60),
    ("stack-16x4M / stack-1x64M", "stack-16x4M", "stack-1x64M", 0.90),
    ("yamux-16x4M / yamux-1x64M", "yamux-16x4M", "yamux-1x64M", None),
]


def serial_ceiling(round_values: dict[str, float]) -> float | None:
    if "raw-tcp" in round_values and "crypto" in round_values:
        return 1 / (1 / round_values["raw-tcp"] + 1 / round_values["crypto"])
    return None


async def run_all(
    selected: list[Variant], opts: Options, progress: Callable[[str], None]
) -> Results:
    results = Results()
    for round_no in range(opts.rounds):
        order = selected[:]
        random.shuffle(order)
        values: dict[str, float] = {}
        for variant in order:
            progress(f"round {round_no + 1}/{opts.rounds}: {variant.name}")
            gc.collect()
            values[variant.name] = await variant.run(opts)
            results.samples.setdefault(variant.name, []).append(values[variant.name])
        ceiling = serial_ceiling(values)
        if ceiling is not None:
            values["serial-ceiling"] = ceiling
            results.samples.setdefault("serial-ceiling", []).append(ceiling)
        for name, num, den, _ in RATIOS:
            if num in values and den in values:
                results.ratios.setdefault(name, []).append(values[num] / values[den])
    return results


def machine() -> dict[str, Any]:
    import cryptography

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "anyio": anyio.__version__ if hasattr(anyio, "__version__") else "",
        "cryptography": cryptography.__version__,
    }
    try:
        from importlib.metadata import version

        info["anyio"] = version("anyio")
        info["plait"] = version("plait")
    except Exception:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def report(selected: list[Variant], results: Results, opts: Options) -> str:
    lines = [f"{'figure':<28}{'median':>12}{'  [min..max]':<24}  unit   note"]
    units = {v.name: (v.unit, v.note) for v in selected}
    units["serial-ceiling"] = ("MB/s", "1/(1/raw-tcp + 1/crypto)")
    order = [v.name for v in selected] + ["serial-ceiling"]
    for name in order:
        if name not in results.samples:
            continue
        samples = results.samples[name]
        unit, note = units[name]
        spread = f"[{min(samples):.1f}..{max(samples):.1f}]"
        median = statistics.median(samples)
        lines.append(f"{name:<28}{median:>12.1f}  {spread:<22}  {unit:<5}  {note}")
    if results.ratios:
        lines.append("")
        lines.append(f"{'ratio (same round)':<40}{'median':>8}  {'[min..max]':<16}  target")
        for name, _, _, target in RATIOS:
            if name not in results.ratios:
                continue
            r = results.ratios[name]
            verdict = ""
            if target is not None:
                verdict = f">= {target:.2f} " + (
                    "ok" if statistics.median(r) >= target else "MISSED"
                )
            lines.append(
                f"{name:<40}{statistics.median(r):>8.3f}  [{min(r):.3f}..{max(r):.3f}]".ljust(68)
                + f"  {verdict}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--layer",
        action="append",
        choices=["ceiling", "noise", "yamux", "stack"],
        help="layers to run (default: all)",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=64 * MiB, help="bytes per bulk transfer")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--quick", action="store_true", help="a few seconds in all (smoke run)")
    parser.add_argument("--json", metavar="FILE", help="write machine-readable results")
    args = parser.parse_args(argv)
    opts = Options(total=args.size, rounds=args.rounds, backend=args.backend)
    if args.quick:
        opts = Options(total=4 * MiB, small_total=1 * MiB, rounds=1, backend=args.backend)
    layers = set(args.layer or ["ceiling", "noise", "yamux", "stack"])
    selected = [v for v in variants(opts) if v.layer in layers or v.layer == "ceiling"]
    tty = sys.stderr.isatty()

    def progress(text: str) -> None:
        if tty:
            print(f"\r\x1b[K{text}", end="", file=sys.stderr, flush=True)

    results = anyio.run(run_all, selected, opts, progress, backend=opts.backend)
    if tty:
        print("\r\x1b[K", end="", file=sys.stderr)
    info = machine()
    print(f"plait throughput, backend {opts.backend}, {opts.rounds} rounds, one process, loopback")
    print(f"machine: {info.get('cpu', '?')}, {info['cpus']} CPUs, Python {info['python']}")
    print(report(selected, results, opts))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "machine": info,
                    "options": vars(opts),
                    "samples": results.samples,
                    "ratios": results.ratios,
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

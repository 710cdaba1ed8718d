#!/usr/bin/env python3
"""plait throughput benchmark: every layer against ceilings measured in the same run.

A thin wrapper of ``plait bench`` (:mod:`plait.bench`, which holds the measurements), run by
``make bench``. From the source tree it adds one layer, ``wan`` (``--layer wan`` or
``--layer all``): one stream of the full stack through the shaping proxy
(``benchmarks/wan_proxy.py``) at 50 ms RTT with Yamux window auto-tuning on and off
(``YamuxConfig(auto_tune=False)``, the fixed 256 KiB window); target: on/off >= 10 in the
same round. ``benchmarks/wan.py`` is the full WAN profile (several RTTs, window traces).

Usage: python benchmarks/throughput.py [--layer rpc,connect] [--rounds 5] [--quick]
       [--backend trio] [--json FILE]; --help lists every option.
"""

from __future__ import annotations

import sys
from pathlib import Path

from plait.bench import Check, Layer, LayerParts, Settings, Variant, main

WAN_RTT = 0.050
"""Round-trip time of the wan layer, seconds (the WAN target's RTT, performance.md §1)."""


def _wan_parts(settings: Settings) -> LayerParts:
    import wan  # this file runs as a script: benchmarks/ is sys.path[0]
    warmup, interval = (0.3, 0.5) if settings.quick else (1.5, 3.0)

    async def measure(auto_tune: bool) -> float:
        result = await wan.run_variant(WAN_RTT, auto_tune, warmup=warmup, interval=interval)
        return float(result.mb_per_s)

    rtt = f"{WAN_RTT * 1000:.0f} ms RTT"
    return LayerParts(
        variants=[
            Variant(
                name="wan-tuned", layer="wan", unit="MB/s", warm_up=False,
                note=f"1 stream, full stack via the shaping proxy, {rtt}, auto-tuning on",
                run=lambda s: measure(True),
            ),
            Variant(
                name="wan-fixed", layer="wan", unit="MB/s", warm_up=False,
                note=f"the same with a fixed 256 KiB window (cap ≈ {0.262144 / WAN_RTT:.1f} MB/s)",
                run=lambda s: measure(False),
            ),
        ],
        checks=[Check(layer="wan", numerator="wan-tuned", denominator="wan-fixed", target=10.0)],
    )


WAN_LAYER = Layer(
    name="wan",
    description="Yamux auto-tuning at 50 ms RTT through the shaping proxy",
    build=_wan_parts,
    default=False,
)


if __name__ == "__main__":
    sys.exit(
        main(
            sys.argv[1:],
            prog="benchmarks/throughput.py",
            extra_layers=[WAN_LAYER],
            child_command=[sys.executable, str(Path(__file__).resolve())],
        )
    )

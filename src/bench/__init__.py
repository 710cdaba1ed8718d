"""plait.bench: throughput and latency of every layer against same-run ceilings.

``plait bench`` (also ``python -m plait.bench``, ``benchmarks/throughput.py`` and
``make bench``) measures, in one process over TCP on 127.0.0.1, raw anyio TCP (bulk and
100-byte ping-pong), ChaCha20-Poly1305, Noise, Yamux over plaintext, the full stack (Yamux
over Noise over TCP), connection setup and RPC, each against a ceiling measured in the same
round, and prints a table of the figures and of the targets of performance.md §1 with
whether each was met. ``--json FILE`` writes the results with the machine and versions.

The pieces: :mod:`plait.bench.model` (settings, variants, checks, layers),
:mod:`plait.bench.layers` and :mod:`plait.bench.rpc` (the measurements),
:mod:`plait.bench.runner` (selection, rounds, statistics), :mod:`plait.bench.isolate` (a
fresh process per round, the default), :mod:`plait.bench.report`
(table, JSON, machine facts), :mod:`plait.bench.cli` (:func:`main`). Extra layers (the WAN
profile of ``benchmarks/``) plug in through ``main(extra_layers=...)``.
"""

from __future__ import annotations

from .cli import main as main
from .model import Check as Check
from .model import Derived as Derived
from .model import Layer as Layer
from .model import LayerParts as LayerParts
from .model import Settings as Settings
from .model import Variant as Variant

__all__ = ("Check", "Derived", "Layer", "LayerParts", "Settings", "Variant", "main")

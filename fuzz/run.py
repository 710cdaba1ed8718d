#!/usr/bin/env python3
"""Run one atheris fuzz harness: ``python fuzz/run.py --target NAME --seconds N``.

Targets: noise, yamux, negotiation, rpc, identity (``fuzz/fuzz_<name>.py``). The corpus
lives in ``fuzz/corpus/<name>/`` (seeded from the harness's ``SEEDS`` on the first run and
grown by libFuzzer); a crashing input is written to ``fuzz/crashes/<name>/`` and the run
exits non-zero. ``--replay FILE...`` runs inputs once without atheris (to reproduce a
crash with a normal traceback). Extra arguments after ``--`` go to libFuzzer.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = ("noise", "yamux", "negotiation", "rpc", "identity", "messaging")


def _seed_corpus(name: str, seeds: list[bytes]) -> Path:
    corpus = HERE / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        path = corpus / ("seed-" + hashlib.sha1(seed).hexdigest())
        if not path.exists():
            path.write_bytes(seed)
    return corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, choices=TARGETS)
    parser.add_argument("--seconds", type=int, default=600, help="libFuzzer -max_total_time")
    parser.add_argument("--max-len", type=int, default=8192, help="libFuzzer -max_len")
    parser.add_argument("--replay", nargs="+", type=Path, help="run these inputs once, no atheris")
    parser.add_argument("libfuzzer_args", nargs="*", help="after --: passed to libFuzzer")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    module_name = f"fuzz_{args.target}"

    if args.replay:
        module = importlib.import_module(module_name)
        for path in args.replay:
            print(f"replaying {path}", flush=True)
            module.TestOneInput(path.read_bytes())
        return 0

    import atheris  # type: ignore[import-not-found]

    with atheris.instrument_imports(include=["plait"]):
        module = importlib.import_module(module_name)
    corpus = _seed_corpus(args.target, module.SEEDS)
    crashes = HERE / "crashes" / args.target
    crashes.mkdir(parents=True, exist_ok=True)
    libfuzzer = [
        sys.argv[0],
        f"-max_total_time={args.seconds}",
        f"-max_len={args.max_len}",
        f"-artifact_prefix={crashes}/",
        "-print_final_stats=1",
        *args.libfuzzer_args,
        str(corpus),
    ]
    atheris.Setup(libfuzzer, module.TestOneInput)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())

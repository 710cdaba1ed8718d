#!/usr/bin/env python3
"""Run one atheris fuzz harness: ``python fuzz/run.py --target NAME --seconds N``.

Targets: noise, yamux, negotiation, rpc, identity, messaging (``fuzz/fuzz_<name>.py``). The
corpus lives in ``fuzz/corpus/<name>/`` (seeded from the harness's ``SEEDS`` on the first
run and grown by libFuzzer); a crashing input is written to ``fuzz/crashes/<name>/`` and the
run exits non-zero. ``--replay FILE...`` runs inputs once without atheris (to reproduce a
crash with a normal traceback). ``--minimize`` merges the corpus down to a minimal set with
the same coverage. Extra arguments after ``--`` go to libFuzzer.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

HERE = Path(__file__).resolve().parent
TARGETS = ("noise", "yamux", "negotiation", "rpc", "identity", "messaging")
_CHILD_ENV = "PLAIT_FUZZ_TARGET"
"""Set for the processes libFuzzer re-executes during a merge (they get only its flags)."""


def _seed_corpus(name: str, seeds: list[bytes]) -> Path:
    corpus = HERE / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        path = corpus / ("seed-" + hashlib.sha1(seed).hexdigest())
        if not path.exists():
            path.write_bytes(seed)
    return corpus


def _instrumented(target: str) -> ModuleType:
    """Import the harness with every plait module it pulls in instrumented for coverage."""
    import atheris  # type: ignore[import-not-found]

    with atheris.instrument_imports(include=["plait"]):
        return importlib.import_module(f"fuzz_{target}")


def _fuzz(module: ModuleType, libfuzzer_argv: list[str]) -> None:
    """Hand libFuzzer its arguments and the harness (does not return)."""
    import atheris

    atheris.Setup(libfuzzer_argv, module.TestOneInput)
    atheris.Fuzz()


def _minimize(target: str, corpus: Path, max_len: int) -> int:
    """libFuzzer ``-merge=1`` into a fresh directory, which then replaces the corpus.

    libFuzzer runs the merge by re-executing its argv[0] (through the shell) with only its
    own flags; argv[0] is therefore this interpreter and script, and the target travels in
    the environment.
    """
    merged = corpus.with_name(corpus.name + ".min")
    shutil.rmtree(merged, ignore_errors=True)
    merged.mkdir()
    argv0 = f"{shlex.quote(sys.executable)} {shlex.quote(str(Path(__file__).resolve()))}"
    env = {**os.environ, _CHILD_ENV: target}
    command = [sys.executable, str(Path(__file__).resolve()), "-merge=1",
               f"-max_len={max_len}", str(merged), str(corpus)]
    env["PLAIT_FUZZ_ARGV0"] = argv0
    result = subprocess.run(command, env=env, check=False)
    if result.returncode:
        shutil.rmtree(merged, ignore_errors=True)
        return result.returncode
    shutil.rmtree(corpus)
    merged.rename(corpus)
    print(f"{corpus}: {len(list(corpus.iterdir()))} inputs", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(HERE))
    child_target = os.environ.get(_CHILD_ENV)
    if child_target and argv is None:  # a merge process started by libFuzzer
        argv0 = os.environ.get("PLAIT_FUZZ_ARGV0", sys.argv[0])
        _fuzz(_instrumented(child_target), [argv0, *sys.argv[1:]])
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--target", required=True, choices=TARGETS)
    parser.add_argument("--seconds", type=int, default=600, help="libFuzzer -max_total_time")
    parser.add_argument("--max-len", type=int, default=8192, help="libFuzzer -max_len")
    parser.add_argument("--replay", nargs="+", type=Path, help="run these inputs once, no atheris")
    parser.add_argument("--minimize", action="store_true",
                        help="merge the corpus into a minimal one with the same coverage")
    parser.add_argument("libfuzzer_args", nargs="*", help="after --: passed to libFuzzer")
    args = parser.parse_args(argv)

    if args.replay:
        module = importlib.import_module(f"fuzz_{args.target}")
        for path in args.replay:
            print(f"replaying {path}", flush=True)
            module.TestOneInput(path.read_bytes())
        return 0
    if args.minimize:
        return _minimize(args.target, HERE / "corpus" / args.target, args.max_len)

    module = _instrumented(args.target)
    corpus = _seed_corpus(args.target, module.SEEDS)
    crashes = HERE / "crashes" / args.target
    crashes.mkdir(parents=True, exist_ok=True)
    _fuzz(module, [
        sys.argv[0],
        f"-max_total_time={args.seconds}",
        f"-max_len={args.max_len}",
        f"-artifact_prefix={crashes}/",
        "-print_final_stats=1",
        *args.libfuzzer_args,
        str(corpus),
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())

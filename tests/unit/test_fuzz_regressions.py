"""Every input kept in fuzz/corpus/regressions/<target>/ replays cleanly.

An atheris run writes a crashing input to fuzz/crashes/<target>/; once the bug (or the
harness) is fixed, the input is copied here so it can never come back unnoticed. Replaying
means running the harness's ``TestOneInput``: only PlaitErrors may escape.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

FUZZ_DIR = Path(__file__).resolve().parents[2] / "fuzz"
REGRESSIONS = FUZZ_DIR / "corpus" / "regressions"
CASES = sorted(p for p in REGRESSIONS.glob("*/*") if p.is_file())


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_regression_input_replays(path: Path) -> None:
    if str(FUZZ_DIR) not in sys.path:
        sys.path.insert(0, str(FUZZ_DIR))
    module = importlib.import_module(f"fuzz_{path.parent.name}")
    module.TestOneInput(path.read_bytes())


def test_there_are_regression_inputs() -> None:
    assert CASES, "fuzz/corpus/regressions/ is empty"


@pytest.mark.parametrize("target", ["noise", "yamux", "negotiation", "rpc", "identity",
                                    "messaging"])
def test_committed_corpus_replays(target: str) -> None:
    """Every input of the fuzz corpus (minimized and committed) still ends in a typed
    outcome, so a change that breaks a parser on known-interesting input fails here too."""
    if str(FUZZ_DIR) not in sys.path:
        sys.path.insert(0, str(FUZZ_DIR))
    module = importlib.import_module(f"fuzz_{target}")
    inputs = sorted((FUZZ_DIR / "corpus" / target).glob("*"))
    assert inputs, f"fuzz/corpus/{target}/ is empty"
    for path in inputs:
        module.TestOneInput(path.read_bytes())

"""The atheris harnesses in fuzz/ run without atheris, so they cannot rot.

Each harness's one-input function runs on its seeds, on a few edge inputs and on a batch
of seeded pseudo-random inputs; it may only end normally or with a PlaitError (that is what
``TestOneInput`` accepts), and every seed must get past the first byte into the parser.
"""

from __future__ import annotations

import importlib
import random
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from types import ModuleType

FUZZ_DIR = Path(__file__).resolve().parents[2] / "fuzz"
TARGETS = ("noise", "yamux", "negotiation", "rpc", "identity", "messaging")


def load(target: str) -> ModuleType:
    if str(FUZZ_DIR) not in sys.path:
        sys.path.insert(0, str(FUZZ_DIR))
    return importlib.import_module(f"fuzz_{target}")


def test_runner_knows_every_harness() -> None:
    runner = (FUZZ_DIR / "run.py").read_text()
    for target in TARGETS:
        assert f'"{target}"' in runner
        assert (FUZZ_DIR / f"fuzz_{target}.py").is_file()


@pytest.mark.parametrize("target", TARGETS)
def test_seeds_and_edges(target: str) -> None:
    module = load(target)
    assert len(module.SEEDS) >= 4
    inputs = [*module.SEEDS, b"", b"\x00", b"\xff" * 3, bytes(range(256))]
    for data in inputs:
        module.TestOneInput(data)


@pytest.mark.parametrize("target", TARGETS)
def test_random_inputs(target: str) -> None:
    module = load(target)
    rng = random.Random(target)
    for _ in range(200):
        seed = bytearray(rng.choice(module.SEEDS))
        for _ in range(rng.randint(1, 4)):  # a few byte mutations of a seed
            if seed:
                seed[rng.randrange(len(seed))] = rng.randrange(256)
        module.TestOneInput(bytes(seed))
        module.TestOneInput(rng.randbytes(rng.randint(0, 300)))


def test_a_non_plait_exception_is_a_crash() -> None:
    common = load("noise").test_one_input

    def raises(data: bytes) -> None:
        raise IndexError(data)

    with pytest.raises(IndexError):
        common(raises, b"x")

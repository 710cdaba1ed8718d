"""The benchmark runs end to end with --quick (a few seconds), so it cannot rot.

``benchmarks/throughput.py`` (the wrapper ``make bench`` runs, with the wan layer) on asyncio
with a fresh process per round, and ``python -m plait.bench`` (what ``plait bench`` runs) on
trio with every round in one process; each writes --json, whose figures must cover every
layer with sane positive numbers. No timing is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.network

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "throughput.py"
BUILTIN_LAYERS = ("tcp", "crypto", "noise", "yamux", "stack", "connect", "rpc")
TARGETED_CHECKS = {
    "noise-64k / serial-ceiling": 0.75,
    "stack-bulk-1 / serial-ceiling": 0.60,
    "stack-bulk-n / stack-bulk-1": 0.90,
    "stack-streams": 5000.0,
    "connect / noise-handshake": 0.40,
    "rpc-unary / tcp-pingpong": 0.50,
}


def run_quick(command: list[str], out: Path) -> tuple[dict[str, Any], str]:
    result = subprocess.run(
        [*command, "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == "", "no progress bar when stderr is not a terminal"
    return json.loads(out.read_text()), result.stdout


def check_document(
    data: dict[str, Any], layers: tuple[str, ...], backend: str, isolation: str
) -> None:
    assert data["options"]["backend"] == backend
    assert data["options"]["isolation"] == isolation
    assert data["options"]["quick"] is True
    rounds = data["options"]["rounds"]
    assert rounds == 2 and len(data["rounds"]) == rounds
    assert data["errors"] == {}
    figures = data["figures"]
    assert {f["layer"] for f in figures.values()} == set(layers)
    for name, figure in figures.items():
        assert len(figure["samples"]) == rounds, name
        assert all(v > 0 for v in figure["samples"]), name
        assert figure["min"] <= figure["median"] <= figure["max"], name
        assert figure["unit"] and figure["note"], name
    for name in ("tcp-bulk", "tcp-pingpong", "crypto", "serial-ceiling", "noise-64k",
                 "noise-1k", "noise-pingpong", "yamux-pingpong", "stack-pingpong", "yamux-bulk-1", "yamux-bulk-n", "yamux-streams", "stack-bulk-1",
                 "stack-bulk-n", "stack-streams", "noise-handshake", "connect", "rpc-unary",
                 "rpc-unary-pool", "rpc-stream-1k", "rpc-stream-1m", "rpc-session"):
        assert name in figures, name
    # the serial ceiling is below both of its inputs in every round
    for values in data["rounds"]:
        assert values["serial-ceiling"] < min(values["tcp-bulk"], values["crypto"])
    checks = {c["name"]: c for c in data["checks"]}
    for name, target in TARGETED_CHECKS.items():
        assert checks[name]["target"] == target, name
        assert checks[name]["met"] is (checks[name]["median"] >= target), name
        assert len(checks[name]["samples"]) == rounds
        assert all(v > 0 for v in checks[name]["samples"]), name
    machine, versions = data["machine"], data["versions"]
    assert machine["cpu"] and machine["cores"] >= 1 and machine["os"]
    for package in ("python", "plait", "anyio", "cryptography"):
        assert versions[package], package


def test_wrapper_script_quick_run_covers_every_layer(tmp_path: Path) -> None:
    data, stdout = run_quick(
        [sys.executable, str(SCRIPT), "--layer", "all"], tmp_path / "bench.json"
    )
    check_document(data, (*BUILTIN_LAYERS, "wan"), "asyncio", "a fresh process per round")
    assert data["figures"]["wan-tuned"]["median"] > 0
    assert data["figures"]["wan-fixed"]["median"] > 0
    assert {c["name"]: c for c in data["checks"]}["wan-tuned / wan-fixed"]["target"] == 10.0
    assert "targets met:" in stdout and "serial-ceiling" in stdout


def test_module_quick_run_on_trio_in_process(tmp_path: Path) -> None:
    data, stdout = run_quick(
        [sys.executable, "-m", "plait.bench", "--backend", "trio", "--in-process"],
        tmp_path / "bench.json",
    )
    check_document(data, BUILTIN_LAYERS, "trio", "every round in one process")
    assert "wan-tuned" not in data["figures"]
    assert "backend trio" in stdout and "targets met:" in stdout

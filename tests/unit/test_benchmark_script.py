"""The benchmark script runs end to end (a few seconds with --quick), so it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "throughput.py"


def test_quick_run_reports_every_layer_and_ratio(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    data = json.loads(out.read_text())
    for name in ("raw-tcp", "crypto", "noise-64k", "yamux-1x64M", "stack-1x64M", "stack-streams"):
        assert data["samples"][name] and all(v > 0 for v in data["samples"][name]), name
    assert "stack-1x64M / serial-ceiling" in data["ratios"]
    assert data["machine"]["python"]
    assert "serial-ceiling" in result.stdout

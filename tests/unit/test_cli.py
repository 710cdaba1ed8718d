"""The command line: --version and the demo transcript."""

from __future__ import annotations

import io
import subprocess
import sys

import plait
from plait.demo import run_demo


def test_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "plait", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"plait {plait.__version__}"


def test_demo_transcript_shows_the_handshake_sizes_and_the_echo() -> None:
    out = io.StringIO()
    assert run_demo(out) == 0
    text = out.getvalue()
    assert "alice → wire     34 bytes  len=0020" in text
    assert "bob → wire     98 bytes  len=0060" in text
    assert "alice → wire     66 bytes  len=0040" in text
    assert "both sides authenticated" in text
    assert "'hello from alice'" in text

"""The installed ``plait`` console script (pyproject ``[project.scripts]``), run as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import plait

SCRIPT = Path(sys.executable).parent / "plait"


def test_installed_script_prints_the_version_and_runs_the_demo() -> None:
    assert SCRIPT.exists(), f"{SCRIPT} missing: install plait (make test does) to get the script"
    version = subprocess.run([str(SCRIPT), "--version"], capture_output=True, text=True,
                             timeout=60, check=True)
    assert plait.__version__ in version.stdout
    demo = subprocess.run([str(SCRIPT), "demo"], capture_output=True, text=True, timeout=60,
                          check=True)
    assert "NO_SERVER_SESSIONS_AVAILABLE" in demo.stdout
    assert "Noise XX message 2" in demo.stdout

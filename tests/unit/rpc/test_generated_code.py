"""The committed protobuf code under src/**/proto/ matches what the pinned protoc makes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.skipif(
    importlib.util.find_spec("grpc_tools") is None,
    reason="grpc_tools is not installed (install the 'proto' extra)",
)
def test_generated_protobuf_code_is_up_to_date() -> None:
    env = dict(os.environ)
    # protoc finds the protoc-gen-mypy plugin on PATH; it sits beside this interpreter.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_proto.py"), "--check"],
        capture_output=True,
        text=True,
        env=env,
        timeout=100,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "up to date" in result.stdout


def test_generated_rpc_code_imports_under_the_installed_runtime() -> None:
    from plait.rpc.proto import greeting_pb2, rpc_pb2

    assert rpc_pb2.DESCRIPTOR.package == "tari.comms.rpc"
    assert greeting_pb2.DESCRIPTOR.package == "plait.greeting"

"""The RPC cores stay sans-IO (style.md §3): no event loop, socket or clock imports."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

SANS_IO = ["_framing", "_limits", "_pool_state", "_session", "config", "errors", "events", "status"]
FORBIDDEN = {"anyio", "trio", "asyncio", "socket", "time", "logging", "threading"}


@pytest.mark.parametrize("module", SANS_IO)
def test_core_module_imports_no_io(module: str) -> None:
    spec = importlib.util.find_spec(f"plait.rpc.{module}")
    assert spec is not None
    assert spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level and node.module:
            assert node.module.split(".")[0] not in {"client", "server", "pool", "greeting"}, (
                f"{module} imports the adapter {node.module}"
            )
    assert not imported & FORBIDDEN, imported & FORBIDDEN

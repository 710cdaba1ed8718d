"""Fixtures for the Yamux interop tests against real third-party peers (yamux.md §6).

Two peers, both echo programs kept under this folder:

- ``hashicorp``: ``hashicorp_echo/main.go`` over Debian's 2019 copy of hashicorp/yamux,
  built on first use into ``bin/hashicorp_echo`` (Go 1.19, ``GO111MODULE=off``,
  ``GOPATH=/usr/share/gocode``; yamux.md §6.1);
- ``node``: ``node/peer.mjs`` over @chainsafe/libp2p-yamux 8.0.1, dependencies installed
  on first use with ``npm ci`` (yamux.md §6.2).

``tools/install_interop_toolchains.sh`` installs Go, the Debian package and the npm
dependencies. When ``go`` (or Debian's yamux source) or ``node``/``npm`` is missing, the
tests of that peer are skipped with the reason stated, unless ``PLAIT_REQUIRE_INTEROP=1``
(CI), where a missing toolchain fails them. A build that fails with the toolchain present
always fails. Process handling lives in ``yamux_peers.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest
from yamux_peers import HERE, PeerOptions, PeerServer, PeerTools

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

BIN_DIR = HERE / "bin"
GO_SRC = HERE / "hashicorp_echo"
NODE_DIR = HERE / "node"
DEBIAN_YAMUX = Path("/usr/share/gocode/src/github.com/hashicorp/yamux/session.go")
PEER_KINDS = ("hashicorp", "node")
#: Seconds a Go build or ``npm ci`` may take.
BUILD_TIMEOUT = 300.0


def interop_required() -> bool:
    """CI sets PLAIT_REQUIRE_INTEROP=1: a missing peer is then a failure, not a skip."""
    return os.environ.get("PLAIT_REQUIRE_INTEROP", "") not in ("", "0")


def unavailable(reason: str) -> NoReturn:
    if interop_required():
        pytest.fail(f"{reason} (PLAIT_REQUIRE_INTEROP=1 forbids skipping)", pytrace=False)
    pytest.skip(
        f"{reason}; run tools/install_interop_toolchains.sh "
        "(PLAIT_REQUIRE_INTEROP=1 turns this skip into a failure)"
    )


def _build_failed(what: str, proc: subprocess.CompletedProcess[str]) -> NoReturn:
    pytest.fail(
        f"{what} failed with exit code {proc.returncode}:\n{proc.stdout}\n{proc.stderr}",
        pytrace=False,
    )


def _build_hashicorp() -> PeerTools:
    go = shutil.which("go")
    if go is None:
        unavailable("hashicorp peer: 'go' is not installed (Debian package golang-go)")
    if not DEBIAN_YAMUX.exists():
        unavailable(
            "hashicorp peer: Debian's hashicorp/yamux source is missing "
            "(package golang-github-hashicorp-yamux-dev)"
        )
    binary = BIN_DIR / "hashicorp_echo"
    source = GO_SRC / "main.go"
    if not binary.exists() or binary.stat().st_mtime < source.stat().st_mtime:
        BIN_DIR.mkdir(exist_ok=True)
        tmp = BIN_DIR / f".hashicorp_echo.{os.getpid()}"
        env = {
            **os.environ,
            "GO111MODULE": "off",
            "GOPATH": "/usr/share/gocode",
            "GOCACHE": str(BIN_DIR / ".gocache"),
        }
        proc = subprocess.run(
            [go, "build", "-o", str(tmp), "."],
            cwd=GO_SRC, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
            check=False,
        )
        if proc.returncode != 0:
            _build_failed("go build of tests/interop/hashicorp_echo", proc)
        tmp.replace(binary)
    return PeerTools("hashicorp", (str(binary),))


def _install_node() -> PeerTools:
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        unavailable("node peer: 'node' and 'npm' are required (Node.js 20)")
    lock = NODE_DIR / "package-lock.json"
    stamp = NODE_DIR / "node_modules" / ".plait-npm-ci-stamp"
    # Same stamp as tools/install_interop_toolchains.sh: a copy of the lock npm ci used.
    if not (stamp.exists() and stamp.read_bytes() == lock.read_bytes()):
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False,
        )
        if proc.returncode != 0:
            _build_failed("npm ci in tests/interop/node", proc)
        shutil.copyfile(lock, stamp)
    return PeerTools("node", (node, str(NODE_DIR / "peer.mjs")))


@pytest.fixture(scope="session")
def hashicorp_tools() -> PeerTools:
    """The built hashicorp echo program (built once per session)."""
    return _build_hashicorp()


@pytest.fixture(scope="session")
def node_tools() -> PeerTools:
    """The Node echo program with its npm dependencies installed."""
    return _install_node()


@pytest.fixture(params=PEER_KINDS)
def peer_kind(request: pytest.FixtureRequest) -> str:
    """Each test using a peer runs against hashicorp and node."""
    return str(request.param)


@pytest.fixture
def peer_tools(peer_kind: str, request: pytest.FixtureRequest) -> PeerTools:
    tools = request.getfixturevalue(f"{peer_kind}_tools")
    assert isinstance(tools, PeerTools)
    return tools


@pytest.fixture(scope="session")
def _default_servers() -> Iterator[dict[str, PeerServer]]:
    """Default-configured servers, started on first use, one per peer kind."""
    servers: dict[str, PeerServer] = {}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def peer_server(
    peer_tools: PeerTools,
    _default_servers: dict[str, PeerServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> PeerServer:
    """The session's default-configured echo server of the current peer kind."""
    server = _default_servers.get(peer_tools.kind)
    if server is None or server.proc.poll() is not None:
        stderr_path = tmp_path_factory.mktemp(f"{peer_tools.kind}-server") / "stderr.txt"
        server = peer_tools.start_server(PeerOptions(), stderr_path)
        _default_servers[peer_tools.kind] = server
    return server


@pytest.fixture
def start_peer_server(
    peer_tools: PeerTools, tmp_path: Path
) -> Iterator[Callable[[PeerOptions], PeerServer]]:
    """Factory for echo servers with test hooks; each is stopped at test teardown."""
    started: list[PeerServer] = []

    def start(options: PeerOptions) -> PeerServer:
        server = peer_tools.start_server(options, tmp_path / f"server{len(started)}-stderr.txt")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()

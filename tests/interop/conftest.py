"""Fixtures for the Yamux interop tests against real third-party peers (yamux.md §6).

Two peers, both echo programs kept under this folder:

- ``hashicorp``: ``hashicorp_echo/main.go`` over Debian's 2019 copy of hashicorp/yamux,
  built on first use into ``bin/hashicorp_echo`` (Go 1.19, ``GO111MODULE=off``,
  ``GOPATH=/usr/share/gocode``; yamux.md §6.1);
- ``node``: ``node/peer.mjs`` over @chainsafe/libp2p-yamux 8.0.1, dependencies installed
  on first use with ``npm ci`` (yamux.md §6.2).

``tools/install_interop_toolchains.sh`` installs Go, the Debian package and the npm
dependencies. When ``go`` (or Debian's yamux source) or ``node``/``npm`` is missing, the
tests of that peer are skipped with the reason stated — unless ``PLAIT_REQUIRE_INTEROP=1``
(CI), where a missing toolchain fails them. A build that fails with the toolchain present
always fails.

A peer server is a subprocess listening on 127.0.0.1:0; the fixture reads the bound port
from its ``LISTENING`` line (with a timeout), collects its stdout lines (``EVENT ...``
reports, see the programs' headers) in a thread, sends its stderr to a file, and kills it
at teardown. Both programs get ``--watch-stdin`` so they exit if this process dies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, NoReturn

import anyio
import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

HERE = Path(__file__).resolve().parent
BIN_DIR = HERE / "bin"
GO_SRC = HERE / "hashicorp_echo"
NODE_DIR = HERE / "node"
DEBIAN_YAMUX = Path("/usr/share/gocode/src/github.com/hashicorp/yamux/session.go")
PEER_KINDS = ("hashicorp", "node")
#: Seconds a peer server may take to print its LISTENING line.
STARTUP_TIMEOUT = 20.0
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


# --------------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerOptions:
    """Test hooks of the echo programs; ``None``/0 keeps the library default."""

    keepalive: float | None = None
    """Seconds between the peer's keep-alive pings."""
    write_timeout: float | None = None
    """hashicorp only: ConnectionWriteTimeout, which is also its pong deadline."""
    stream_limit: int | None = None
    """hashicorp: AcceptBacklog; node: maxInboundStreams. Excess SYNs are reset."""
    accept_delay: float | None = None
    """hashicorp server only: seconds before the first AcceptStream of a session."""
    idle: float | None = None
    """Client only: seconds between session start and opening streams."""
    reset_every: int = 0
    """Every K-th stream of a connection is reset by the peer ..."""
    reset_after: int = 0
    """... after this many bytes (server: echoed, client: written)."""

    def argv(self, kind: str) -> list[str]:
        if kind == "hashicorp":
            return self._go_argv()
        return self._node_argv()

    def _go_argv(self) -> list[str]:
        def dur(seconds: float) -> str:
            return f"{round(seconds * 1000)}ms"

        args: list[str] = []
        if self.keepalive is not None:
            args += ["-keepalive", dur(self.keepalive)]
        if self.write_timeout is not None:
            args += ["-write-timeout", dur(self.write_timeout)]
        if self.stream_limit is not None:
            args += ["-backlog", str(self.stream_limit)]
        if self.accept_delay is not None:
            args += ["-accept-delay", dur(self.accept_delay)]
        if self.idle is not None:
            args += ["-idle", dur(self.idle)]
        if self.reset_every:
            args += ["-reset-every", str(self.reset_every), "-reset-after", str(self.reset_after)]
        return args

    def _node_argv(self) -> list[str]:
        if self.write_timeout is not None or self.accept_delay is not None:
            raise ValueError("write_timeout and accept_delay exist only for the hashicorp peer")
        args: list[str] = []
        if self.keepalive is not None:
            args += ["--keepalive", str(round(self.keepalive * 1000))]
        if self.stream_limit is not None:
            args += ["--max-inbound", str(self.stream_limit)]
        if self.idle is not None:
            args += ["--idle", str(round(self.idle * 1000))]
        if self.reset_every:
            args += ["--reset-every", str(self.reset_every), "--reset-after", str(self.reset_after)]
        return args


# --------------------------------------------------------------------------- output


class LineLog:
    """Lines of a subprocess pipe, collected by a daemon thread; waitable."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self._lines: list[str] = []
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self._thread.start()

    def _pump(self, pipe: IO[bytes]) -> None:
        with pipe:
            for raw in pipe:
                with self._cond:
                    self._lines.append(raw.decode(errors="replace").rstrip("\n"))
                    self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def lines(self) -> list[str]:
        with self._cond:
            return list(self._lines)

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float) -> bool:
        """Block until ``predicate(lines)`` holds (True) or timeout/EOF (False)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: predicate(self._lines) or self._closed, timeout
            ) and predicate(self._lines)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


@dataclass(frozen=True, slots=True)
class Event:
    """One ``EVENT <kind> key=value ...`` line of a peer."""

    kind: str
    fields: dict[str, str]

    @classmethod
    def parse(cls, line: str) -> Event | None:
        parts = line.split()
        if len(parts) < 2 or parts[0] != "EVENT":
            return None
        fields = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
        return cls(parts[1], fields)


def _parse_events(lines: list[str], kind: str, remote: int | None) -> list[Event]:
    events = [e for e in map(Event.parse, lines) if e is not None and e.kind == kind]
    if remote is not None:
        events = [e for e in events if e.fields.get("remote") == str(remote)]
    return events


# --------------------------------------------------------------------------- peers


@dataclass
class PeerServer:
    """A running peer server; ``port`` is its bound port on 127.0.0.1."""

    kind: str
    proc: subprocess.Popen[bytes]
    stdout: LineLog
    stderr_path: Path
    port: int = 0

    def events(self, kind: str, remote: int | None = None) -> list[Event]:
        """The server's ``EVENT kind`` lines so far, optionally for one client port."""
        return _parse_events(self.stdout.lines(), kind, remote)

    async def wait_events(
        self, kind: str, remote: int | None, count: int = 1, timeout: float = 10.0
    ) -> list[Event]:
        """Wait until ``count`` ``EVENT kind`` lines for ``remote`` arrived; fail otherwise."""

        def enough(lines: list[str]) -> bool:
            return len(_parse_events(lines, kind, remote)) >= count

        ok = await anyio.to_thread.run_sync(
            self.stdout.wait_for, enough, timeout, abandon_on_cancel=True
        )
        if not ok:
            pytest.fail(
                f"{self.kind} server: expected {count} 'EVENT {kind}' for remote={remote} "
                f"within {timeout} s\n{self.describe()}",
                pytrace=False,
            )
        return self.events(kind, remote)

    def assert_alive(self) -> None:
        code = self.proc.poll()
        assert code is None, f"{self.kind} server exited with {code}\n{self.describe()}"

    def describe(self) -> str:
        out = "\n".join(self.stdout.lines()[-40:])
        try:
            err = self.stderr_path.read_text(errors="replace")[-4000:]
        except OSError:
            err = ""
        return f"--- {self.kind} server stdout (tail) ---\n{out}\n--- stderr (tail) ---\n{err}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.stdout.join(5)


@dataclass(frozen=True, slots=True)
class ClientResult:
    """Outcome of one run of a peer in client mode."""

    returncode: int
    stdout: str
    stderr: str
    result: dict[str, int] = field(default_factory=dict)
    """The ``RESULT`` line's counters: streams, failed, ok, local_resets, remote_resets,
    pongs."""

    def describe(self) -> str:
        return (
            f"exit code {self.returncode}\n--- stdout ---\n{self.stdout}\n"
            f"--- stderr (tail) ---\n{self.stderr[-4000:]}"
        )


@dataclass(frozen=True, slots=True)
class PeerTools:
    """How to run one peer kind."""

    kind: str
    argv0: tuple[str, ...]

    def server_argv(self, options: PeerOptions) -> list[str]:
        if self.kind == "hashicorp":
            mode = ["-mode", "server", "-addr", "127.0.0.1:0", "-watch-stdin"]
        else:
            mode = ["server", "0", "--watch-stdin"]
        return [*self.argv0, *mode, *options.argv(self.kind)]

    def client_argv(self, port: int, streams: int, size: int, options: PeerOptions) -> list[str]:
        if self.kind == "hashicorp":
            mode = ["-mode", "client", "-addr", f"127.0.0.1:{port}",
                    "-streams", str(streams), "-size", str(size)]
        else:
            mode = ["client", str(port), str(streams), str(size)]
        return [*self.argv0, *mode, *options.argv(self.kind)]

    def start_server(self, options: PeerOptions, stderr_path: Path) -> PeerServer:
        with stderr_path.open("wb") as err:
            proc = subprocess.Popen(
                self.server_argv(options),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=HERE,
            )
        assert proc.stdout is not None
        server = PeerServer(self.kind, proc, LineLog(proc.stdout), stderr_path)
        started = server.stdout.wait_for(
            lambda lines: any(line.startswith("LISTENING ") for line in lines), STARTUP_TIMEOUT
        )
        if not started:
            server.stop()
            pytest.fail(
                f"{self.kind} server printed no LISTENING line within {STARTUP_TIMEOUT} s\n"
                f"{server.describe()}",
                pytrace=False,
            )
        line = next(x for x in server.stdout.lines() if x.startswith("LISTENING "))
        server.port = int(line.split()[1].rsplit(":", 1)[-1])
        return server

    async def run_client(
        self, port: int, streams: int, size: int, options: PeerOptions, timeout: float = 30.0
    ) -> ClientResult:
        """Run the peer's client against 127.0.0.1:``port``; it is killed on timeout."""
        with anyio.fail_after(timeout):
            done = await anyio.run_process(
                self.client_argv(port, streams, size, options), check=False, cwd=HERE
            )
        stdout = done.stdout.decode(errors="replace")
        result: dict[str, int] = {}
        for line in stdout.splitlines():
            if line.startswith("RESULT "):
                result = {k: int(v) for k, v in (p.split("=", 1) for p in line.split()[1:])}
        return ClientResult(done.returncode, stdout, done.stderr.decode(errors="replace"), result)


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
def _default_servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, PeerServer]]:
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

"""Running the Yamux interop peers: options, server processes, client runs (yamux.md §6).

Used by ``conftest.py`` (which builds the peers and owns the server processes) and by the
tests. A peer server is a subprocess listening on 127.0.0.1:0: :meth:`PeerTools.start_server`
reads the bound port from its ``LISTENING`` line (with a timeout), a daemon thread collects
its stdout lines (the ``EVENT ...`` reports described in the programs' headers) and its
stderr goes to a file. :meth:`PeerTools.run_client` runs the peer in client mode as an anyio
subprocess, killed when the timeout expires, and parses its ``RESULT`` line. Both programs
get ``--watch-stdin`` in server mode, so they exit if the test process dies.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import anyio
import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ("HERE", "ClientResult", "Event", "LineLog", "PeerOptions", "PeerServer", "PeerTools")

HERE = Path(__file__).resolve().parent
#: Seconds a peer server may take to print its LISTENING line.
STARTUP_TIMEOUT = 20.0

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



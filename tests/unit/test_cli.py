"""The command line: --version, every subcommand's --help, usage errors, plait bench's
dispatch to plait.bench.main, and the demo entry point."""

from __future__ import annotations

import subprocess
import sys

import plait
import pytest
from plait.cli import main

PLAIT = [sys.executable, "-m", "plait"]


def test_version() -> None:
    out = subprocess.run([*PLAIT, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"plait {plait.__version__}"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ([], ["demo", "node", "call", "bench"]),
        (["demo"], ["usage: plait demo", "NO_SERVER_SESSIONS_AVAILABLE"]),
        (["node"], ["--listen", "--identity", "--max-sessions", "--max-sessions-per-peer"]),
        (["call"], ["ADDRESS", "say_hello", "--peer-id", "--json"]),
        (["bench"], ["usage: plait bench", "--layer", "--quick"]),
    ],
)
def test_every_subcommand_has_help(
    command: list[str], expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for text in expected:
        assert text in out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ["call", "tcp://127.0.0.1:1", "no_such_method", "x"],
        ["call", "tcp://127.0.0.1:1", "get_greetings", "many"],
        ["call", "tcp://127.0.0.1:1", "say_hello", "x", "--language", "-1"],
        ["node", "--max-sessions", "-1"],
    ],
)
def test_usage_errors_exit_2(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(command)
    assert info.value.code == 2
    assert "usage: plait" in capsys.readouterr().err


def test_call_to_a_closed_port_fails_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["call", f"tcp://127.0.0.1:{port}", "say_hello", "x", "--timeout", "5"]) == 1
    assert capsys.readouterr().err.startswith("plait call: ")


def test_bench_passes_the_remaining_arguments_to_plait_bench(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # an unknown layer is a usage error of plait.bench itself, reported under its name
    with pytest.raises(SystemExit) as info:
        main(["bench", "--layer", "no-such-layer"])
    assert info.value.code == 2
    assert "plait bench" in capsys.readouterr().err


def test_bench_without_a_main_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import plait.bench

    monkeypatch.delattr(plait.bench, "main")
    assert main(["bench", "--quick"]) == 2
    assert "plait bench: plait.bench has no main" in capsys.readouterr().err

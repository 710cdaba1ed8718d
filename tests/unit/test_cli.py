"""The command line: --version, every subcommand's --help, the documented exit status,
usage errors, Ctrl-C as exit status 130, plait bench's dispatch to plait.bench.main, and
plait node --metrics without prometheus-client."""

from __future__ import annotations

import os
import subprocess
import sys

import plait
import plait.cli
import pytest
from plait.cli import EXIT_INTERRUPTED, main

PLAIT = [sys.executable, "-m", "plait"]


def test_version() -> None:
    out = subprocess.run([*PLAIT, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"plait {plait.__version__}"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ([], ["demo", "node", "call", "bench", "exit status:", "130", "Ctrl-C"]),
        (["demo"], ["usage: plait demo", "NO_SERVER_SESSIONS_AVAILABLE", "--backend"]),
        (["node"], ["--listen", "--identity", "--max-sessions", "--max-sessions-per-peer",
                    "--metrics HOST:PORT", "--json", "plait[metrics]"]),
        (["call"], ["ADDRESS", "say_hello", "--peer-id", "--json", "--timeout"]),
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
        ["node", "--metrics", "nope"],
        ["node", "--metrics", "127.0.0.1:65536"],
        ["node", "--metrics", ":9464"],
        ["node", "--metrics", "127.0.0.1:port"],
        ["no-such-command"],
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


def test_top_level_help_lists_every_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for code in ("0", "1", "2", "130"):
        assert any(line.split()[:1] == [code] for line in out.splitlines()), code


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:0", ("::1", 0)),
     ("localhost:80", ("localhost", 80))],
)
def test_metrics_address_parsing(text: str, expected: tuple[str, int]) -> None:
    args = plait.cli._build_parser().parse_args(["node", "--metrics", text])
    assert args.metrics == expected


@pytest.mark.parametrize(
    "interrupt",
    [KeyboardInterrupt(), BaseExceptionGroup("g", [KeyboardInterrupt(), KeyboardInterrupt()])],
)
def test_ctrl_c_is_exit_status_130_without_a_traceback(
    interrupt: BaseException, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: object) -> int:
        raise interrupt

    monkeypatch.setattr(plait.cli, "_run_call", interrupted)
    assert main(["call", "tcp://127.0.0.1:1", "say_hello", "x"]) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == "\n"


def test_an_error_beside_ctrl_c_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    def failed(*args: object) -> int:
        raise BaseExceptionGroup("g", [KeyboardInterrupt(), RuntimeError("bug")])

    monkeypatch.setattr(plait.cli, "_run_call", failed)
    with pytest.raises(BaseExceptionGroup):
        main(["call", "tcp://127.0.0.1:1", "say_hello", "x"])


def test_node_metrics_without_prometheus_client_fails_clearly() -> None:
    code = ("import sys; sys.modules['prometheus_client'] = None; from plait.cli import main; "
            "sys.exit(main(['node', '--listen', 'tcp://127.0.0.1:0', '--metrics', "
            "'127.0.0.1:0']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1
    assert done.stdout == ""  # the node never started
    assert done.stderr.startswith("plait node: --metrics: plait.metrics needs prometheus-client")
    assert "pip install 'plait[metrics]'" in done.stderr


def test_a_closed_stdout_pipe_ends_quietly() -> None:
    # `plait demo | head -c0`: the reader is gone before plait writes its transcript
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([*PLAIT, "demo"], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=60, check=False)
    finally:
        os.close(write_end)
    assert done.returncode == 1
    assert done.stderr == ""

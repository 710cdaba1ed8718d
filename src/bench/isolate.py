"""A fresh process per round (performance.md §5), the default of ``plait bench``.

The parent re-runs the same command with the hidden option ``--_round K/N``; that child
builds the same plan, warms up (unless quick), runs one round in a shuffled order and
reports on its stdout as lines ``@plait-bench {json}``: one ``{"step": label}`` per step
(the parent draws the progress bar from them) and a final ``{"values": ..., "checks":
..., "errors": ...}``. Each round thus starts from a fresh interpreter and heap, and the
figures of one round never carry the state another left behind. A child that dies is
recorded as a failure of its round (with the tail of its stderr) and the run goes on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import anyio

from .runner import Results, run_plan

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from .model import Settings
    from .runner import Plan

__all__ = ("CHILD_OPTION", "MESSAGE_PREFIX", "child_round", "rounds_in_children")

CHILD_OPTION = "--_round"
"""The hidden option that makes a run one child round: ``--_round K/N``."""
MESSAGE_PREFIX = "@plait-bench "
"""Marks the child's messages on its stdout."""
STDERR_TAIL = 2000
"""Characters of a failed child's stderr kept in the error."""


def _emit(message: Mapping[str, Any]) -> None:
    sys.stdout.write(MESSAGE_PREFIX + json.dumps(message) + "\n")
    sys.stdout.flush()


def child_round(
    the_plan: Plan,
    settings: Settings,
    number: int,
    total: int,
    backend_options: dict[str, Any] | None,
) -> int:
    """Run round ``number`` of ``total`` in this process and report it on stdout."""

    def step(label: str) -> None:
        _emit({"step": label})

    results = anyio.run(
        lambda: run_plan(
            the_plan, replace(settings, rounds=1), step, round_numbers=(number, total)
        ),
        backend=settings.backend,
        backend_options=backend_options,
    )
    _emit({"values": results.rounds[0], "checks": results.checks[0], "errors": results.errors})
    return 0


def rounds_in_children(
    command: Sequence[str],
    arguments: Sequence[str],
    rounds: int,
    progress: Callable[[str], None],
) -> Results:
    """Run ``rounds`` child processes one after the other and collect their rounds."""
    results = Results()
    for number in range(1, rounds + 1):
        results.merge(_one_child([*command, *arguments, CHILD_OPTION, f"{number}/{rounds}"],
                                 number, progress))
    return results


def _one_child(argv: list[str], number: int, progress: Callable[[str], None]) -> Results:
    outcome: Results | None = None
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as stderr:
        with subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True
        ) as child:
            assert child.stdout is not None
            for line in child.stdout:
                if not line.startswith(MESSAGE_PREFIX):
                    continue
                message = json.loads(line[len(MESSAGE_PREFIX):])
                if "step" in message:
                    progress(str(message["step"]))
                elif "values" in message:
                    outcome = Results(
                        rounds=[message["values"]],
                        checks=[message["checks"]],
                        errors={k: list(v) for k, v in message["errors"].items()},
                    )
        status = child.returncode
        if status == 0 and outcome is not None:
            return outcome
        stderr.seek(0)
        tail = stderr.read()[-STDERR_TAIL:].strip()
    reason = f"the process of round {number} exited with status {status}"
    return Results(errors={f"round {number}": [f"{reason}: {tail}" if tail else reason]})

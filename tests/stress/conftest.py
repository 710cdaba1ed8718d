"""Stress-suite plumbing: full-size variants carry the ``stress`` marker (``make stress`` runs
``pytest -m stress tests/stress``); their quick variants run in the default suite.

Each scenario prints its elapsed time and peak RSS as it ends (visible with ``pytest -s``);
the figures of the full-size variants are repeated in a summary at the end of the run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .harness import MEASUREMENTS, set_full_variant

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(autouse=True)
def _tag_full_variants(request: pytest.FixtureRequest) -> Iterator[None]:
    set_full_variant(request.node.get_closest_marker("stress") is not None)
    yield
    set_full_variant(False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    full = [measurement for measurement in MEASUREMENTS if measurement.full]
    if full:
        terminalreporter.section("stress: elapsed time and peak RSS")
        for measurement in full:
            terminalreporter.write_line(measurement.line())

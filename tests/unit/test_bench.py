"""plait.bench without the network: selection, per-round statistics, report, CLI, progress."""

from __future__ import annotations

import argparse
import io
import json
import sys
from typing import TYPE_CHECKING

import pytest
from plait.bench import Check, Derived, Layer, LayerParts, Settings, Variant, main
from plait.bench.cli import _without_json, parse_size
from plait.bench.isolate import MESSAGE_PREFIX, rounds_in_children
from plait.bench.layers import BUILTIN_LAYERS
from plait.bench.progress import ProgressBar
from plait.bench.runner import Plan, SelectionError, Summary, check_value, plan, run_plan, summarize

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator
    from pathlib import Path


def scripted(values: list[float]) -> Callable[[Settings], Awaitable[float]]:
    """A variant returning the next of ``values`` each time it runs."""
    it: Iterator[float] = iter(values)

    async def run(settings: Settings) -> float:
        return next(it)

    return run


def fake_layer(num: list[float], den: list[float], *, target: float = 1.2) -> Layer:
    def build(settings: Settings) -> LayerParts:
        return LayerParts(
            variants=[
                Variant(name="num", layer="fake", unit="/s", note="n", run=scripted(num),
                        warm_up=False),
                Variant(name="den", layer="fake", unit="/s", note="d", run=scripted(den),
                        warm_up=False),
            ],
            derived=[
                Derived(name="sum", layer="fake", unit="/s", note="num + den",
                        inputs=("num", "den"), compute=lambda v: v["num"] + v["den"]),
            ],
            checks=[Check(layer="fake", numerator="num", denominator="den", target=target)],
        )

    return Layer(name="fake", description="scripted figures", build=build, default=False)


# -- sizes and selection -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [("65536", 65536), ("64M", 64 << 20), ("64MiB", 64 << 20), ("512k", 512 << 10),
     ("1.5m", 3 << 19), ("2G", 2 << 30), ("100b", 100)],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_parse_size_rejects_garbage() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a size"):
        parse_size("lots")


def names(the_plan: Plan) -> set[str]:
    return {v.name for v in the_plan.variants}


def test_a_layer_brings_only_the_ceilings_its_checks_need() -> None:
    rpc = plan(BUILTIN_LAYERS, ["rpc"], Settings())
    assert names(rpc) == {"rpc-unary", "rpc-unary-pool", "rpc-stream-1k", "rpc-stream-1m",
                          "rpc-session", "tcp-pingpong", "stack-pingpong"}
    noise = plan(BUILTIN_LAYERS, ["noise"], Settings())
    assert names(noise) == {"noise-64k", "noise-1k", "noise-pingpong", "tcp-bulk",
                            "tcp-bulk-64k", "tcp-bulk-1k", "tcp-pingpong", "crypto"}
    assert [d.name for d in noise.derived] == ["serial-ceiling"]
    connect = plan(BUILTIN_LAYERS, ["connect"], Settings())
    assert names(connect) == {"connect", "noise-handshake"}
    assert [c.target for c in connect.checks] == [0.40]


def test_the_default_plan_has_every_target() -> None:
    the_plan = plan(BUILTIN_LAYERS, [layer.name for layer in BUILTIN_LAYERS], Settings())
    targets = {c.name: c.target for c in the_plan.checks if c.target is not None}
    assert targets == {
        "noise-64k / serial-ceiling": 0.75,
        "stack-bulk-1 / serial-ceiling": 0.60,
        "stack-bulk-n / stack-bulk-1": 0.90,
        "stack-streams": 5000.0,
        "connect / noise-handshake": 0.40,
        "rpc-unary / tcp-pingpong": 0.50,
    }
    assert len(names(the_plan)) == len(the_plan.variants)  # each figure measured once


def test_unknown_layer_and_missing_dependency() -> None:
    with pytest.raises(SelectionError, match="unknown layer"):
        plan(BUILTIN_LAYERS, ["nope"], Settings())

    def build(settings: Settings) -> LayerParts:
        return LayerParts(checks=[Check(layer="x", numerator="ghost")])

    with pytest.raises(SelectionError, match="ghost"):
        plan([Layer(name="x", description="", build=build)], ["x"], Settings())


# -- rounds and statistics ----------------------------------------------------------------


def test_check_value() -> None:
    ratio = Check(layer="l", numerator="a", denominator="b")
    assert check_value(ratio, {"a": 3.0, "b": 2.0}) == 1.5
    assert check_value(ratio, {"a": 3.0}) is None
    assert check_value(ratio, {"a": 3.0, "b": 0.0}) is None
    assert check_value(Check(layer="l", numerator="a", target=2.0), {"a": 3.0}) == 3.0


@pytest.mark.anyio
async def test_ratios_are_medians_of_per_round_ratios(anyio_backend: str) -> None:
    num, den = [1.0, 2.0, 3.0], [3.0, 1.0, 2.0]
    the_plan = plan([fake_layer(num, den)], ["fake"], Settings())
    labels: list[str] = []
    results = await run_plan(the_plan, Settings(rounds=3, quick=True), labels.append)
    assert results.errors == {}
    assert [r["num"] / r["den"] for r in results.rounds] == [1 / 3, 2.0, 1.5]
    assert [r["sum"] for r in results.rounds] == [4.0, 3.0, 5.0]
    summary = summarize(results.checks, ["num / den"])["num / den"]
    assert summary == Summary(1.5, 1 / 3, 2.0, (1 / 3, 2.0, 1.5))  # not 2.0/2.0 = 1.0
    assert sorted(labels) == sorted(f"round {i}/3: {n}" for i in (1, 2, 3) for n in ("num", "den"))


@pytest.mark.anyio
async def test_a_failing_variant_is_recorded_and_the_run_goes_on(anyio_backend: str) -> None:
    async def broken(settings: Settings) -> float:
        raise RuntimeError("boom")

    def build(settings: Settings) -> LayerParts:
        return LayerParts(
            variants=[
                Variant(name="ok", layer="b", unit="/s", note="", run=scripted([5.0, 6.0])),
                Variant(name="bad", layer="b", unit="/s", note="", run=broken),
                Variant(name="zero", layer="b", unit="/s", note="", run=scripted([0.0, 0.0])),
            ],
            checks=[Check(layer="b", numerator="ok", denominator="bad")],
        )

    the_plan = plan([Layer(name="b", description="", build=build)], ["b"], Settings())
    results = await run_plan(the_plan, Settings(rounds=2, quick=True))
    assert [r["ok"] for r in results.rounds] == [5.0, 6.0]
    assert results.errors["bad"] == ["RuntimeError: boom"] * 2
    assert results.errors["zero"] == ["non-positive figure 0.0"] * 2
    assert results.checks == [{}, {}]


# -- the command line ----------------------------------------------------------------------


def test_main_writes_json_and_a_table_with_verdicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    layer = fake_layer([2.0, 3.0], [1.0, 1.0], target=2.2)
    status = main(
        ["--layer", "fake", "--quick", "--json", str(out)], extra_layers=[layer]
    )
    assert status == 0
    data = json.loads(out.read_text())
    assert data["figures"]["num"]["samples"] == [2.0, 3.0]
    assert data["figures"]["sum"]["derived"] is True
    (check,) = data["checks"]
    assert check["name"] == "num / den" and check["median"] == 2.5 and check["met"] is True
    assert data["options"]["layers"] == ["fake"] and data["options"]["rounds"] == 2
    assert data["options"]["isolation"] == "every round in one process"  # extra layers
    assert data["command"][1:] == ["--layer", "fake", "--quick", "--json", str(out)]
    stdout = capsys.readouterr().out
    assert "targets met: 1 of 1" in stdout
    assert "num / den" in stdout and "yes" in stdout


def test_main_reports_a_missed_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--layer", "fake", "--quick"], extra_layers=[fake_layer([1.0] * 2, [1.0] * 2)]) == 0
    stdout = capsys.readouterr().out
    assert "targets met: 0 of 1" in stdout and " NO" in stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--layer", "wan"], "benchmarks/throughput.py --layer wan"),
        (["--layer", "tcp,bogus"], "unknown layer 'bogus'"),
        (["--backend", "trio", "--uvloop"], "needs --backend asyncio"),
        (["--streams", "0"], "must be at least 1"),
        (["--size", "1k", "--streams", "16"], "at least 1 KiB per stream"),
    ],
)
def test_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc_info:
        main(argv)
    assert exc_info.value.code == 2
    assert message in capsys.readouterr().err


# -- progress -------------------------------------------------------------------------------


def test_progress_is_silent_off_a_terminal() -> None:
    stream = io.StringIO()
    bar = ProgressBar(3, stream=stream)
    bar.step("round 1/1: tcp-bulk")
    bar.close()
    assert stream.getvalue() == ""


def test_progress_draws_when_enabled() -> None:
    stream = io.StringIO()
    bar = ProgressBar(4, stream=stream, enabled=True)
    bar.step("first")
    bar.step("second")
    bar.close()
    text = stream.getvalue()
    assert "[" + "." * 20 + "] 0/4" in text and "first" in text
    assert "[" + "#" * 5 + "." * 15 + "] 1/4" in text and "second" in text
    assert text.endswith("\r\x1b[K")


# -- a fresh process per round ----------------------------------------------------------------

CHILD = f"""
import json, sys
k = sys.argv[sys.argv.index("--_round") + 1].split("/")[0]
print("noise a child may print")
def emit(m):
    print({MESSAGE_PREFIX!r} + json.dumps(m), flush=True)
emit({{"step": "round " + k + ": x"}})
emit({{"values": {{"x": float(k)}}, "checks": {{"x": float(k)}}, "errors": {{}}}})
"""


def test_rounds_in_children_collects_each_round() -> None:
    labels: list[str] = []
    results = rounds_in_children([sys.executable, "-c", CHILD], ["--quick"], 3, labels.append)
    assert results.rounds == [{"x": 1.0}, {"x": 2.0}, {"x": 3.0}]
    assert results.checks == results.rounds
    assert results.errors == {}
    assert labels == ["round 1: x", "round 2: x", "round 3: x"]


def test_a_child_that_dies_is_a_failed_round() -> None:
    crash = "import sys; sys.stderr.write('it broke'); sys.exit(3)"
    results = rounds_in_children([sys.executable, "-c", crash], [], 2, lambda label: None)
    assert results.rounds == []
    assert results.errors == {
        f"round {n}": [f"the process of round {n} exited with status 3: it broke"] for n in (1, 2)
    }


def test_children_get_the_arguments_without_json() -> None:
    assert _without_json(["--quick", "--json", "out.json", "--layer", "rpc", "--json=x"]) == [
        "--quick", "--layer", "rpc"
    ]

"""Yamux window auto-tuning under a real 50 ms RTT (yamux.md §2.2 and §4 lessons 1–2,
performance.md §1 "WAN"): the full stack (Yamux over Noise over TCP) through the shaping
proxy of benchmarks/wan_proxy.py. With auto-tuning the receiving stream's window grows
well past 256 KiB and a fixed transfer finishes several times sooner than with the fixed
256 KiB window, which caps a stream at 256 KiB per RTT (≈ 5 MB/s here)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from anyio.abc import SocketAttribute
from plait.muxer import MuxedConnection, YamuxConfig
from plait.noise import NoiseStream

if TYPE_CHECKING:
    from types import ModuleType

pytestmark = [pytest.mark.anyio, pytest.mark.network]

ONE_WAY_DELAY = 0.025  # 50 ms RTT
TOTAL = 6 * 1024 * 1024
INITIAL_WINDOW = 256 * 1024


def _load_proxy() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "wan_proxy.py"
    spec = importlib.util.spec_from_file_location("wan_proxy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("wan_proxy", module)
    spec.loader.exec_module(module)
    return module


WanProxy = _load_proxy().WanProxy


@dataclass
class Transfer:
    seconds: float
    """From the first send until the receiver's one-byte acknowledgement arrived."""
    max_window: int
    """Largest receive window the receiving stream had."""
    receiver_rtt: float | None
    """RTT the receiving muxer measured with its ping."""


async def transfer_through_proxy(config: YamuxConfig) -> Transfer:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    secured: dict[str, Any] = {}
    async with listener, WanProxy("127.0.0.1", port, one_way_delay=ONE_WAY_DELAY) as proxy:

        async def accept() -> None:
            tcp = await listener.listeners[0].accept()
            secured["server"] = await NoiseStream.wrap(tcp, initiator=False)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(accept)
                tcp = await anyio.connect_tcp("127.0.0.1", proxy.port)
                secured["client"] = await NoiseStream.wrap(tcp, initiator=True)
        async with (
            MuxedConnection(secured["client"], is_client=True, config=config) as client,
            MuxedConnection(secured["server"], is_client=False, config=config) as server,
        ):
            payload = os.urandom(256 * 1024)
            max_window = 0

            async def receive_all() -> None:
                nonlocal max_window
                stream = await server.accept_stream()
                got = 0
                while got < TOTAL:
                    got += len(await stream.receive(256 * 1024))
                    state = server.core.stream_state(stream.stream_id)
                    if state is not None:
                        max_window = max(max_window, state.recv.size)
                await stream.send(b"k")

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(receive_all)
                    stream = await client.open_stream()
                    start = anyio.current_time()
                    for _ in range(TOTAL // len(payload)):
                        await stream.send(payload)
                    assert await stream.receive(1) == b"k"
                    seconds = anyio.current_time() - start
            return Transfer(seconds, max_window, server.rtt)


async def test_auto_tuning_grows_the_window_and_beats_a_fixed_window_at_50ms_rtt() -> None:
    fixed = await transfer_through_proxy(YamuxConfig(auto_tune=False))
    tuned = await transfer_through_proxy(YamuxConfig(auto_tune=True))
    # the proxy really is in the path: the muxer's ping took a full round trip
    assert tuned.receiver_rtt is not None and tuned.receiver_rtt >= 2 * ONE_WAY_DELAY
    # a fixed window stays put and is bounded by window / RTT (≈ 5.2 MB/s)
    assert fixed.max_window == INITIAL_WINDOW
    assert fixed.seconds >= TOTAL / (INITIAL_WINDOW / (2 * ONE_WAY_DELAY)) * 0.9
    # auto-tuning grows the window far beyond the initial 256 KiB ...
    assert tuned.max_window >= 8 * INITIAL_WINDOW
    assert tuned.max_window <= YamuxConfig().max_stream_window
    # ... and moves the same bytes several times faster (measured ≈ 4x with an 8 MiB window; generous margin)
    assert fixed.seconds / tuned.seconds >= 2.0, (fixed, tuned)


def test_wan_benchmark_script_quick_run(tmp_path: Path) -> None:
    """benchmarks/wan.py --quick runs end to end (so it cannot rot) and reports both modes."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "wan.py"
    out = tmp_path / "wan.json"
    result = subprocess.run(
        [sys.executable, str(script), "--quick", "--rtt", "50", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    row = json.loads(out.read_text())["table"]["50ms"]
    assert row["on"]["median"] > 0 and row["off"]["median"] > 0
    assert row["off"]["final_window_median"] == INITIAL_WINDOW
    assert row["on"]["final_window_median"] > INITIAL_WINDOW
    assert "ratio on/off" in result.stdout

"""``plait demo`` (what ``make demo`` runs): its transcript names every step, with the
upgrade's byte counts as they crossed the wire. Runs on both anyio backends."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import pytest
from plait.demo import run_demo

pytestmark = pytest.mark.network

EXPECTED = (
    "[identities]",
    "alice -> bob      1 B  network byte 0xf0",
    "alice -> bob     34 B  Noise XX message 1 (-> e): 32 B + 2 B length",
    "bob   -> alice   98 B  Noise XX message 2 (<- e, ee, s, es): 96 B + 2 B length",
    "alice -> bob     66 B  Noise XX message 3 (-> s, se): 64 B + 2 B length",
    "identity exchange, encrypted",
    "both sides authenticated the other's static key",
    "bob advertised: user agent 'plait/0.1.0', protocols /plait/echo/1, /plait/greeting/1",
    "echo, optimistic (bob advertised it: no round trip): sent 'hello from alice', "
    "got 'hello from alice'",
    "echo, normal (proposal, then bob's echo of the id): got 'and again'",
    "1 optimistic, 1 normal",
    "say_hello(name='Ada', language=3) -> 'Hello Ada'",
    "Sawubona, Jambo, Bonjour, Hello",
    "rejected with NO_SERVER_SESSIONS_AVAILABLE",
    "done in",
)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_demo_transcript(backend: str) -> None:
    out = io.StringIO()
    assert run_demo(out, backend=backend) == 0
    text = out.getvalue()
    for line in EXPECTED:
        assert line in text, line
    peer_ids = re.findall(r"(alice|bob) +peer id ([0-9a-f]{64})", text)
    assert [name for name, _ in peer_ids] == ["alice", "bob"]
    alice_id = peer_ids[0][1]
    # the server saw the caller's key: the identity is the Noise static key
    assert f"get_public_key_hex() -> {alice_id[:16]}..." in text
    # both identity frames, one per side, each 16 B of tag and 2 B of length over its body
    sizes = re.findall(r"(\d+) B  identity exchange, encrypted: (\d+) B of identity frame", text)
    assert len(sizes) == 2
    assert all(int(total) == int(body) + 18 for total, body in sizes)


def test_plait_demo_command() -> None:
    done = subprocess.run([sys.executable, "-m", "plait", "demo"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "NO_SERVER_SESSIONS_AVAILABLE" in done.stdout
    assert done.stderr == ""  # a transcript, no log noise

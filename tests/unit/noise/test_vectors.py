"""Known-answer tests: every cacophony and snow vector for NN, XX, IK and XK replays.

The vector files live in the shared specification folder (``../shared/vectors/noise/``
beside the repository; their origin and licence are in SOURCE.md there). Each entry is
replayed byte-exactly: every handshake message, every transport message and, where the
file has it, the final handshake hash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from plait.noise import HandshakeState, KeyPair
from plait.noise._suite import X25519

VECTOR_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "vectors" / "noise"
FILES = ("cacophony_25519_chachapoly.json", "snow_25519_chachapoly.json")


def _load() -> list[tuple[str, dict[str, Any]]]:
    cases = []
    for name in FILES:
        path = VECTOR_DIR / name
        if not path.exists():
            pytest.fail(f"Noise vectors missing: {path}")
        for vector in json.loads(path.read_text())["vectors"]:
            cases.append((f"{name.split('_')[0]}:{vector['protocol_name']}", vector))
    return cases


CASES = _load()


def _pair(hex_private: str | None) -> KeyPair | None:
    if not hex_private:
        return None
    return X25519.keypair_from_private(bytes.fromhex(hex_private))


@pytest.mark.parametrize(("case_id", "vector"), CASES, ids=[c[0] for c in CASES])
def test_vector_replays_byte_exactly(case_id: str, vector: dict[str, Any]) -> None:
    assert not vector.get("init_psks") and not vector.get("resp_psks")
    rs = bytes.fromhex(vector["init_remote_static"]) if vector.get("init_remote_static") else None
    initiator = HandshakeState(
        vector["protocol_name"],
        initiator=True,
        prologue=bytes.fromhex(vector["init_prologue"]),
        s=_pair(vector.get("init_static")),
        e=_pair(vector["init_ephemeral"]),
        rs=rs,
    )
    responder = HandshakeState(
        vector["protocol_name"],
        initiator=False,
        prologue=bytes.fromhex(vector["resp_prologue"]),
        s=_pair(vector.get("resp_static")),
        e=_pair(vector["resp_ephemeral"]),
    )
    messages = vector["messages"]
    handshake_len = len(initiator.pattern.messages)
    for index, message in enumerate(messages[:handshake_len]):
        sender, receiver = (initiator, responder) if index % 2 == 0 else (responder, initiator)
        payload = bytes.fromhex(message["payload"])
        ciphertext = sender.write_message(payload)
        assert ciphertext.hex() == message["ciphertext"], f"handshake message {index}"
        assert receiver.read_message(ciphertext) == payload
    assert initiator.is_finished and responder.is_finished
    assert initiator.handshake_hash == responder.handshake_hash
    if "handshake_hash" in vector:
        assert initiator.handshake_hash.hex() == vector["handshake_hash"]
    i_send, i_recv = initiator.split()
    r_send, r_recv = responder.split()
    # Senders keep alternating after the handshake.
    for index, message in enumerate(messages[handshake_len:], start=handshake_len):
        from_initiator = index % 2 == 0
        send, recv = (i_send, r_recv) if from_initiator else (r_send, i_recv)
        payload = bytes.fromhex(message["payload"])
        ciphertext = send.encrypt_with_ad(b"", payload)
        assert ciphertext.hex() == message["ciphertext"], f"transport message {index}"
        assert recv.decrypt_with_ad(b"", ciphertext) == payload


def test_all_patterns_covered() -> None:
    patterns = {v["protocol_name"].split("_")[1] for _, v in CASES}
    assert patterns == {"NN", "XX", "IK", "XK"}
    assert len(CASES) == 16

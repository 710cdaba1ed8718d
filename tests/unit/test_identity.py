"""NodeIdentity: key handling, peer id, NodeId, identity files."""

from __future__ import annotations

import hashlib
import json
import stat
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from plait.identity import IdentityFileError, NodeId, NodeIdentity, PeerFeatures, peer_key

if TYPE_CHECKING:
    from pathlib import Path

# RFC 7748 §6.1 test vector: Alice's key pair.
ALICE_PRIVATE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUBLIC = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")


def test_from_private_bytes_matches_rfc7748() -> None:
    identity = NodeIdentity.from_private_bytes(ALICE_PRIVATE)
    assert identity.public_key == ALICE_PUBLIC
    assert identity.peer_id == ALICE_PUBLIC.hex()
    assert identity.private_bytes() == ALICE_PRIVATE
    assert isinstance(identity.private_key, X25519PrivateKey)
    assert ALICE_PRIVATE.hex() not in repr(identity)


def test_node_id_is_blake2b_13_of_the_public_key() -> None:
    identity = NodeIdentity.from_private_bytes(ALICE_PRIVATE)
    digest = hashlib.blake2b(ALICE_PUBLIC, digest_size=13).digest()
    assert identity.node_id == NodeId(digest)
    assert bytes(identity.node_id) == digest
    assert identity.node_id.short == digest[:8].hex()
    assert NodeId.from_public_key(ALICE_PUBLIC) == identity.node_id


def test_node_id_known_answer() -> None:
    assert NodeId.from_public_key(bytes(32)).hex() == hashlib.blake2b(
        bytes(32), digest_size=13
    ).hexdigest()


def test_node_ids_order_bytewise_and_xor() -> None:
    low, high = NodeId(b"\x00" * 12 + b"\x01"), NodeId(b"\x01" + b"\x00" * 12)
    assert low < high
    assert sorted([high, low]) == [low, high]
    assert low.distance(high) == int.from_bytes(b"\x01" + b"\x00" * 11 + b"\x01", "big")
    with pytest.raises(ValueError):
        NodeId(b"short")


def test_generate_is_random() -> None:
    a, b = NodeIdentity.generate(), NodeIdentity.generate()
    assert a.public_key != b.public_key
    assert len(a.public_key) == 32 and len(a.peer_id) == 64 and a.peer_id == a.peer_id.lower()


def test_bad_private_key_length() -> None:
    with pytest.raises(ValueError):
        NodeIdentity.from_private_bytes(b"\x01" * 31)


def test_save_load_round_trip_with_mode_0600(tmp_path: Path) -> None:
    identity = NodeIdentity.generate()
    path = tmp_path / "node.json"
    identity.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = NodeIdentity.load(path)
    assert loaded == identity and loaded.peer_id == identity.peer_id
    document = json.loads(path.read_text())
    assert document["type"] == "plait-node-identity" and document["version"] == 1
    assert document["public_key"] == identity.peer_id
    assert [p.name for p in tmp_path.iterdir()] == ["node.json"]  # no temporary left behind


def test_save_over_a_world_readable_file_tightens_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    path.write_text("old")
    path.chmod(0o644)
    NodeIdentity.generate().save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_public_key_is_optional_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "id.json"
    path.write_text(json.dumps({"type": "plait-node-identity", "version": 1,
                                "key_type": "x25519", "private_key": ALICE_PRIVATE.hex()}))
    assert NodeIdentity.load(path).public_key == ALICE_PUBLIC


GOOD = {"type": "plait-node-identity", "version": 1, "key_type": "x25519",
        "private_key": ALICE_PRIVATE.hex(), "public_key": ALICE_PUBLIC.hex()}


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xff\xfe not utf-8",
        b"not json",
        b"[1, 2]",
        json.dumps({**GOOD, "type": "other"}).encode(),
        json.dumps({**GOOD, "version": 2}).encode(),
        json.dumps({**GOOD, "key_type": "ed25519"}).encode(),
        json.dumps({**GOOD, "private_key": "zz" * 32}).encode(),
        json.dumps({**GOOD, "private_key": "00" * 31}).encode(),
        json.dumps({**GOOD, "private_key": 5}).encode(),
        json.dumps({k: v for k, v in GOOD.items() if k != "private_key"}).encode(),
        json.dumps({**GOOD, "public_key": "00" * 32}).encode(),
    ],
    ids=["empty", "binary", "text", "array", "type", "version", "key-type", "hex", "length",
         "number", "missing", "mismatch"],
)
def test_malformed_files_raise_identity_file_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "id.json"
    path.write_bytes(content)
    with pytest.raises(IdentityFileError) as info:
        NodeIdentity.load(path)
    assert info.value.path == path
    assert isinstance(info.value, ValueError)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        NodeIdentity.load(tmp_path / "absent.json")


def test_peer_features() -> None:
    assert PeerFeatures.COMMUNICATION_NODE == PeerFeatures.MESSAGE_PROPAGATION | (
        PeerFeatures.DHT_STORE_FORWARD
    )
    assert PeerFeatures.COMMUNICATION_CLIENT == PeerFeatures.NONE == 0


def test_peer_key_accepts_hex_or_bytes_and_refuses_the_rest() -> None:
    identity = NodeIdentity.generate()
    assert peer_key(identity.peer_id) == identity.public_key
    assert peer_key(identity.public_key) == identity.public_key
    for bad in ("zz" * 32, "ab" * 31, b"\x00" * 31):
        with pytest.raises(ValueError, match="peer id"):
            peer_key(bad)

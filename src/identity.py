"""Node identity: the static X25519 key pair, its NodeId, and peer feature bits.

Theory of operation (wire.md top section, §5.3; api.md): in plait's default suite a node's
identity **is** its 32-byte X25519 public key, the Noise static key, authenticated by the
handshake. Users name a peer by its *peer id*, the lower-case hex of that key. A short
:class:`NodeId` is derived exactly as tari does, ``BLAKE2b(public_key, digest_size=13)`` with
no domain separation, and orders peers byte-wise (the simultaneous-dial tie-break) and names
them briefly in logs (hex of its first 8 bytes).

Identity files
--------------
:meth:`NodeIdentity.save` writes a small UTF-8 JSON object, readable and diffable::

    {"type": "plait-node-identity", "version": 1, "key_type": "x25519",
     "private_key": "<64 hex digits>", "public_key": "<64 hex digits>"}

The file is created with mode 0600 (written to a temporary file in the same folder, then
renamed over the target, so a crash never leaves half a key). :meth:`NodeIdentity.load`
requires ``type``, ``version`` 1, ``key_type`` ``x25519`` and a 32-byte ``private_key``;
``public_key`` is optional but, when present, must match the private key. Anything else
raises :class:`IdentityFileError`.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from .errors import PlaitError

__all__ = (
    "KNOWN_PEER_FEATURE_BITS",
    "NODE_ID_SIZE",
    "PUBLIC_KEY_SIZE",
    "IdentityFileError",
    "NodeId",
    "NodeIdentity",
    "PeerFeatures",
    "peer_key",
)

NODE_ID_SIZE = 13  # tari peer_manager/node_id.rs: Blake2bVar(13)
PUBLIC_KEY_SIZE = 32
_FILE_TYPE = "plait-node-identity"
_FILE_VERSION = 1


def peer_key(peer_id: str | bytes) -> bytes:
    """The 32-byte public key a peer id names: its lower-case hex (``NodeIdentity.peer_id``)
    or the key itself.

    :raises ValueError: not 64 hex digits, or not a 32-byte key.
    """
    if isinstance(peer_id, str):
        try:
            key = bytes.fromhex(peer_id)
        except ValueError:
            raise ValueError(f"a peer id is 64 hex digits, got {peer_id!r}") from None
    else:
        key = bytes(peer_id)
    if len(key) != PUBLIC_KEY_SIZE:
        raise ValueError(f"a peer id names a {PUBLIC_KEY_SIZE}-byte key, got {len(key)} bytes")
    return key


class PeerFeatures(enum.IntFlag):
    """What a peer offers the network (tari ``PeerFeatures``, wire.md §5.3); a u32 on the wire."""

    NONE = 0
    """No features (tari ``COMMUNICATION_CLIENT``, a wallet)."""
    MESSAGE_PROPAGATION = 0b01
    """Relays messages."""
    DHT_STORE_FORWARD = 0b10
    """Stores messages for offline peers."""
    COMMUNICATION_NODE = 0b11
    """Both: a base node."""
    COMMUNICATION_CLIENT = 0
    """Alias of NONE."""


KNOWN_PEER_FEATURE_BITS = 0b11  # tari rejects any other bit (wire.md §1.4.3 check 7)


@final
@dataclass(frozen=True, slots=True, order=True)
class NodeId:
    """The 13-byte short identifier of a public key; ordered byte-wise."""

    value: bytes
    """The 13 digest bytes."""

    def __post_init__(self) -> None:
        if len(self.value) != NODE_ID_SIZE:
            raise ValueError(f"a NodeId is {NODE_ID_SIZE} bytes, got {len(self.value)}")

    @classmethod
    def from_public_key(cls, public_key: bytes) -> NodeId:
        """``BLAKE2b(public_key, digest_size=13)`` (wire.md §5.3)."""
        if len(public_key) != PUBLIC_KEY_SIZE:
            raise ValueError(f"a public key is {PUBLIC_KEY_SIZE} bytes, got {len(public_key)}")
        return cls(hashlib.blake2b(public_key, digest_size=NODE_ID_SIZE).digest())

    def __bytes__(self) -> bytes:
        return self.value

    def hex(self) -> str:
        """All 13 bytes in lower-case hex."""
        return self.value.hex()

    @property
    def short(self) -> str:
        """Hex of the first 8 bytes, for logs."""
        return self.value[:8].hex()

    def distance(self, other: NodeId) -> int:
        """XOR distance, as the DHT uses it."""
        return int.from_bytes(self.value, "big") ^ int.from_bytes(other.value, "big")

    def __str__(self) -> str:
        return self.short

    def __repr__(self) -> str:
        return f"NodeId({self.value.hex()})"


class IdentityFileError(PlaitError, ValueError):
    """An identity file is missing fields, malformed, or inconsistent.

    :param path: the file that was read.
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path


@final
class NodeIdentity:
    """A node's static X25519 key pair. Create with :meth:`generate`, :meth:`from_private_bytes`
    or :meth:`load`; the private key never appears in ``repr``."""

    __slots__ = ("_node_id", "_private", "_public")

    def __init__(self, private_key: X25519PrivateKey) -> None:
        self._private = private_key
        self._public = private_key.public_key().public_bytes_raw()
        self._node_id = NodeId.from_public_key(self._public)

    @classmethod
    def generate(cls) -> NodeIdentity:
        """A fresh random key pair."""
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, private_key: bytes) -> NodeIdentity:
        """Rebuild from the 32 raw private key bytes.

        :raises ValueError: if ``private_key`` is not 32 bytes.
        """
        if len(private_key) != PUBLIC_KEY_SIZE:
            raise ValueError(f"an X25519 private key is 32 bytes, got {len(private_key)}")
        return cls(X25519PrivateKey.from_private_bytes(bytes(private_key)))

    @property
    def private_key(self) -> X25519PrivateKey:
        """The ``cryptography`` private key object."""
        return self._private

    def private_bytes(self) -> bytes:
        """The 32 raw private key bytes (secret: keep them out of logs)."""
        return self._private.private_bytes_raw()

    @property
    def public_key(self) -> bytes:
        """The 32-byte X25519 public key: the node's identity."""
        return self._public

    @property
    def peer_id(self) -> str:
        """Lower-case hex of :attr:`public_key` (api.md)."""
        return self._public.hex()

    @property
    def node_id(self) -> NodeId:
        """The 13-byte :class:`NodeId` of :attr:`public_key`."""
        return self._node_id

    def __repr__(self) -> str:
        return f"<NodeIdentity {self.peer_id}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NodeIdentity):
            return NotImplemented
        return self.private_bytes() == other.private_bytes()

    def __hash__(self) -> int:
        return hash(self._public)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the identity file (format in the module docstring) with mode 0600.

        The file is written beside ``path`` and atomically renamed over it.
        """
        target = Path(path)
        document = {
            "type": _FILE_TYPE,
            "version": _FILE_VERSION,
            "key_type": "x25519",
            "private_key": self.private_bytes().hex(),
            "public_key": self.peer_id,
        }
        fd, tmp_name = tempfile.mkstemp(prefix=".identity-", dir=target.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=2)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NodeIdentity:
        """Read an identity file written by :meth:`save`.

        :raises FileNotFoundError: if ``path`` does not exist.
        :raises IdentityFileError: if the file is not a valid identity file.
        """
        source = Path(path)
        raw = source.read_bytes()
        try:
            document: Any = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IdentityFileError(source, f"not a JSON identity file ({exc})") from None
        if not isinstance(document, dict):
            raise IdentityFileError(source, "expected a JSON object")
        if document.get("type") != _FILE_TYPE:
            raise IdentityFileError(source, f"'type' must be {_FILE_TYPE!r}")
        if document.get("version") != _FILE_VERSION:
            raise IdentityFileError(source, f"unsupported version {document.get('version')!r}")
        if document.get("key_type") != "x25519":
            raise IdentityFileError(source, f"unsupported key_type {document.get('key_type')!r}")
        private_hex = document.get("private_key")
        identity = cls.from_private_bytes(_hex32(source, "private_key", private_hex))
        if "public_key" in document:
            public = _hex32(source, "public_key", document["public_key"])
            if public != identity.public_key:
                raise IdentityFileError(source, "public_key does not match private_key")
        return identity


def _hex32(source: Path, field: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise IdentityFileError(source, f"{field!r} must be a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise IdentityFileError(source, f"{field!r} is not valid hex") from None
    if len(raw) != PUBLIC_KEY_SIZE:
        raise IdentityFileError(source, f"{field!r} must be 32 bytes, got {len(raw)}")
    return raw

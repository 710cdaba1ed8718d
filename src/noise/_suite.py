"""The crypto functions a Noise protocol name selects (Noise rev. 34 §4, §12).

A name ``Noise_<pattern>_<dh>_<cipher>_<hash>`` picks one DH function, one cipher and one
hash. plait implements DH ``25519`` (X25519, RFC 7748, from ``cryptography``), cipher
``ChaChaPoly`` (ChaCha20-Poly1305, IETF, from ``cryptography``) and hashes ``BLAKE2b``,
``BLAKE2s`` and ``SHA256`` (``hashlib``). The DH function is pluggable through the
:class:`DHFunction` protocol so that a second curve can be added later.

Invalid public keys: the spec allows signalling an error instead of producing an all-zero
output (§4.1, §12.1). ``cryptography`` refuses any X25519 exchange whose result is all
zeros (every low-order point), and plait turns that refusal into a
:class:`~plait.noise.errors.NoiseProtocolViolation`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from .errors import NoiseProtocolViolation

__all__ = ("DHFunction", "HashFunction", "KeyPair", "Suite", "X25519", "parse_protocol_name")


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A DH key pair as raw bytes."""

    private: bytes
    """The private key (32 bytes for X25519)."""
    public: bytes
    """The public key (32 bytes for X25519)."""


class DHFunction(Protocol):
    """A Noise DH function (§4.1)."""

    name: str
    dhlen: int

    def generate_keypair(self) -> KeyPair: ...

    def keypair_from_private(self, private: bytes) -> KeyPair: ...

    def dh(self, private: bytes, public: bytes) -> bytes: ...


class _X25519:
    """DH ``25519``: X25519 from ``cryptography``."""

    name = "25519"
    dhlen = 32

    def generate_keypair(self) -> KeyPair:
        return self._pair(X25519PrivateKey.generate())

    def keypair_from_private(self, private: bytes) -> KeyPair:
        if len(private) != 32:
            raise ValueError("an X25519 private key is 32 bytes")
        return self._pair(X25519PrivateKey.from_private_bytes(private))

    @staticmethod
    def _pair(key: X25519PrivateKey) -> KeyPair:
        private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return KeyPair(private=private, public=public)

    def dh(self, private: bytes, public: bytes) -> bytes:
        if len(public) != 32:
            raise NoiseProtocolViolation("X25519 public key of wrong length", seen=len(public))
        try:
            return X25519PrivateKey.from_private_bytes(private).exchange(
                X25519PublicKey.from_public_bytes(public)
            )
        except ValueError as exc:  # all-zero result: a low-order or zero public key
            raise NoiseProtocolViolation("invalid (low-order) X25519 public key") from exc


X25519: DHFunction = _X25519()


@dataclass(frozen=True, slots=True)
class HashFunction:
    """A Noise hash function (§4.3) with its HMAC and HKDF (§4.3)."""

    name: str
    hashlen: int
    blocklen: int
    hashlib_name: str
    """The algorithm's name for :func:`hashlib.new` and :func:`hmac.digest`."""

    def hash(self, data: bytes) -> bytes:
        return hashlib.new(self.hashlib_name, data).digest()

    def hmac(self, key: bytes, data: bytes) -> bytes:
        return hmac.digest(key, data, self.hashlib_name)

    def hkdf(self, chaining_key: bytes, ikm: bytes, outputs: int) -> tuple[bytes, ...]:
        """HKDF(ck, ikm, n) of Noise §4.3: RFC 5869 with ``ck`` as salt and empty info."""
        temp_key = self.hmac(chaining_key, ikm)
        out1 = self.hmac(temp_key, b"\x01")
        out2 = self.hmac(temp_key, out1 + b"\x02")
        if outputs == 2:
            return out1, out2
        return out1, out2, self.hmac(temp_key, out2 + b"\x03")


_HASHES = {
    "BLAKE2b": HashFunction("BLAKE2b", 64, 128, "blake2b"),
    "BLAKE2s": HashFunction("BLAKE2s", 32, 64, "blake2s"),
    "SHA256": HashFunction("SHA256", 32, 64, "sha256"),
}
_DHS: dict[str, DHFunction] = {"25519": X25519}
_CIPHERS = ("ChaChaPoly",)


@dataclass(frozen=True, slots=True)
class Suite:
    """The parsed parts of a Noise protocol name."""

    protocol_name: bytes
    pattern: str
    dh: DHFunction
    hash: HashFunction


def parse_protocol_name(name: str | bytes) -> Suite:
    """Parse ``Noise_<pattern>_<dh>_<cipher>_<hash>`` into its functions.

    :raises ValueError: for an unknown or unsupported name.
    """
    text = name.decode("ascii") if isinstance(name, bytes) else name
    parts = text.split("_")
    if len(parts) != 5 or parts[0] != "Noise":
        raise ValueError(f"not a Noise protocol name: {text!r}")
    _, pattern, dh, cipher, hash_name = parts
    if dh not in _DHS:
        raise ValueError(f"unsupported DH function {dh!r}")
    if cipher not in _CIPHERS:
        raise ValueError(f"unsupported cipher {cipher!r}")
    if hash_name not in _HASHES:
        raise ValueError(f"unsupported hash {hash_name!r}")
    return Suite(text.encode("ascii"), pattern, _DHS[dh], _HASHES[hash_name])

"""CipherState and SymmetricState (Noise rev. 34 §5.1, §5.2) for ChaChaPoly.

CipherState holds a key ``k`` (possibly empty) and a 64-bit counter ``n``. With an empty
key, encryption is the identity. The ChaChaPoly nonce is four zero bytes followed by ``n``
as a little-endian u64 (§12.3). The value 2**64 - 1 is reserved: once ``n`` reaches it
every operation raises :class:`NonceExhaustedError` instead of wrapping. A failed decrypt
does not advance ``n`` (the snow advisory GHSA-7g9j-g5jg-3vv3). Rekey (§4.2) replaces ``k``
with the first 32 bytes of encrypting 32 zero bytes under nonce 2**64 - 1 and keeps ``n``.

The AEAD object is built once per key, not once per message. The transport hot path uses
:meth:`CipherState.encrypt_into` / :meth:`CipherState.decrypt_frame` to save copies.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from .errors import NoiseProtocolViolation, NonceExhaustedError

if TYPE_CHECKING:
    from ._suite import HashFunction

__all__ = ("MAX_NONCE", "TAG_SIZE", "CipherState", "SymmetricState")

TAG_SIZE = 16
"""Poly1305 tag length appended to every ciphertext."""
MAX_NONCE = 2**64 - 1
"""Reserved counter value (§5.1): never used to encrypt data."""

_nonce = struct.Struct("<4xQ").pack
_ZEROS32 = bytes(32)


class CipherState:
    """A Noise CipherState over ChaCha20-Poly1305."""

    __slots__ = ("_aead", "_key", "n")

    def __init__(self, key: bytes | None = None) -> None:
        self._key: bytes | None = None
        self._aead: ChaCha20Poly1305 | None = None
        self.n = 0
        """The next nonce (the message counter)."""
        if key is not None:
            self.initialize_key(key)

    def initialize_key(self, key: bytes) -> None:
        """InitializeKey(k): install a 32-byte key and reset the counter."""
        if len(key) != 32:
            raise ValueError("a ChaChaPoly key is 32 bytes")
        self._key = key
        self._aead = ChaCha20Poly1305(key)
        self.n = 0

    def has_key(self) -> bool:
        return self._key is not None

    def set_nonce(self, n: int) -> None:
        """SetNonce(n). Meant for tests and for the rekey schedule of the application."""
        if not 0 <= n <= MAX_NONCE:
            raise ValueError("nonce out of range")
        self.n = n

    def _next_nonce(self) -> bytes:
        if self.n >= MAX_NONCE:
            raise NonceExhaustedError("Noise nonce exhausted; the connection must end")
        return _nonce(self.n)

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes | memoryview) -> bytes:
        """EncryptWithAd: ciphertext plus tag, or the plaintext itself without a key."""
        if self._aead is None:
            return bytes(plaintext)
        ciphertext = self._aead.encrypt(self._next_nonce(), plaintext, ad or None)
        self.n += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes | memoryview) -> bytes:
        """DecryptWithAd; a MAC failure raises and leaves ``n`` unchanged."""
        if self._aead is None:
            return bytes(ciphertext)
        if len(ciphertext) < TAG_SIZE:
            raise NoiseProtocolViolation("ciphertext shorter than its tag", seen=len(ciphertext))
        try:
            plaintext = self._aead.decrypt(self._next_nonce(), ciphertext, ad or None)
        except InvalidTag:
            raise NoiseProtocolViolation("decryption failed (bad MAC)") from None
        self.n += 1
        return plaintext

    def encrypt_into(self, plaintext: bytes | memoryview, out: memoryview) -> None:
        """Encrypt with empty AD into ``out`` (exactly ``len(plaintext) + 16`` bytes)."""
        assert self._aead is not None
        self._aead.encrypt_into(self._next_nonce(), plaintext, None, out)
        self.n += 1

    def rekey(self) -> None:
        """Rekey (§4.2): k = first 32 bytes of ENCRYPT(k, 2**64 - 1, empty, zeros); n kept."""
        if self._aead is None:
            raise ValueError("cannot rekey a cipher state without a key")
        new_key = self._aead.encrypt(_nonce(MAX_NONCE), _ZEROS32, None)[:32]
        n = self.n
        self.initialize_key(new_key)
        self.n = n


class SymmetricState:
    """A Noise SymmetricState: chaining key ``ck``, handshake hash ``h`` and a CipherState."""

    __slots__ = ("cipher", "ck", "h", "hash")

    def __init__(self, protocol_name: bytes, hash_function: HashFunction) -> None:
        self.hash = hash_function
        hashlen = hash_function.hashlen
        if len(protocol_name) <= hashlen:
            self.h = protocol_name.ljust(hashlen, b"\x00")
        else:
            self.h = hash_function.hash(protocol_name)
        self.ck = self.h
        self.cipher = CipherState()

    def mix_key(self, ikm: bytes) -> None:
        """MixKey: HKDF into a new ``ck`` and a cipher key truncated to 32 bytes."""
        self.ck, temp_k = self.hash.hkdf(self.ck, ikm, 2)
        self.cipher.initialize_key(temp_k[:32])

    def mix_hash(self, data: bytes) -> None:
        """MixHash: h = HASH(h || data)."""
        self.h = self.hash.hash(self.h + data)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """Split: two CipherStates (initiator→responder, responder→initiator)."""
        temp_k1, temp_k2 = self.hash.hkdf(self.ck, b"", 2)
        return CipherState(temp_k1[:32]), CipherState(temp_k2[:32])

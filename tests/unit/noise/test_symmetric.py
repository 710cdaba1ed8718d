"""CipherState and SymmetricState rules of Noise rev. 34 §5.1–§5.2."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from plait.noise import CipherState, NoiseProtocolViolation, NonceExhaustedError, SymmetricState
from plait.noise._suite import parse_protocol_name
from plait.noise._symmetric import MAX_NONCE

KEY = bytes(range(32))


def test_nonce_is_four_zero_bytes_then_u64_little_endian() -> None:
    cs = CipherState(KEY)
    cs.set_nonce(0x0102030405060708)
    ct = cs.encrypt_with_ad(b"ad", b"hello")
    nonce = bytes(4) + (0x0102030405060708).to_bytes(8, "little")
    assert ct == ChaCha20Poly1305(KEY).encrypt(nonce, b"hello", b"ad")
    assert cs.n == 0x0102030405060709


def test_failed_decrypt_does_not_advance_nonce() -> None:
    sender, receiver = CipherState(KEY), CipherState(KEY)
    ct = sender.encrypt_with_ad(b"", b"payload")
    tampered = bytes([ct[0] ^ 1]) + ct[1:]
    with pytest.raises(NoiseProtocolViolation):
        receiver.decrypt_with_ad(b"", tampered)
    assert receiver.n == 0
    assert receiver.decrypt_with_ad(b"", ct) == b"payload"
    assert receiver.n == 1


def test_short_ciphertext_is_a_violation_not_an_index_error() -> None:
    cs = CipherState(KEY)
    for size in (0, 1, 15):
        with pytest.raises(NoiseProtocolViolation):
            cs.decrypt_with_ad(b"", bytes(size))
    assert cs.n == 0


def test_nonce_exhaustion_raises_instead_of_wrapping() -> None:
    sender, receiver = CipherState(KEY), CipherState(KEY)
    sender.set_nonce(MAX_NONCE - 1)
    receiver.set_nonce(MAX_NONCE - 1)
    last = sender.encrypt_with_ad(b"", b"last")
    assert sender.n == MAX_NONCE
    with pytest.raises(NonceExhaustedError):
        sender.encrypt_with_ad(b"", b"one too many")
    assert sender.n == MAX_NONCE
    assert receiver.decrypt_with_ad(b"", last) == b"last"
    with pytest.raises(NonceExhaustedError):
        receiver.decrypt_with_ad(b"", last)


def test_rekey_keeps_the_counter_and_matches_the_spec_formula() -> None:
    cs = CipherState(KEY)
    cs.set_nonce(7)
    cs.rekey()
    assert cs.n == 7
    expected_key = ChaCha20Poly1305(KEY).encrypt(bytes(4) + b"\xff" * 8, bytes(32), None)[:32]
    reference = CipherState(expected_key)
    reference.set_nonce(7)
    assert cs.encrypt_with_ad(b"", b"y") == reference.encrypt_with_ad(b"", b"y")


def test_empty_key_passes_data_through() -> None:
    cs = CipherState()
    assert not cs.has_key()
    assert cs.encrypt_with_ad(b"ad", b"clear") == b"clear"
    assert cs.decrypt_with_ad(b"ad", b"clear") == b"clear"
    assert cs.n == 0


def test_protocol_name_padding_and_hashing() -> None:
    blake = parse_protocol_name("Noise_XX_25519_ChaChaPoly_BLAKE2b")
    sym = SymmetricState(blake.protocol_name, blake.hash)
    assert len(blake.protocol_name) == 33
    assert sym.h == blake.protocol_name + bytes(31) and sym.ck == sym.h
    sha = parse_protocol_name("Noise_XX_25519_ChaChaPoly_SHA256")
    assert len(sha.protocol_name) == 32
    assert SymmetricState(sha.protocol_name, sha.hash).h == sha.protocol_name
    long_name = parse_protocol_name("Noise_XX_25519_ChaChaPoly_BLAKE2s")
    assert len(long_name.protocol_name) == 33
    sym_s = SymmetricState(long_name.protocol_name, long_name.hash)
    assert sym_s.h == hashlib.blake2s(long_name.protocol_name).digest()


def test_hkdf_and_mix_key_truncate_to_32_bytes() -> None:
    suite = parse_protocol_name("Noise_XX_25519_ChaChaPoly_BLAKE2b")
    sym = SymmetricState(suite.protocol_name, suite.hash)
    ck = sym.ck
    ikm = bytes(range(32))
    temp = hmac.digest(ck, ikm, "blake2b")
    out1 = hmac.digest(temp, b"\x01", "blake2b")
    out2 = hmac.digest(temp, out1 + b"\x02", "blake2b")
    sym.mix_key(ikm)
    assert sym.ck == out1 and len(out1) == 64
    assert sym.cipher.encrypt_with_ad(b"", b"z") == CipherState(out2[:32]).encrypt_with_ad(b"", b"z")


def test_unknown_protocol_names_are_refused() -> None:
    names = (
        "Noise_XX_448_ChaChaPoly_BLAKE2b",
        "Noise_XX_25519_AESGCM_SHA256",
        "Nope",
        "Noise_XX_25519_ChaChaPoly_MD5",
    )
    for name in names:
        with pytest.raises(ValueError):
            parse_protocol_name(name)

"""The sans-IO NoiseConnection: tari framing, sizes, and every bad-input path."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from plait.noise import (
    HandshakeCompleted,
    HandshakePhase,
    NoiseConfig,
    NoiseConnection,
    NoiseProtocolViolation,
    NoiseStateError,
    PlaintextReceived,
    StaticKeypair,
)

# The seven classic low-order X25519 u-coordinates (and zero), as 32-byte strings.
_P = 2**255 - 19
LOW_ORDER = [
    (0).to_bytes(32, "little"),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    (_P - 1).to_bytes(32, "little"),
    _P.to_bytes(32, "little"),
    (_P + 1).to_bytes(32, "little"),
]


def make_pair() -> tuple[NoiseConnection, NoiseConnection]:
    i = NoiseConnection(initiator=True, config=NoiseConfig(static_key=StaticKeypair.generate()))
    r = NoiseConnection(initiator=False, config=NoiseConfig(static_key=StaticKeypair.generate()))
    return i, r


def handshake(i: NoiseConnection, r: NoiseConnection) -> list[bytes]:
    """Run the XX handshake, returning the three wire messages."""
    i.initiate()
    m1 = i.data_to_send()
    assert r.receive_data(m1) == []
    m2 = r.data_to_send()
    events_i = i.receive_data(m2)
    m3 = i.data_to_send()
    events_r = r.receive_data(m3)
    assert [type(e) for e in events_i] == [HandshakeCompleted]
    assert [type(e) for e in events_r] == [HandshakeCompleted]
    return [m1, m2, m3]


def plaintext(events: list[object]) -> bytes:
    out = []
    for e in events:
        assert isinstance(e, PlaintextReceived)
        out.append(e.data)
    return b"".join(out)


def test_handshake_messages_are_32_96_64_bytes_with_be_length() -> None:
    i, r = make_pair()
    m1, m2, m3 = handshake(i, r)
    assert (len(m1), len(m2), len(m3)) == (34, 98, 66)
    assert m1[:2] == b"\x00\x20" and m2[:2] == b"\x00\x60" and m3[:2] == b"\x00\x40"
    assert i.phase is r.phase is HandshakePhase.TRANSPORT
    assert i.remote_static_key == r.config.static_key.public
    assert r.remote_static_key == i.config.static_key.public
    assert i.handshake_hash == r.handshake_hash and len(i.handshake_hash or b"") == 64


def test_transport_split_at_65519_and_never_empty() -> None:
    i, r = make_pair()
    handshake(i, r)
    for size, frames in ((0, 0), (1, 1), (65519, 1), (65520, 2), (3 * 65519 + 5, 4)):
        data = bytes(range(256)) * (size // 256) + bytes(size % 256)
        wire = bytes(i.seal(data))
        count, offset = 0, 0
        while offset < len(wire):
            (length,) = struct.unpack_from(">H", wire, offset)
            assert 16 < length <= 65535
            offset += 2 + length
            count += 1
        assert count == frames
        assert plaintext(r.receive_data(wire) if wire else []) == data


def test_transport_both_directions_and_send_plaintext_queue() -> None:
    i, r = make_pair()
    handshake(i, r)
    r.send_plaintext(b"from responder")
    assert plaintext(i.receive_data(r.data_to_send())) == b"from responder"
    i.send_plaintext(b"from initiator")
    assert plaintext(r.receive_data(i.data_to_send())) == b"from initiator"


@given(
    chunks=st.lists(st.binary(min_size=1, max_size=3000), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=100_000), max_size=12),
)
def test_random_split_points_never_change_what_is_read(chunks: list[bytes], cuts: list[int]) -> None:
    i, r = make_pair()
    i.initiate()
    wire = bytearray(i.data_to_send())
    # Handshake and transport bytes delivered in arbitrary pieces.
    r_events = []
    pieces = _cut(bytes(wire), cuts)
    for piece in pieces:
        r_events += r.receive_data(piece)
    i_events = i.receive_data(r.data_to_send())
    assert any(isinstance(e, HandshakeCompleted) for e in i_events)
    stream = i.data_to_send()
    for chunk in chunks:
        stream += bytes(i.seal(chunk))
    for piece in _cut(stream, cuts):
        r_events += r.receive_data(piece)
    assert isinstance(r_events[0], HandshakeCompleted)
    assert plaintext(r_events[1:]) == b"".join(chunks)


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


# -- bad input ------------------------------------------------------------------------


def _established() -> tuple[NoiseConnection, NoiseConnection]:
    i, r = make_pair()
    handshake(i, r)
    return i, r


def test_tampered_ciphertext_fails_and_the_connection_stays_failed() -> None:
    i, r = _established()
    wire = bytearray(i.seal(b"secret data"))
    wire[5] ^= 0x01
    with pytest.raises(NoiseProtocolViolation):
        r.receive_data(bytes(wire))
    assert r.phase is HandshakePhase.FAILED
    with pytest.raises(NoiseStateError):
        r.receive_data(bytes(i.seal(b"later valid frame")))


@pytest.mark.parametrize("length", [0, 1, 15])
def test_length_below_a_tag_is_rejected(length: int) -> None:
    _, r = _established()
    with pytest.raises(NoiseProtocolViolation):
        r.receive_data(struct.pack(">H", length) + bytes(length))


def test_truncated_frame_then_eof_is_an_error() -> None:
    i, r = _established()
    wire = bytes(i.seal(b"x" * 100))
    assert r.receive_data(wire[:50]) == []
    with pytest.raises(NoiseProtocolViolation):
        r.receive_data(b"")


def test_eof_inside_a_length_prefix_is_an_error() -> None:
    _, r = _established()
    r.receive_data(b"\x00")
    with pytest.raises(NoiseProtocolViolation):
        r.receive_data(b"")


def test_eof_at_a_boundary_is_clean() -> None:
    i, r = _established()
    assert plaintext(r.receive_data(bytes(i.seal(b"abc")))) == b"abc"
    assert r.receive_data(b"") == []
    assert r.eof_received


def test_eof_during_handshake_is_an_error() -> None:
    i, r = make_pair()
    i.initiate()
    r.receive_data(i.data_to_send()[:10])
    with pytest.raises(NoiseProtocolViolation):
        r.receive_data(b"")


@pytest.mark.parametrize("length", [0, 31, 33, 64, 65535])
def test_garbage_or_wrong_size_message_1_is_rejected_before_buffering(length: int) -> None:
    _, r = make_pair()
    with pytest.raises(NoiseProtocolViolation):
        r.receive_data(struct.pack(">H", length))
    assert r.phase is HandshakePhase.FAILED


def test_random_garbage_instead_of_handshake() -> None:
    _, r = make_pair()
    with pytest.raises(NoiseProtocolViolation):
        r.receive_data(b"\x00\x20" + bytes(range(32)) + b"\x00\x60" + bytes(96))
    _, r = make_pair()
    with pytest.raises(NoiseProtocolViolation):
        r.receive_data(b"GET / HTTP/1.1\r\n\r\n")
    i, _ = make_pair()
    i.initiate()
    i.data_to_send()
    with pytest.raises(NoiseProtocolViolation):
        i.receive_data(b"\x00\x60" + bytes(range(96)))


def test_wrong_size_message_2_and_3_are_rejected() -> None:
    i, r = make_pair()
    i.initiate()
    r.receive_data(i.data_to_send())
    m2 = r.data_to_send()
    with pytest.raises(NoiseProtocolViolation):
        i.receive_data(b"\x00\x61" + m2[2:] + b"\x00")
    i, r = make_pair()
    i.initiate()
    r.receive_data(i.data_to_send())
    i.receive_data(r.data_to_send())
    m3 = i.data_to_send()
    with pytest.raises(NoiseProtocolViolation):
        r.receive_data(b"\x00\x50" + m3[2:] + bytes(16))


@pytest.mark.parametrize("key", LOW_ORDER, ids=range(len(LOW_ORDER)))
def test_low_order_ephemeral_in_message_1(key: bytes) -> None:
    _, r = make_pair()
    # Message 1 is parsed; the DH with the bad key happens when the responder writes message 2.
    with pytest.raises(NoiseProtocolViolation):
        r.receive_data(b"\x00\x20" + key)
    assert r.phase is HandshakePhase.FAILED
    assert r.data_to_send() == b""


@pytest.mark.parametrize("key", LOW_ORDER, ids=range(len(LOW_ORDER)))
def test_low_order_ephemeral_in_message_2(key: bytes) -> None:
    i, r = make_pair()
    i.initiate()
    r.receive_data(i.data_to_send())
    m2 = r.data_to_send()
    with pytest.raises(NoiseProtocolViolation):
        i.receive_data(m2[:2] + key + m2[34:])
    assert i.phase is HandshakePhase.FAILED


@pytest.mark.parametrize("key", LOW_ORDER[:3], ids=range(3))
def test_low_order_static_keys_in_messages_2_and_3(key: bytes) -> None:
    # A responder whose static key is low-order: the initiator's es DH refuses it.
    from plait.noise._handshake import HandshakeState
    from plait.noise._suite import X25519, KeyPair

    bad = KeyPair(private=X25519.generate_keypair().private, public=key)
    i, _ = make_pair()
    r_hs = HandshakeState(
        "Noise_XX_25519_ChaChaPoly_BLAKE2b",
        initiator=False,
        prologue=NoiseConfig().prologue,
        s=bad,
    )
    i.initiate()
    r_hs.read_message(i.data_to_send()[2:])
    m2 = r_hs.write_message(b"")
    with pytest.raises(NoiseProtocolViolation):
        i.receive_data(struct.pack(">H", len(m2)) + m2)
    # An initiator whose static key is low-order: the responder's se DH refuses it.
    _, r = make_pair()
    i_hs = HandshakeState(
        "Noise_XX_25519_ChaChaPoly_BLAKE2b",
        initiator=True,
        prologue=NoiseConfig().prologue,
        s=bad,
    )
    m1 = i_hs.write_message(b"")
    r.receive_data(struct.pack(">H", len(m1)) + m1)
    i_hs.read_message(r.data_to_send()[2:])
    m3 = i_hs.write_message(b"")
    with pytest.raises(NoiseProtocolViolation):
        r.receive_data(struct.pack(">H", len(m3)) + m3)


def test_non_canonical_key_gives_the_same_dh_as_its_canonical_form() -> None:
    from plait.noise._suite import X25519

    ours = X25519.generate_keypair()
    nine = (9).to_bytes(32, "little")
    p_plus_9 = (_P + 9).to_bytes(32, "little")
    assert X25519.dh(ours.private, nine) == X25519.dh(ours.private, p_plus_9)


def test_prologue_mismatch_fails_at_message_2() -> None:
    i = NoiseConnection(initiator=True, config=NoiseConfig(prologue=b"one"))
    r = NoiseConnection(initiator=False, config=NoiseConfig(prologue=b"two"))
    i.initiate()
    r.receive_data(i.data_to_send())
    with pytest.raises(NoiseProtocolViolation):
        i.receive_data(r.data_to_send())


def test_misuse_is_a_local_error() -> None:
    i, r = make_pair()
    with pytest.raises(NoiseStateError):
        i.seal(b"too early")
    with pytest.raises(NoiseStateError):
        r.initiate()
    i.initiate()
    with pytest.raises(NoiseStateError):
        i.initiate()


def test_replayed_message_3_fails_against_a_fresh_responder() -> None:
    i, r = make_pair()
    m1, _, m3 = handshake(i, r)
    fresh = NoiseConnection(initiator=False, config=r.config)
    fresh.receive_data(m1)  # message 1 is unauthenticated: accepted
    with pytest.raises(NoiseProtocolViolation):
        fresh.receive_data(m3)


def test_replayed_transport_frame_fails() -> None:
    i, r = _established()
    frame = bytes(i.seal(b"once"))
    assert plaintext(r.receive_data(frame)) == b"once"
    with pytest.raises(NoiseProtocolViolation):
        r.receive_data(frame)


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        NoiseConfig(max_plaintext_size=65520)
    with pytest.raises(ValueError):
        NoiseConfig(handshake_timeout=0)
    with pytest.raises(ValueError):
        NoiseConfig(protocol_name="Noise_NN_25519_ChaChaPoly_BLAKE2b")
    assert "private" not in repr(StaticKeypair.generate())

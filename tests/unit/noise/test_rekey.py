"""The rekey trigger, ``NoiseConfig.rekey_interval`` (Noise rev. 34 §11.3): each direction's
cipher runs ``REKEY()`` after every N transport messages; the nonce keeps counting."""

from __future__ import annotations

import pytest
from plait.noise import NoiseConfig, NoiseConnection, NoiseProtocolViolation, StaticKeypair
from plait.noise.events import HandshakeCompleted, PlaintextReceived


def _pair(initiator_interval: int | None, responder_interval: int | None) -> tuple[
    NoiseConnection, NoiseConnection
]:
    i = NoiseConnection(initiator=True, config=NoiseConfig(
        static_key=StaticKeypair.generate(), rekey_interval=initiator_interval))
    r = NoiseConnection(initiator=False, config=NoiseConfig(
        static_key=StaticKeypair.generate(), rekey_interval=responder_interval))
    i.initiate()
    r.receive_data(i.data_to_send())
    i.receive_data(r.data_to_send())
    events = r.receive_data(i.data_to_send())
    assert [type(e) for e in events] == [HandshakeCompleted]
    return i, r


def _send(sender: NoiseConnection, receiver: NoiseConnection, data: bytes) -> bytes:
    sender.send_plaintext(data)
    events = receiver.receive_data(sender.data_to_send())
    assert all(isinstance(e, PlaintextReceived) for e in events)
    return b"".join(e.data for e in events if isinstance(e, PlaintextReceived))


def test_both_directions_rekey_every_n_messages_and_keep_talking() -> None:
    i, r = _pair(3, 3)
    assert i.send_cipher is not None and r.receive_cipher is not None
    first_key = i.send_cipher._key  # private: the test looks at the key itself
    for n in range(1, 11):
        assert _send(i, r, b"to responder %d" % n) == b"to responder %d" % n
        assert _send(r, i, b"to initiator %d" % n) == b"to initiator %d" % n
        # the key changes exactly after messages 3, 6, 9; the nonce never resets
        assert i.send_cipher.n == n
        assert (i.send_cipher._key == first_key) == (n < 3)
        assert i.send_cipher._key == r.receive_cipher._key
    # one send split into many messages rekeys inside the batch too
    big = bytes(range(256)) * 1000  # 256000 B: 4 messages of at most 65519 B
    assert _send(i, r, big) == big
    assert i.send_cipher.n == 14


def test_a_peer_that_does_not_rekey_fails_with_a_mac_error_at_the_first_rekeyed_message() -> None:
    i, r = _pair(2, None)
    for n in range(2):
        assert _send(i, r, b"m%d" % n) == b"m%d" % n
    i.send_plaintext(b"after the rekey")
    with pytest.raises(NoiseProtocolViolation):
        r.receive_data(i.data_to_send())


@pytest.mark.parametrize("interval", [0, -1])
def test_rekey_interval_must_be_positive(interval: int) -> None:
    with pytest.raises(ValueError, match="rekey_interval"):
        NoiseConfig(rekey_interval=interval)

"""Fuzz target ``noise``: the sans-IO Noise XX connection (hardening.md §4, target 1).

Input layout: byte 0 picks the mode, byte 1 the chunk size, the rest drives it.

- mode 0: a responder is fed the input as the initiator's handshake messages;
- mode 1: an initiator that sent message 1 is fed the input as the responder's reply;
- mode 2: a completed channel (fixed keys, so every run is deterministic) runs a program of
  operations on the receiving side: seal and deliver plaintext (which must come out
  unchanged while nothing foreign was injected), inject raw bytes, deliver a sealed message
  with one bit flipped, deliver a truncated message, or end the stream.

Only :class:`~plait.noise.NoiseError` (a PlaitError) may escape.
"""

from __future__ import annotations

from _common import Cursor, split, test_one_input
from plait.noise import NoiseConfig, NoiseConnection, PlaintextReceived, StaticKeypair
from plait.noise.config import MAX_PLAINTEXT_SIZE

__all__ = ("SEEDS", "TestOneInput", "run_one")

_INITIATOR_KEY = StaticKeypair.from_private_bytes(bytes(range(1, 33)))
_RESPONDER_KEY = StaticKeypair.from_private_bytes(bytes(range(33, 65)))
_EPHEMERAL_I = StaticKeypair.from_private_bytes(bytes(range(65, 97))).as_keypair()
_EPHEMERAL_R = StaticKeypair.from_private_bytes(bytes(range(97, 129))).as_keypair()


def _pair(max_plaintext: int = MAX_PLAINTEXT_SIZE) -> tuple[NoiseConnection, NoiseConnection]:
    initiator = NoiseConnection(
        initiator=True,
        config=NoiseConfig(static_key=_INITIATOR_KEY, max_plaintext_size=max_plaintext),
        ephemeral=_EPHEMERAL_I,
    )
    responder = NoiseConnection(
        initiator=False,
        config=NoiseConfig(static_key=_RESPONDER_KEY, max_plaintext_size=max_plaintext),
        ephemeral=_EPHEMERAL_R,
    )
    return initiator, responder


def _handshake_messages() -> tuple[bytes, bytes, bytes]:
    initiator, responder = _pair()
    initiator.initiate()
    msg1 = initiator.data_to_send()
    responder.receive_data(msg1)
    msg2 = responder.data_to_send()
    initiator.receive_data(msg2)
    msg3 = initiator.data_to_send()
    return msg1, msg2, msg3


_MSG1, _MSG2, _MSG3 = _handshake_messages()


def _feed_handshake(conn: NoiseConnection, data: bytes, step: int) -> None:
    for chunk in split(data, step):
        conn.receive_data(chunk)
        conn.data_to_send()
    conn.receive_data(b"")  # EOF: clean only in the transport phase


def _transport(cur: Cursor) -> None:
    max_plaintext = 1 + (cur.u16() % MAX_PLAINTEXT_SIZE)
    sender, receiver = _pair(max_plaintext)
    sender.initiate()
    receiver.receive_data(sender.data_to_send())
    sender.receive_data(receiver.data_to_send())
    receiver.receive_data(sender.data_to_send())
    expected = bytearray()
    received = bytearray()
    tainted = False
    while cur:
        op = cur.byte() % 6
        if op == 0:  # honest plaintext
            plaintext = cur.take(cur.u16() % 4096)
            wire = bytes(sender.seal(plaintext))
            expected += plaintext
            for chunk in split(wire, cur.byte()):
                for event in receiver.receive_data(chunk):
                    assert isinstance(event, PlaintextReceived)
                    received += event.data
        elif op == 1:  # raw bytes
            tainted = True
            receiver.receive_data(cur.take(cur.byte()))
        elif op == 2:  # a sealed message with one bit flipped
            tainted = True
            wire = bytearray(sender.seal(cur.take(1 + cur.byte()) or b"x"))
            bit = cur.u16() % (len(wire) * 8)
            wire[bit // 8] ^= 1 << (bit % 8)
            receiver.receive_data(bytes(wire))
        elif op == 3:  # a truncated message, then EOF
            tainted = True
            wire = bytes(sender.seal(cur.take(1 + cur.byte()) or b"x"))
            receiver.receive_data(wire[: cur.byte() % len(wire)])
            receiver.receive_data(b"")
        elif op == 4:  # a replay of a fresh message
            tainted = True
            wire = bytes(sender.seal(b"x" * (1 + cur.byte())))
            receiver.receive_data(wire + wire)
        else:
            receiver.receive_data(b"")
            if not tainted:
                assert receiver.eof_received
            return
        if not tainted:
            assert received == expected, "plaintext changed in transit"


def run_one(data: bytes) -> None:
    cur = Cursor(data)
    mode = cur.byte() % 3
    step = cur.byte()
    if mode == 0:
        _, responder = _pair()
        _feed_handshake(responder, cur.rest(), step)
    elif mode == 1:
        initiator, _ = _pair()
        initiator.initiate()
        initiator.data_to_send()
        _feed_handshake(initiator, cur.rest(), step)
    else:
        _transport(cur)


def TestOneInput(data: bytes) -> None:
    test_one_input(run_one, data)


SEEDS: list[bytes] = [
    b"\x00\x00" + _MSG1 + _MSG3,
    b"\x00\x07" + _MSG1[:10],
    b"\x01\x00" + _MSG2,
    b"\x01\x03" + _MSG2[:40] + b"\x00" * 60,
    b"\x02\xff\xff" + b"\x00\x00\x10" + b"a" * 16 + b"\x00" + b"\x05",
    b"\x02\x00\x10" + b"\x02\x08" + b"hello wo" + b"\x00\x07",
    b"\x02\x00\x10" + b"\x01\x02\x00\x00" + b"\x03\x04abcd\x02",
    b"\x02\x00\x10" + b"\x04\x03",
]

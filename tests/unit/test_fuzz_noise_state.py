"""Stateful fuzzing of the Noise channel (hardening.md §4): two sans-IO NoiseConnections
joined by a generated channel, handshake included.

Hypothesis interleaves sends of arbitrary plaintext from either side (any size, up to
several maximal messages), partial deliveries in either direction, EOF, and tampering: a
flipped bit, a replayed message, dropped bytes. Invariants after every step: only
:class:`~plait.noise.NoiseError` subclasses escape; while a direction is untouched, its
receiver has read exactly the plaintext sent, in order, and its receive nonce equals the
sender's send nonce minus the messages still in flight; after tampering the receiver fails
(a ``NoiseProtocolViolation``) no later than when the damaged bytes arrive, and stays failed.

Deterministic in CI: the ``ci`` hypothesis profile (tests/conftest.py) derandomizes.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from plait.noise import (
    HandshakeCompleted,
    HandshakePhase,
    NoiseConfig,
    NoiseConnection,
    NoiseError,
    NoiseProtocolViolation,
    PlaintextReceived,
)

SIDES = st.sampled_from(["initiator", "responder"])


class _Direction:
    """Bytes in flight from one side to the other, and what was sent and read."""

    def __init__(self) -> None:
        self.wire = bytearray()
        self.sent = bytearray()
        self.read = bytearray()
        self.tampered = False
        self.closed = False
        """The sender closed this direction (EOF delivered)."""
        self.failed: NoiseError | None = None


class NoisePair(RuleBasedStateMachine):
    @initialize(max_plaintext=st.sampled_from([1, 16, 1000, 65519]), handshake=st.booleans())
    def setup(self, max_plaintext: int, handshake: bool) -> None:
        self.max_plaintext = max_plaintext
        self.conns = {
            "initiator": NoiseConnection(
                initiator=True, config=NoiseConfig(max_plaintext_size=max_plaintext)),
            "responder": NoiseConnection(
                initiator=False, config=NoiseConfig(max_plaintext_size=max_plaintext)),
        }
        self.towards = {"initiator": _Direction(), "responder": _Direction()}
        """Keyed by the receiving side."""
        self.completed = {"initiator": False, "responder": False}
        self.conns["initiator"].initiate()
        self._drain("initiator")
        if handshake:  # half the runs start in the transport phase, the rest fuzz the handshake
            for side in ("responder", "initiator", "responder"):
                self.deliver(side, 1 << 16)
            assert all(self.completed.values())

    @staticmethod
    def _other(side: str) -> str:
        return "responder" if side == "initiator" else "initiator"

    def _drain(self, side: str) -> None:
        conn = self.conns[side]
        if conn.phase is not HandshakePhase.FAILED:
            self.towards[self._other(side)].wire += conn.data_to_send()

    def _receive(self, side: str, data: bytes) -> None:
        direction = self.towards[side]
        conn = self.conns[side]
        if direction.failed is not None:
            return
        try:
            events = conn.receive_data(data)
        except NoiseProtocolViolation as exc:
            assert direction.tampered or not data, f"honest bytes failed: {exc!r}"
            direction.failed = exc
            assert conn.phase is HandshakePhase.FAILED
            return
        for event in events:
            if isinstance(event, HandshakeCompleted):
                self.completed[side] = True
            elif isinstance(event, PlaintextReceived):
                direction.read += event.data
        self._drain(side)

    def _taint(self, side: str) -> None:
        """Tampering during the handshake changes both sides' transcripts: both directions
        are then expected to fail."""
        self.towards[side].tampered = True
        if not all(self.completed.values()):
            self.towards[self._other(side)].tampered = True

    # -- rules ----------------------------------------------------------------------------

    @rule(side=SIDES, size=st.integers(0, 3 * 65519), fill=st.binary(min_size=1, max_size=1))
    def send(self, side: str, size: int, fill: bytes) -> None:
        conn = self.conns[side]
        if conn.phase is not HandshakePhase.TRANSPORT or self.towards[self._other(side)].closed:
            return
        plaintext = fill * min(size, 200 * self.max_plaintext)  # bounded message count
        conn.send_plaintext(plaintext)
        self.towards[self._other(side)].sent += plaintext
        self._drain(side)

    @rule(side=SIDES, n=st.integers(1, 70000))
    def deliver(self, side: str, n: int) -> None:
        direction = self.towards[side]
        chunk = bytes(direction.wire[:n])
        del direction.wire[:n]
        if chunk:
            self._receive(side, chunk)

    @rule(side=SIDES, position=st.integers(0, 1 << 20), bit=st.integers(0, 7))
    def flip_a_bit(self, side: str, position: int, bit: int) -> None:
        direction = self.towards[side]
        if direction.wire:
            direction.wire[position % len(direction.wire)] ^= 1 << bit
            self._taint(side)

    @rule(side=SIDES, count=st.integers(1, 40))
    def drop_bytes(self, side: str, count: int) -> None:
        direction = self.towards[side]
        if direction.wire:
            del direction.wire[:count]
            self._taint(side)

    @rule(side=SIDES)
    def replay_what_is_in_flight(self, side: str) -> None:
        direction = self.towards[side]
        if direction.wire:
            direction.wire += bytes(direction.wire)
            self._taint(side)

    @rule(side=SIDES)
    def eof(self, side: str) -> None:
        """The sender closes: deliver what is in flight, then EOF."""
        direction = self.towards[side]
        if direction.failed is not None:
            return
        self.deliver(side, len(direction.wire) or 1)
        conn = self.conns[side]
        if direction.failed is not None or direction.closed:
            return
        direction.closed = True
        try:
            conn.receive_data(b"")
        except NoiseProtocolViolation as exc:  # EOF during the handshake, or mid-message
            direction.failed = exc
            return
        if conn.phase is HandshakePhase.TRANSPORT:
            assert conn.next_plaintext() is None
            assert conn.eof_received

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def honest_directions_read_exactly_what_was_sent(self) -> None:
        for side, direction in self.towards.items():
            if direction.tampered:
                continue
            assert direction.failed is None or not self.completed[side]
            assert direction.sent.startswith(direction.read)
            if not direction.wire and direction.failed is None and self.completed[side]:
                assert direction.read == direction.sent

    @invariant()
    def failure_is_final(self) -> None:
        for side, direction in self.towards.items():
            if direction.failed is not None:
                assert self.conns[side].phase is HandshakePhase.FAILED


TestNoisePair = NoisePair.TestCase
TestNoisePair.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)

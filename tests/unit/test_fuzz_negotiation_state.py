"""Stateful fuzzing of protocol negotiation (hardening.md §4): an initiator and a responder
core joined by a generated channel.

Hypothesis chooses the candidates, the supported set, the round limit and optimistic mode,
then interleaves deliveries of arbitrary chunk sizes in both directions, EOFs and injected
garbage. Invariants after every step: only :class:`~plait.negotiation.NegotiationError`
escapes; a side that selected picked a protocol both sides know; both sides never select
different protocols; every byte a core writes is a well-formed frame. When the channel runs
dry without interference the outcome is the one wire.md §2 prescribes: the first candidate
the responder supports wins if it comes within ``max_proposals``, otherwise both fail.

Deterministic in CI: the ``ci`` hypothesis profile (tests/conftest.py) derandomizes.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from plait.negotiation import (
    NegotiationConfig,
    NegotiationError,
    NegotiationState,
    ProtocolNegotiator,
    Role,
)

IDS = st.sampled_from([b"/a/1", b"/b/1", b"/c/1", b"/d/2", b"x", b"\x00\xff"])
DONE = (NegotiationState.SELECTED, NegotiationState.FAILED)


def _frames_well_formed(data: bytes) -> bool:
    pos = 0
    while pos + 2 <= len(data):
        if data[pos + 1] & ~0x07:
            return False
        pos += 2 + data[pos]
    return pos == len(data)


class NegotiationPair(RuleBasedStateMachine):
    @initialize(
        candidates=st.lists(IDS, min_size=1, max_size=7, unique=True),
        supported=st.lists(IDS, min_size=1, max_size=4, unique=True),
        max_proposals=st.integers(1, 6),
        optimistic=st.booleans(),
    )
    def setup(
        self, candidates: list[bytes], supported: list[bytes], max_proposals: int,
        optimistic: bool,
    ) -> None:
        optimistic = optimistic and len(candidates) == 1
        config = NegotiationConfig(max_proposals=max_proposals)
        self.candidates, self.supported = candidates, supported
        self.max_proposals, self.optimistic = max_proposals, optimistic
        self.initiator = ProtocolNegotiator(
            Role.INITIATOR, candidates, optimistic=optimistic, config=config)
        self.responder = ProtocolNegotiator(Role.RESPONDER, supported, config=config)
        self.initiator.initiate()
        self.to_responder = bytearray(self._drain(self.initiator))
        self.to_initiator = bytearray()
        self.interfered = False
        self.errors: dict[str, NegotiationError] = {}

    def _drain(self, core: ProtocolNegotiator) -> bytes:
        out = core.data_to_send()
        assert _frames_well_formed(out), out
        return out

    def _feed(self, name: str, core: ProtocolNegotiator, data: bytes) -> None:
        if core.state in DONE:
            if core.state is NegotiationState.SELECTED:
                core.receive_data(data)  # the protocol's own bytes now
            return
        try:
            core.receive_data(data)
        except NegotiationError as exc:
            self.errors[name] = exc
            assert core.state is NegotiationState.FAILED
        out = self._drain(core)
        if core is self.initiator:
            self.to_responder += out
        else:
            self.to_initiator += out

    @rule(n=st.integers(1, 300))
    def deliver_to_responder(self, n: int) -> None:
        chunk = bytes(self.to_responder[:n])
        del self.to_responder[:n]
        if chunk:
            self._feed("responder", self.responder, chunk)

    @rule(n=st.integers(1, 300))
    def deliver_to_initiator(self, n: int) -> None:
        chunk = bytes(self.to_initiator[:n])
        del self.to_initiator[:n]
        if chunk:
            self._feed("initiator", self.initiator, chunk)

    @rule(data=st.binary(min_size=1, max_size=12), to_responder=st.booleans())
    def inject_garbage(self, data: bytes, to_responder: bool) -> None:
        self.interfered = True
        (self.to_responder if to_responder else self.to_initiator).extend(data)

    @rule(responder=st.booleans())
    def eof(self, responder: bool) -> None:
        self.interfered = True
        self._feed("responder" if responder else "initiator",
                   self.responder if responder else self.initiator, b"")

    @invariant()
    def selections_agree(self) -> None:
        mine, theirs = self.initiator.selected_protocol, self.responder.selected_protocol
        if mine is not None:
            assert mine in self.candidates
        if theirs is not None:
            assert theirs in self.supported
        if mine is not None and theirs is not None:
            assert mine == theirs

    @precondition(lambda self: not self.interfered)
    @rule()
    def settle(self) -> None:
        """Deliver everything until quiet, then check the prescribed outcome."""
        for _ in range(40):
            if not (self.to_responder or self.to_initiator):
                break
            self.deliver_to_responder(1 << 16)
            self.deliver_to_initiator(1 << 16)
        common = [i for i, c in enumerate(self.candidates) if c in self.supported]
        if self.optimistic:
            assert self.initiator.state is NegotiationState.SELECTED
            expected = NegotiationState.SELECTED if common else NegotiationState.FAILED
            assert self.responder.state is expected
            return
        if common and common[0] < self.max_proposals:
            winner = self.candidates[common[0]]
            assert self.initiator.selected_protocol == winner
            assert self.responder.selected_protocol == winner
        else:
            assert self.initiator.state is NegotiationState.FAILED
            assert self.responder.state is NegotiationState.FAILED


TestNegotiationPair = NegotiationPair.TestCase
TestNegotiationPair.settings = settings(max_examples=300, stateful_step_count=30, deadline=None)

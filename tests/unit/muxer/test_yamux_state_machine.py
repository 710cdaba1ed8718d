"""Hypothesis stateful test: two sans-IO cores driven by random commands and deliveries.

Invariants after every step: bytes arrive in order and exactly once per stream (unless
reset), windows never go negative, no frame overruns a window (the receiving core would
raise), buffered bytes never exceed the granted window, limits hold, and streams whose both
directions ended are released by both cores.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from plait.muxer import (
    HalfState,
    MuxerEvent,
    PingAcknowledged,
    StreamDataReceived,
    StreamEnded,
    StreamOpened,
    StreamReset,
    YamuxConfig,
    YamuxConnection,
)
from support.yamux_pair import CorePair

PATTERN = bytes(range(251)) * 1200


def expected(stream_id: int, offset: int, n: int) -> bytes:
    start = (stream_id * 31 + offset) % 251
    return PATTERN[start:start + n]


@dataclass
class Half:
    """One direction of one stream, seen from both ends."""

    sent: int = 0
    received: int = 0
    unread: int = 0
    fin_sent: bool = False
    fin_received: bool = False


@dataclass
class ModelStream:
    opener: int  # 0 client, 1 server
    seen_by_peer: bool = False
    accepted: bool = False
    halves: dict[int, Half] = field(default_factory=lambda: {0: Half(), 1: Half()})
    reset: bool = False


CONFIG = YamuxConfig(keepalive_interval=None, max_streams=8, max_ack_backlog=4, accept_backlog=4,
                     max_connection_window=8 * 256 * 1024 + 4 * 1024 * 1024)


class TwoCores(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.pair = CorePair(CONFIG, CONFIG)
        self.pair.client.start(0.0)
        self.pair.server.start(0.0)
        self.cores = (self.pair.client, self.pair.server)
        self.streams: dict[int, ModelStream] = {}
        self.pings: list[set[int]] = [{1}, {1}]  # start() sent an RTT ping each
        self.now = 0.0

    # ---------------------------------------------------------------- helpers

    def live(self) -> list[int]:
        return sorted(sid for sid, s in self.streams.items() if not s.reset)

    def pick(self, data: st.DataObject) -> int | None:
        live = self.live()
        return data.draw(st.sampled_from(live)) if live else None

    @staticmethod
    def usable(s: ModelStream, side: int) -> bool:
        """The application on ``side`` holds the stream (it opened or accepted it)."""
        return s.opener == side or s.accepted

    def handle(self, side: int, events: list[MuxerEvent]) -> None:
        """Check the events the core on ``side`` produced."""
        for event in events:
            if isinstance(event, StreamOpened):
                assert event.stream_id % 2 == side  # the client opens odd ids at the server
                s = self.streams[event.stream_id]
                assert s.opener == 1 - side and not s.seen_by_peer
                s.seen_by_peer = True
            elif isinstance(event, StreamDataReceived):
                s = self.streams[event.stream_id]
                assert not s.reset
                half = s.halves[1 - side]  # the peer's sending direction
                assert event.data == expected(event.stream_id, half.received, len(event.data))
                assert not half.fin_received
                half.received += len(event.data)
                half.unread += len(event.data)
                assert half.received <= half.sent
            elif isinstance(event, StreamEnded):
                half = self.streams[event.stream_id].halves[1 - side]
                assert half.fin_sent and half.received == half.sent
                half.fin_received = True
            elif isinstance(event, StreamReset):
                assert event.by_peer
                self.streams[event.stream_id].reset = True
            elif isinstance(event, PingAcknowledged):
                self.pings[side].remove(event.opaque)
        assert not self.cores[side].is_closed

    # ---------------------------------------------------------------- rules

    @rule(side=st.integers(0, 1))
    def open_stream(self, side: int) -> None:
        core = self.cores[side]
        if core.can_open_stream:
            sid = core.open_stream()
            self.streams[sid] = ModelStream(opener=side)

    @rule(data=st.data())
    def accept(self, data: st.DataObject) -> None:
        waiting = [sid for sid, s in self.streams.items()
                   if s.seen_by_peer and not s.accepted and not s.reset]
        if waiting:
            sid = data.draw(st.sampled_from(waiting))
            s = self.streams[sid]
            self.cores[1 - s.opener].accept_stream(sid)
            s.accepted = True

    @rule(data=st.data(), side=st.integers(0, 1), n=st.integers(0, 70_000))
    def write(self, data: st.DataObject, side: int, n: int) -> None:
        sid = self.pick(data)
        if sid is None:
            return
        s = self.streams[sid]
        half = s.halves[side]
        if not self.usable(s, side) or half.fin_sent:
            return
        core = self.cores[side]
        state = core.stream_state(sid)
        if state is None:
            return
        accepted = core.send_data(sid, expected(sid, half.sent, n))
        assert 0 <= accepted <= n
        half.sent += accepted

    @rule(data=st.data(), side=st.integers(0, 1), n=st.integers(1, 200_000))
    def read(self, data: st.DataObject, side: int, n: int) -> None:
        sid = self.pick(data)
        if sid is None:
            return
        half = self.streams[sid].halves[1 - side]
        take = min(n, half.unread)
        if take:
            self.cores[side].acknowledge_received_data(sid, take, now=self.now)
            half.unread -= take

    @rule(data=st.data(), side=st.integers(0, 1))
    def half_close(self, data: st.DataObject, side: int) -> None:
        sid = self.pick(data)
        if sid is None:
            return
        s = self.streams[sid]
        if not self.usable(s, side) or s.halves[side].fin_sent:
            return
        self.cores[side].end_stream(sid)
        s.halves[side].fin_sent = True

    @rule(data=st.data(), side=st.integers(0, 1))
    def reset(self, data: st.DataObject, side: int) -> None:
        sid = self.pick(data)
        if sid is None or not self.usable(self.streams[sid], side):
            return
        self.cores[side].reset_stream(sid)
        self.streams[sid].reset = True
        assert self.cores[side].stream_state(sid) is None

    @rule(side=st.integers(0, 1))
    def ping(self, side: int) -> None:
        if len(self.pings[side]) < CONFIG.max_outstanding_pings:
            self.pings[side].add(self.cores[side].send_ping(now=self.now))

    @rule(side=st.integers(0, 1), chunk=st.sampled_from([None, 1, 7, 4096, 20_000]),
          max_bytes=st.sampled_from([None, 1, 30_000]), dt=st.sampled_from([0.0, 0.001, 0.05]))
    def deliver(self, side: int, chunk: int | None, max_bytes: int | None, dt: float) -> None:
        self.now += dt
        self.pair.now = self.now
        events = self.pair.flush(self.cores[side], chunk=chunk, max_bytes=max_bytes)
        self.handle(1 - side, events)
        self.handle(side, self.pair.take(self.cores[side]))
        self.pair.take(self.cores[1 - side])

    @rule()
    def settle(self) -> None:
        """Deliver everything both ways until quiet."""
        for _ in range(50):
            if not (self.cores[0].has_data_to_send or self.cores[1].has_data_to_send):
                break
            for side in (0, 1):
                events = self.pair.flush(self.cores[side])
                self.handle(1 - side, events)
                self.handle(side, self.pair.take(self.cores[side]))
                self.pair.take(self.cores[1 - side])

    # ---------------------------------------------------------------- invariants

    @invariant()
    def windows_and_limits(self) -> None:
        if not hasattr(self, "pair"):
            return
        for core in self.cores:
            assert core.stream_count <= CONFIG.max_streams
            assert core.ack_backlog <= CONFIG.max_ack_backlog
            assert core.accept_backlog <= CONFIG.accept_backlog
            for sid in core.stream_ids:
                state = core.stream_state(sid)
                assert state is not None
                recv = state.recv
                assert state.send_window >= 0
                assert recv.available >= 0 and recv.buffered >= 0 and recv.pending >= 0
                assert recv.available + recv.buffered + recv.pending == recv.size
                assert recv.size <= CONFIG.max_stream_window
                assert not state.is_done()  # done streams are released at once

    @invariant()
    def finished_streams_are_released(self) -> None:
        if not hasattr(self, "pair"):
            return
        for sid, s in self.streams.items():
            if s.reset:
                continue
            for side in (0, 1):
                core: YamuxConnection = self.cores[side]
                state = core.stream_state(sid)
                mine, theirs = s.halves[side], s.halves[1 - side]
                if mine.fin_sent and theirs.fin_received:
                    assert state is None
                elif state is not None:
                    assert (state.write_state is HalfState.CLOSED) == mine.fin_sent
                    # buffered bytes never exceed what the window granted
                    assert state.recv.buffered == theirs.unread


TwoCores.TestCase.settings = settings(max_examples=100, stateful_step_count=50, deadline=None)
test_two_cores = TwoCores.TestCase

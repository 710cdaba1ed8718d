"""Adversarial catalogue, Yamux cases over the full stack (hardening.md §3.4): crafted
frames inside a real Noise channel (YMX) against a listening Node, so the node's own
handling (handlers, counters, events) is checked too.

The frame-level cases against a bare ``MuxedConnection`` live in test_muxer.py (Y1, Y2, Y4,
Y5, Y6 overflow, Y7, Y8, Y10, Y11, Y12, Y14, Y15, Y18, Y19) and the sans-IO ones in
tests/unit/muxer (Y20 in the state machine, Y21, Y22, Y23, Y24). Here:

- Y3 undefined flag bits and SYN+RST → ``test_undefined_and_contradictory_flags``
- Y6 window update with delta 0 → ``test_zero_window_update_is_harmless``
- Y9 SYN on id 0; ping and GO_AWAY on a stream id → ``test_stream_id_zero_and_session_frames_on_streams``
- Y16 a peer that never answers pings → ``test_silent_peer_is_dropped_by_keepalive``
- Y-flood pings through the full stack (reads pushed from the socket on asyncio) →
  ``test_ping_flood_through_noise_is_answered_with_bounded_input``
- Y17 GO_AWAY(0) from the peer mid-transfer → ``test_goaway_0_from_the_peer``
- Y20 FIN twice, RST after FIN, FIN+RST, DATA+SYN+FIN in one frame → ``test_odd_flag_sequences_are_idempotent``
- Y25 both ends write more than a window without reading → ``test_both_ends_writing_without_reading_stalls_only_that_stream``
- Y26 every stream filled to its window → ``test_every_stream_filled_to_its_window``
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest
from plait._nowait import PUSH_READ_SIZE
from plait.muxer import KeepaliveTimeoutError, MuxerProtocolViolation, YamuxConfig
from plait.node import (
    ECHO_PROTOCOL_ID,
    DisconnectReason,
    NodeConfig,
    PeerConnected,
    PeerConnection,
    PeerDisconnected,
)
from support.adversary import (
    NoiseYamux,
    assert_idle,
    bystander,
    listening_node,
    next_event,
    traced_peak,
    wait_until,
    ymx_negotiate,
)
from support.yamux_raw import ACK, DATA, FIN, GO_AWAY, PING, RST, SYN, WINDOW_UPDATE, frame

if TYPE_CHECKING:
    from anyio.abc import ByteStream

pytestmark = [pytest.mark.anyio, pytest.mark.network]

KIB = 1024
SINK = b"/adversarial/sink/1"


def _caused_by(error: BaseException | None, kind: type[BaseException]) -> bool:
    for _ in range(10):
        if error is None:
            return False
        if isinstance(error, kind):
            return True
        error = error.__cause__ or error.__context__
    return False


async def _attacker(port: int, events: object) -> tuple[NoiseYamux, PeerConnection]:
    ymx = await NoiseYamux.connect_to(port)
    connected = await next_event(events, PeerConnected)  # type: ignore[arg-type]
    return ymx, connected.connection


async def _echo_works(ymx: NoiseYamux, stream_id: int, payload: bytes = b"alive") -> None:
    """Open ``stream_id`` for echo on the same connection and check a round trip."""
    await ymx_negotiate(ymx, stream_id, ECHO_PROTOCOL_ID)
    before = len(ymx.data_of(stream_id))
    await ymx.send(frame(DATA, 0, stream_id, body=payload))
    data = await ymx.wait_data(stream_id, before + len(payload))
    assert data[before:] == payload
    assert not ymx.go_away_codes()


async def test_undefined_and_contradictory_flags() -> None:
    """Y3: undefined flag bits are ignored (as HTTP/2 does); SYN+RST opens nothing; the
    connection carries on."""
    async with listening_node() as (node, port):
        events = node.events()
        ymx, connection = await _attacker(port, events)
        await _echo_works(ymx, 1)
        await ymx.send(frame(DATA, 0x10 | 0x8000, 1, body=b"odd-bits"))  # undefined bits
        assert (await ymx.wait_data(1, 2 + len(ECHO_PROTOCOL_ID) + 5 + 8)).endswith(b"odd-bits")
        await ymx.send(frame(WINDOW_UPDATE, SYN | RST, 3, 0))  # contradictory: no stream
        await _echo_works(ymx, 5)
        assert not ymx.was_reset(1) and connection.is_connected
        assert node.statistics().handlers == 2
        await ymx.aclose()
        await connection.wait_closed()
        assert_idle(node)


async def test_zero_window_update_is_harmless() -> None:
    async with listening_node() as (node, port):
        ymx, connection = await _attacker(port, node.events())
        await _echo_works(ymx, 1)
        await ymx.send(frame(WINDOW_UPDATE, 0, 1, 0) * 50)
        await _echo_works(ymx, 3)
        assert connection.is_connected
        await ymx.aclose()
        await connection.wait_closed()


@pytest.mark.parametrize("raw", [
    pytest.param(frame(WINDOW_UPDATE, SYN, 0, 0), id="syn-on-id-0"),
    pytest.param(frame(DATA, SYN, 0, body=b"x"), id="data-syn-on-id-0"),
    pytest.param(frame(PING, SYN, 7, 1), id="ping-on-a-stream-id"),
    pytest.param(frame(GO_AWAY, 0, 7, 0), id="goaway-on-a-stream-id"),
])
async def test_stream_id_zero_and_session_frames_on_streams(raw: bytes) -> None:
    """Y9: a stream opened on id 0, or a session frame on a stream id, is a protocol
    violation: GO_AWAY(1), the connection ends (reason ERROR), other peers unaffected."""
    async with listening_node() as (node, port), bystander(node, port) as honest:
        events = node.events()
        ymx, connection = await _attacker(port, events)
        await ymx.send(raw)
        gone = await next_event(events, PeerDisconnected)
        assert gone.connection is connection and gone.reason is DisconnectReason.ERROR
        assert _caused_by(gone.error, MuxerProtocolViolation), repr(gone.error)
        assert await ymx.wait_eof()
        assert ymx.go_away_codes() == [1]
        await honest.check()
        await ymx.aclose()
        await connection.wait_closed()


async def test_ping_flood_through_noise_is_answered_with_bounded_input() -> None:
    """A peer floods pings without reading the pongs: the node stops reading once its pong
    queue is full (on asyncio the socket's pushed reads are paused), so what it holds
    unparsed stays within one read, and once the peer reads, every ping is answered and a
    bystander connection never noticed."""
    count = 50_000
    config = NodeConfig(yamux=YamuxConfig(keepalive_interval=None, auto_tune=False))
    async with listening_node(config) as (node, port), bystander(node, port) as honest:
        events = node.events()
        ymx, connection = await _attacker(port, events)
        core = connection._mux.core
        peak = 0
        flooding = True

        async def flood() -> None:
            nonlocal flooding
            await ymx.send(frame(PING, SYN, 0, 1) * count)
            flooding = False

        async def watch() -> None:
            nonlocal peak
            while flooding:
                peak = max(peak, core.buffered_input_size)
                await anyio.sleep(0.001)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(flood)
                tg.start_soon(watch)
                await ymx.recv_until(lambda fs: len(ymx.of(PING, ACK)) >= count, timeout=30)
        assert len(ymx.of(PING, ACK)) == count
        assert peak <= 2 * PUSH_READ_SIZE
        await honest.check()
        await ymx.aclose()
        await connection.wait_closed()


async def test_silent_peer_is_dropped_by_keepalive() -> None:
    """Y16: after the upgrade the peer never reads nor answers pings: the keep-alive timeout
    closes the connection and the node's handler streams end."""
    config = NodeConfig(yamux=YamuxConfig(keepalive_interval=0.3, keepalive_timeout=0.5))
    async with listening_node(config) as (node, port):
        events = node.events()
        ymx = await NoiseYamux.connect_to(port)
        ymx.answer_pings = False
        connection = (await next_event(events, PeerConnected)).connection
        await ymx_negotiate(ymx, 1, ECHO_PROTOCOL_ID)  # a handler is running
        started = anyio.current_time()
        gone = await next_event(events, PeerDisconnected)
        assert gone.connection is connection and gone.reason is DisconnectReason.ERROR
        assert _caused_by(gone.error, KeepaliveTimeoutError), repr(gone.error)
        assert anyio.current_time() - started < 3
        await connection.wait_closed()
        await ymx.aclose()
        assert_idle(node)


async def test_goaway_0_from_the_peer() -> None:
    """Y17: the peer says GO_AWAY(0) (normal) during a transfer. plait follows rust-yamux:
    the connection ends at once as a clean remote close (reason REMOTE, no ban); data the
    node had already received was delivered to its handler."""
    received: list[bytes] = []
    got = anyio.Event()

    async def sink(conn: PeerConnection, stream: ByteStream) -> None:
        try:
            while True:
                received.append(await stream.receive())
                got.set()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass

    async with listening_node() as (node, port):
        node.add_protocol(SINK, sink)
        events = node.events()
        ymx, connection = await _attacker(port, events)
        await ymx_negotiate(ymx, 1, SINK)
        await ymx.send(frame(DATA, 0, 1, body=b"part one"))
        with anyio.fail_after(5):
            await got.wait()
        await ymx.send(frame(GO_AWAY, 0, 0, 0))
        gone = await next_event(events, PeerDisconnected)
        assert gone.connection is connection and gone.reason is DisconnectReason.REMOTE
        assert b"".join(received) == b"part one"
        assert not node.is_banned(ymx.attacker.key.public)
        await ymx.wait_eof()
        assert ymx.go_away_codes() == []  # a GO_AWAY is not answered with another
        await connection.wait_closed()
        await ymx.aclose()
        assert_idle(node)


async def test_odd_flag_sequences_are_idempotent() -> None:
    """Y20: FIN twice, FIN+RST together and DATA+SYN+FIN in one frame leave a consistent
    state: no exception escapes, the connection and a bystander stream on it keep working.
    (RST right after FIN: the next test.)"""
    async with listening_node() as (node, port):
        events = node.events()
        ymx, connection = await _attacker(port, events)
        await _echo_works(ymx, 101)
        await ymx_negotiate(ymx, 1, ECHO_PROTOCOL_ID)
        await ymx.send(frame(DATA, FIN, 1, 0) + frame(DATA, FIN, 1, 0))  # FIN twice
        await ymx_negotiate(ymx, 5, ECHO_PROTOCOL_ID)
        await ymx.send(frame(DATA, FIN | RST, 5, 0))  # FIN and RST together
        echo = bytes([len(ECHO_PROTOCOL_ID), 0]) + ECHO_PROTOCOL_ID
        await ymx.send(frame(DATA, SYN | FIN, 7, body=echo + b"one-shot"))  # all in one frame
        await ymx.recv_until(lambda _fs: ymx.data_of(7).endswith(b"one-shot"))
        assert ymx.data_of(7) == echo + b"one-shot"
        await ymx.send(frame(DATA, 0, 101, body=b"bystander"))
        assert (await ymx.wait_data(101, 2 + len(ECHO_PROTOCOL_ID) + 5 + 9)).endswith(b"bystander")
        assert connection.is_connected and not ymx.go_away_codes()
        await wait_until(lambda: node.statistics().handlers == 1)  # only 101 is left
        await ymx.aclose()
        await connection.wait_closed()
        assert_idle(node)


async def test_rst_right_after_fin_costs_only_that_stream() -> None:
    """Y20, RST after FIN: the echo handler sees EOF and returns while the RST is already
    processed; only that stream is affected."""
    async with listening_node() as (node, port):
        events = node.events()
        ymx, connection = await _attacker(port, events)
        try:
            await ymx_negotiate(ymx, 1, ECHO_PROTOCOL_ID)
            await ymx.send(frame(DATA, FIN, 1, 0) + frame(WINDOW_UPDATE, RST, 1, 0))
            await wait_until(lambda: node.statistics().handlers == 0)
            await _echo_works(ymx, 3)
            assert connection.is_connected
        finally:
            await ymx.aclose()
            await connection.wait_closed()


async def test_both_ends_writing_without_reading_stalls_only_that_stream() -> None:
    """Y25: the attacker sends more than a window to the echo handler and never reads or
    grants credit: that stream stalls (documented), a second stream on the same connection
    still echoes, and resetting the stalled stream frees the handler."""
    async with listening_node() as (node, port):
        events = node.events()
        ymx, connection = await _attacker(port, events)
        await ymx_negotiate(ymx, 1, ECHO_PROTOCOL_ID)
        sent = 0
        chunk = b"z" * (16 * KIB)
        # the node's window is 256 KiB; it echoes until our window for it (256 KiB) is used,
        # then stops reading, so its window for us closes too
        while sent < 480 * KIB:
            await ymx.send(frame(DATA, 0, 1, body=chunk))
            sent += len(chunk)
        await ymx.recv_until(lambda _fs: len(ymx.data_of(1)) >= 256 * KIB, timeout=5)
        echoed = len(ymx.data_of(1)) - (2 + len(ECHO_PROTOCOL_ID))
        assert echoed <= 256 * KIB  # never past the window we granted
        await _echo_works(ymx, 3)
        assert node.statistics().handlers == 2
        await ymx.send(frame(WINDOW_UPDATE, RST, 1, 0))
        await wait_until(lambda: node.statistics().handlers == 1)
        await ymx.aclose()
        await connection.wait_closed()
        assert_idle(node)


async def test_every_stream_filled_to_its_window() -> None:
    """Y26: 16 streams to a handler that never reads, each filled to its 256 KiB window:
    the node buffers at most streams × window, and a bystander is unaffected."""
    config = NodeConfig(yamux=YamuxConfig(max_streams=16, auto_tune=False))
    hold = anyio.Event()

    async def never_reads(conn: PeerConnection, stream: ByteStream) -> None:
        await hold.wait()

    async with listening_node(config) as (node, port), bystander(node, port) as honest:
        node.add_protocol(SINK, never_reads)
        events = node.events()
        ymx, connection = await _attacker(port, events)
        with traced_peak() as peak:
            for i in range(16):
                await ymx_negotiate(ymx, 1 + 2 * i, SINK)
            # the negotiation frame counted against each window too
            left = 256 * KIB - (2 + len(SINK))
            for size in [16 * KIB] * (left // (16 * KIB)) + [left % (16 * KIB)]:
                await ymx.send(b"".join(
                    frame(DATA, 0, 1 + 2 * i, body=b"w" * size) for i in range(16)))
            await wait_until(lambda: connection.muxer.core.buffered_input_size == 0)
            await honest.check()
            # one stream more is refused by RST: max_streams counts every live stream
            await ymx.send(frame(WINDOW_UPDATE, SYN, 99, 0))
            assert await ymx.wait_reset(99)
            assert peak() < 16 * 256 * KIB + 4 * 1024 * KIB
        assert connection.is_connected and not ymx.go_away_codes()
        hold.set()
        await ymx.aclose()
        await connection.wait_closed()

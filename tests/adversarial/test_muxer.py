"""Adversarial Yamux input against MuxedConnection over real TCP (hardening.md §3.4).

A raw frame-level client (tests/support/yamux_raw.py) plays the dialer and sends crafted
frames; the plait side is the listener. Each case checks the documented outcome: GO_AWAY
with a code and the connection closed, or RST of one stream while a bystander stream on the
same connection keeps working, and bounded memory where a flood is involved.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import pytest
from anyio.abc import SocketAttribute
from plait.muxer import (
    FlowControlViolation,
    MuxedConnection,
    MuxedStream,
    MuxerFloodError,
    MuxerProtocolViolation,
    StreamResetError,
    UnknownStreamFloodError,
    YamuxConfig,
)
from support.yamux_raw import (
    ACK,
    DATA,
    FIN,
    GO_AWAY,
    PING,
    RST,
    SYN,
    WINDOW_UPDATE,
    AsyncRawYamux,
    frame,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.anyio

KIB = 1024
MIB = 1024 * KIB
CONFIG = YamuxConfig(keepalive_interval=None, auto_tune=False)


@asynccontextmanager
async def raw_against_plait(
    config: YamuxConfig = CONFIG, *, answer_pings: bool = True
) -> AsyncIterator[tuple[AsyncRawYamux, MuxedConnection]]:
    """A raw client connected to a plait listener-side MuxedConnection."""
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    listener = multi.listeners[0]
    raw = await AsyncRawYamux.connect(listener.extra(SocketAttribute.local_port),
                                      answer_pings=answer_pings)
    sock = await listener.accept()
    await multi.aclose()
    with anyio.fail_after(30):
        try:
            async with MuxedConnection(sock, is_client=False, config=config) as mux:
                yield raw, mux
        finally:
            await raw.aclose()


async def open_bystander(raw: AsyncRawYamux, mux: MuxedConnection) -> MuxedStream:
    """Open stream 1 from the raw side and check it echoes through the plait side."""
    await raw.send(frame(WINDOW_UPDATE, SYN, 1, 0) + frame(DATA, 0, 1, body=b"hello"))
    stream = await mux.accept_stream()
    assert await stream.receive() == b"hello"
    await stream.send(b"world")
    await raw.recv_until(lambda fs: any(f.stream_id == 1 and f.body == b"world" for f in fs))
    return stream


async def bystander_still_works(raw: AsyncRawYamux, stream: MuxedStream) -> None:
    await raw.send(frame(DATA, 0, 1, body=b"ping?"))
    assert await stream.receive() == b"ping?"
    await stream.send(b"pong!")
    frames = await raw.recv_until(
        lambda fs: any(f.stream_id == 1 and f.body == b"pong!" for f in fs))
    assert any(f.body == b"pong!" for f in frames)
    assert not raw.eof and raw.go_away_codes() == []


async def expect_goaway(
    raw: AsyncRawYamux, mux: MuxedConnection, code: int, cause: type[Exception]
) -> None:
    """The plait side answered with GO_AWAY(code), closed the TCP connection, and its
    application sees the connection broken by ``cause``."""
    assert await raw.wait_eof(10)
    assert raw.go_away_codes() == [code]
    with pytest.raises(anyio.BrokenResourceError) as info:
        await mux.accept_stream()
    assert isinstance(info.value.__cause__, cause)


@pytest.mark.parametrize("raw_bytes", [
    pytest.param(frame(WINDOW_UPDATE, SYN, 3, 0, version=1), id="version-1"),
    pytest.param(frame(9, 0, 0, 0), id="unknown-type"),
    pytest.param(frame(WINDOW_UPDATE, SYN, 2, 0), id="wrong-parity-syn"),
    pytest.param(frame(WINDOW_UPDATE, SYN, 1, 0), id="duplicate-syn"),
    pytest.param(frame(PING, ACK, 0, 777), id="unsolicited-pong"),
    pytest.param(frame(DATA, 0, 1, 2 * MIB), id="2mib-data-header-only"),
    pytest.param(frame(GO_AWAY, 0, 1, 0), id="goaway-on-stream-id"),
])
async def test_fatal_frames_get_goaway_1_and_close(raw_bytes: bytes) -> None:
    async with raw_against_plait() as (raw, mux):
        stream = await open_bystander(raw, mux)
        await raw.send(raw_bytes)
        await expect_goaway(raw, mux, 1, MuxerProtocolViolation)
        with pytest.raises(anyio.BrokenResourceError):
            await stream.receive()


async def test_data_beyond_window_is_goaway_1() -> None:
    async with raw_against_plait() as (raw, mux):
        await open_bystander(raw, mux)
        # the window is 256 KiB and 5 bytes were already used; nobody reads any more
        await raw.send(frame(DATA, 0, 1, body=b"a" * (256 * KIB - 5)))
        await raw.send(frame(DATA, 0, 1, body=b"b"))
        await expect_goaway(raw, mux, 1, FlowControlViolation)


async def test_window_update_overflow_is_goaway_1() -> None:
    async with raw_against_plait() as (raw, mux):
        await open_bystander(raw, mux)
        await raw.send(frame(WINDOW_UPDATE, 0, 1, 0xFFFFFFFF))
        await expect_goaway(raw, mux, 1, FlowControlViolation)


async def test_1100_syns_refused_by_rst_beyond_limits_connection_lives() -> None:
    config = YamuxConfig(keepalive_interval=None, accept_backlog=1024)  # max_streams 512
    async with raw_against_plait(config) as (raw, mux):
        await raw.send(b"".join(frame(WINDOW_UPDATE, SYN, 1 + 2 * i, 0) for i in range(1100)))
        frames = await raw.recv_until(lambda fs: len([f for f in fs if f.flags & RST]) >= 588)
        rsts = {f.stream_id for f in frames if f.flags & RST}
        assert rsts == {1 + 2 * i for i in range(512, 1100)}
        assert mux.core.stream_count == 512
        # the connection lives: a ping is answered and admitted streams work
        await raw.send(frame(PING, SYN, 0, 4242))
        await raw.recv_until(lambda fs: any(f.type == PING and f.length == 4242 for f in fs))
        assert raw.of(PING, ACK)[-1].length == 4242
        first = await mux.accept_stream()
        await raw.send(frame(DATA, 0, 1, body=b"still alive"))
        assert await first.receive() == b"still alive"
        assert raw.go_away_codes() == [] and not raw.eof


async def test_accept_backlog_overflow_is_rst_and_accepting_resumes() -> None:
    async with raw_against_plait() as (raw, mux):  # accept backlog 256, nobody accepting
        await raw.send(b"".join(frame(WINDOW_UPDATE, SYN, 1 + 2 * i, 0) for i in range(300)))
        await raw.recv_until(lambda fs: len(fs) >= 44)
        assert {f.stream_id for f in raw.of(WINDOW_UPDATE, RST)} == {
            1 + 2 * i for i in range(256, 300)}
        accepted = [await mux.accept_stream() for _ in range(256)]
        assert [s.stream_id for s in accepted] == [1 + 2 * i for i in range(256)]
        await raw.recv_until(lambda fs: len(raw.of(WINDOW_UPDATE, ACK)) >= 256)
        await raw.send(frame(WINDOW_UPDATE, SYN, 601, 0))
        assert (await mux.accept_stream()).stream_id == 601


async def test_rst_flood_is_bounded_then_goaway_2() -> None:
    config = YamuxConfig(keepalive_interval=None, rst_burst=500, rst_rate=0.0)
    async with raw_against_plait(config) as (raw, mux):
        stream = await open_bystander(raw, mux)
        await raw.send(frame(DATA, RST, 999, 0) * 400)  # within the budget: ignored
        await bystander_still_works(raw, stream)
        await raw.send(frame(DATA, RST, 999, 0) * 200)
        await expect_goaway(raw, mux, 2, MuxerFloodError)


async def test_ping_flood_pongs_bounded_and_all_answered() -> None:
    count = 50_000
    config = YamuxConfig(keepalive_interval=None, auto_tune=False, receive_size=64 * KIB)
    async with raw_against_plait(config) as (raw, mux):
        stream = await open_bystander(raw, mux)
        pings = frame(PING, SYN, 0, 1) * count

        async def flood() -> None:
            await raw.send(pings)  # the raw side is not reading while it floods

        async with anyio.create_task_group() as tg:
            tg.start_soon(flood)
            with anyio.move_on_after(0.5):
                await anyio.sleep(10)  # the flood backs up the plait side's writes
            # bounded: input parked by the core stays within one receive
            assert mux.core.buffered_input_size <= 64 * KIB + 12
        await raw.recv_until(lambda fs: len(raw.of(PING, ACK)) >= count, timeout=20)
        assert len(raw.of(PING, ACK)) == count
        await bystander_still_works(raw, stream)


async def test_peer_that_never_reads_blocks_writer_on_window_memory_bounded() -> None:
    async with raw_against_plait() as (raw, mux):
        stream = await open_bystander(raw, mux)
        with anyio.move_on_after(1.0) as scope:
            await stream.send(b"x" * (8 * MIB))
        assert scope.cancelled_caught  # blocked on the 256 KiB window
        # a cancelled partial send resets the stream, so nothing more is queued for it
        assert mux.core.queued_data_size <= 256 * KIB + 17 * 12
        assert mux.core.outbound_window(1) == 0
        await raw.recv_until(lambda fs: any(f.flags & RST and f.stream_id == 1 for f in fs))


async def test_data_after_fin_resets_that_stream_only() -> None:
    async with raw_against_plait() as (raw, mux):
        stream = await open_bystander(raw, mux)
        await raw.send(frame(WINDOW_UPDATE, SYN, 3, 0) + frame(DATA, FIN, 3, body=b"end"))
        victim = await mux.accept_stream()
        assert await victim.receive() == b"end"
        await raw.send(frame(DATA, 0, 3, body=b"after fin"))
        await raw.recv_until(lambda fs: any(f.stream_id == 3 and f.flags & RST for f in fs))
        with pytest.raises(StreamResetError):  # broken by the peer's misbehaviour
            await victim.send(b"x")
        await bystander_still_works(raw, stream)


async def test_unknown_stream_frames_ignored() -> None:
    async with raw_against_plait() as (raw, mux):
        stream = await open_bystander(raw, mux)
        await raw.send(frame(DATA, 0, 77, body=b"who?") + frame(WINDOW_UPDATE, 0, 77, 100)
                       + frame(WINDOW_UPDATE, FIN, 79, 0))
        await bystander_still_works(raw, stream)
        assert not any(f.stream_id in (77, 79) for f in raw.frames)


async def test_unknown_stream_flood_is_budgeted_then_goaway_1() -> None:
    """Y10: frames for a never-opened id are ignored within the budget, counted, and a
    flood beyond it ends the connection with GO_AWAY(1); nothing of them is held."""
    config = YamuxConfig(keepalive_interval=None, auto_tune=False,
                         unknown_frame_burst=2000, unknown_frame_rate=0.0)
    async with raw_against_plait(config) as (raw, mux):
        stream = await open_bystander(raw, mux)
        stray = frame(DATA, 0, 9999, body=b"z" * 1000)
        await raw.send(stray * 1000 + frame(WINDOW_UPDATE, 0, 9999, 1000) * 900)
        await bystander_still_works(raw, stream)  # 1900 frames: within the budget
        assert mux.core.buffered_input_size == 0
        assert not any(f.stream_id == 9999 for f in raw.frames)
        await raw.send(stray * 101)
        await expect_goaway(raw, mux, 1, UnknownStreamFloodError)


async def test_fin_then_rst_in_one_read_costs_only_that_stream() -> None:
    """Y20: FIN and RST of a stream arrive together; the application then closes its end:
    the stream reports the reset, closing it is a no-op, and the connection lives."""
    async with raw_against_plait() as (raw, mux):
        stream = await open_bystander(raw, mux)
        await raw.send(frame(WINDOW_UPDATE, SYN, 3, 0) + frame(DATA, 0, 3, body=b"req"))
        victim = await mux.accept_stream()
        assert await victim.receive() == b"req"
        await raw.send(frame(DATA, FIN, 3, 0) + frame(WINDOW_UPDATE, RST, 3, 0))
        with pytest.raises(StreamResetError):
            await victim.receive()
        with pytest.raises(StreamResetError):
            await victim.send(b"late")
        await victim.send_eof()  # no StreamStateError: the peer's RST ended it already
        await victim.aclose()
        await bystander_still_works(raw, stream)
        assert not mux.is_closed and mux.core.stream_state(3) is None


async def test_peer_reset_reaches_the_application() -> None:
    async with raw_against_plait() as (raw, mux):
        stream = await open_bystander(raw, mux)
        await raw.send(frame(WINDOW_UPDATE, SYN, 3, 0))
        victim = await mux.accept_stream()
        await raw.send(frame(WINDOW_UPDATE, RST, 3, 0))
        with pytest.raises(StreamResetError):
            await victim.receive()
        await bystander_still_works(raw, stream)


async def test_goaway_from_peer_fails_streams_and_closes() -> None:
    async with raw_against_plait() as (raw, mux):
        stream = await open_bystander(raw, mux)
        await raw.send(frame(GO_AWAY, 0, 0, 2))
        with pytest.raises(anyio.BrokenResourceError):
            await stream.receive()
        assert await raw.wait_eof()
        assert raw.go_away_codes() == []  # a GO_AWAY is never answered with another


async def test_ping_answered_with_exactly_ack() -> None:
    async with raw_against_plait() as (raw, _mux):
        await raw.send(frame(PING, SYN, 0, 0xDEADBEEF))
        await raw.recv_until(lambda fs: len(raw.of(PING)) >= 1)
        pong = raw.of(PING)[0]
        assert (pong.flags, pong.stream_id, pong.length) == (ACK, 0, 0xDEADBEEF)

"""Fuzz target ``yamux``: the sans-IO Yamux core (hardening.md §4, target 2; yamux.md).

The input is fed to a listener-side core (small limits, so caps and budgets are reached)
in chunks of byte 1's size; byte 0 picks how the application behaves: accept inbound
streams or not, read and acknowledge what arrives, answer with data, reset or half-close.
The core's queued output is drained as a writer would, reading resumes after a pong pause,
and the clock advances so timers and token buckets run. Only
:class:`~plait.muxer.MuxerError` subclasses (PlaitErrors) may escape, and the documented
bounds are asserted after every step.
"""

from __future__ import annotations

import struct

from _common import Cursor, split, test_one_input
from plait.muxer import YamuxConfig
from plait.muxer.connection import YamuxConnection
from plait.muxer.events import StreamDataReceived, StreamOpened, StreamReset

__all__ = ("SEEDS", "TestOneInput", "run_one")

_CONFIG = YamuxConfig(
    max_streams=8, accept_backlog=4, keepalive_interval=5.0, auto_tune=True,
    rst_burst=16, rst_rate=1.0,
)
_HEADER = struct.Struct(">BBHII")


def _frame(ftype: int, flags: int, sid: int, length: int, body: bytes = b"") -> bytes:
    return _HEADER.pack(0, ftype, flags, sid, length) + body


def run_one(data: bytes) -> None:
    cur = Cursor(data)
    behaviour = cur.byte()
    step = cur.byte()
    core = YamuxConnection(is_client=bool(behaviour & 0x40), config=_CONFIG)
    now = 0.0
    core.start(now)
    accept = bool(behaviour & 1)
    for chunk in [*split(cur.rest(), step), b""]:
        now += 0.25
        events = core.receive_data(chunk, now=now)
        # data of a stream reset later in the same batch was discarded with the stream (an
        # adapter acknowledges only what its application read)
        gone = {e.stream_id for e in events if isinstance(e, StreamReset)}
        for event in events:
            if isinstance(event, StreamOpened) and accept:
                core.accept_stream(event.stream_id)
                if behaviour & 2:
                    core.send_data(event.stream_id, b"hello")
                if behaviour & 4:
                    core.end_stream(event.stream_id)
                if behaviour & 8:
                    core.reset_stream(event.stream_id)
            elif isinstance(event, StreamDataReceived) and behaviour & 16 and (
                event.stream_id not in gone
            ):
                state = core.stream_state(event.stream_id)
                if state is not None:
                    core.acknowledge_received_data(event.stream_id, len(event.data))
        core.data_to_send(65536)
        while core.is_reading_paused:
            core.data_to_send()
            core.resume_reading()
        if behaviour & 32:
            core.handle_timer(now + 60.0)
        assert core.stream_count <= _CONFIG.max_streams
        assert core.buffered_input_size <= 2 * _CONFIG.receive_size + 65536 + 12
        if core.is_closed:
            break
    core.data_to_send()


def TestOneInput(data: bytes) -> None:
    test_one_input(run_one, data)


WU, DATA, PING, GO_AWAY = 1, 0, 2, 3
SEEDS: list[bytes] = [
    b"\x13\x00" + _frame(WU, 1, 1, 0) + _frame(DATA, 0, 1, 5, b"hello") + _frame(DATA, 4, 1, 0),
    b"\x1f\x05" + _frame(DATA, 1, 3, 3, b"abc") + _frame(WU, 0, 3, 1000) + _frame(DATA, 8, 3, 0),
    b"\x00\x00" + _frame(PING, 1, 0, 7) * 40,
    b"\x01\x00" + b"".join(_frame(WU, 1, 1 + 2 * i, 0) for i in range(12)),
    b"\x01\x00" + _frame(WU, 1, 1, 0) + _frame(DATA, 0, 1, 0xFFFFFFFF),
    b"\x21\x0c" + _frame(GO_AWAY, 0, 0, 0),
    b"\x41\x00" + _frame(WU, 1, 2, 0) + _frame(WU, 0, 2, 0xFFFFFFFF),
]

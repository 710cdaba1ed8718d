"""Adversarial catalogue, protocol negotiation (hardening.md §3.5), crafted Yamux streams
inside a real Noise channel (YMX) against a listening Node.

Case → test (P1, P2, P4 and P5 at small scale also run in test_transport_node.py):

- P1 undefined flags byte → test_transport_node.py::test_undefined_negotiation_flags_ban_and_disconnect;
  from the responder's side of a stream the node opened →
  ``test_invalid_flags_in_a_reply_to_the_nodes_proposal_ban_the_responder``
- P2 255-byte unsupported name; name above the cap →
  test_transport_node.py::test_unban_worthy_negotiation_garbage_only_costs_the_stream,
  test_transport_node.py::test_protocol_id_above_the_configured_cap_bans
- P3 length prefix beyond the cap: not applicable as such — the length is one byte, so no
  frame can announce more than 255 bytes; a 255-byte header followed by 256 bytes is
  tests/unit/negotiation::test_256_bytes_after_a_255_length_header_leave_one_byte_for_the_next_frame,
  and ``test_header_with_a_long_id_is_refused_before_the_id_arrives`` checks the node refuses an
  over-cap header without waiting for its body
- P4 six unsupported proposals → test_transport_node.py::test_unban_worthy_negotiation_garbage_only_costs_the_stream
- P5 stalled negotiations, 300 at once, cap 128 → ``test_300_stalled_negotiations``
  (and test_transport_node.py::test_stalled_negotiations_beyond_the_cap_are_reset_at_once)
- P6 non-UTF-8, NUL and control bytes in the name → ``test_binary_protocol_names_are_just_unsupported``
- P7 optimistic open of an unsupported protocol, with data → ``test_optimistic_unsupported_with_data_invokes_no_handler``
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest
from plait.negotiation import InvalidFlagError, NegotiationConfig, ProtocolIdTooLongError
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
    negotiation_frame,
    next_event,
    traced_peak,
    ymx_negotiate,
)
from support.yamux_raw import ACK, DATA, SYN, WINDOW_UPDATE, frame

if TYPE_CHECKING:
    from anyio.abc import ByteStream

pytestmark = [pytest.mark.anyio, pytest.mark.network]

NOT_SUPPORTED = negotiation_frame(b"", 0x04)


async def _connect(port: int, events: object) -> tuple[NoiseYamux, PeerConnection]:
    ymx = await NoiseYamux.connect_to(port)
    connected = await next_event(events, PeerConnected)  # type: ignore[arg-type]
    return ymx, connected.connection


async def test_300_stalled_negotiations() -> None:
    """P5: 300 streams each send half a frame header and stall. The first 128 wait for the
    negotiation deadline, the other 172 are reset at once; memory stays small, a bystander
    on another connection and a fresh stream on the same one keep working."""
    config = NodeConfig(negotiation=NegotiationConfig(timeout=1.5))
    async with listening_node(config) as (node, port), bystander(node, port) as honest:
        events = node.events()
        ymx, connection = await _connect(port, events)
        ids = [1 + 2 * i for i in range(300)]
        with traced_peak() as peak:
            started = anyio.current_time()
            await ymx.send(b"".join(
                frame(WINDOW_UPDATE, SYN, sid, 0) + frame(DATA, 0, sid, body=b"\x05")
                for sid in ids))
            await ymx.recv_until(lambda _fs: sum(ymx.was_reset(s) for s in ids) >= 172)
            assert anyio.current_time() - started < 1.5  # before any negotiation deadline
            assert sum(ymx.was_reset(s) for s in ids) == 172
            assert node.statistics().negotiating == 128
            await honest.check()
            await ymx.recv_until(lambda _fs: all(ymx.was_reset(s) for s in ids), timeout=10)
            assert all(ymx.was_reset(s) for s in ids)
            assert peak() < 8 * 1024 * 1024
        assert node.statistics().negotiating == 0
        await ymx_negotiate(ymx, 1001, ECHO_PROTOCOL_ID)  # the connection still works
        await ymx.send(frame(DATA, 0, 1001, body=b"still here"))
        assert (await ymx.wait_data(1001, 2 + len(ECHO_PROTOCOL_ID) + 10)).endswith(b"still here")
        assert connection.is_connected and not node.is_banned(ymx.attacker.key.public)
        await ymx.aclose()
        await connection.wait_closed()


@pytest.mark.parametrize("name", [
    b"\x00", b"\x00\x00/plait/echo/1", b"\xff\xfe\xfd", b"\x1b[31mred\x1b[0m", b"/plait/echo/1\n",
    b"\xc3\x28", bytes(range(1, 32)),
])
async def test_binary_protocol_names_are_just_unsupported(
    name: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """P6: names are bytes; any content is NOT_SUPPORTED, nothing crashes, no log line carries
    the raw control bytes."""
    caplog.set_level("DEBUG")
    async with listening_node() as (node, port):
        events = node.events()
        ymx, connection = await _connect(port, events)
        await ymx.send(frame(WINDOW_UPDATE, SYN, 1, 0) + frame(DATA, 0, 1, body=negotiation_frame(name)))
        assert await ymx.wait_data(1, 2) == NOT_SUPPORTED
        await ymx_negotiate(ymx, 3, ECHO_PROTOCOL_ID)
        assert connection.is_connected and not node.is_banned(ymx.attacker.key.public)
        await ymx.aclose()
        await connection.wait_closed()
        assert_idle(node)
    for record in caplog.records:
        text = record.getMessage()
        assert "\x1b" not in text and "\x00" not in text, text


async def test_optimistic_unsupported_with_data_invokes_no_handler() -> None:
    """P7: an optimistic proposal of an unsupported protocol followed by data: the stream is
    reset, the data dropped, no handler runs, no ban."""
    calls: list[bytes] = []

    async def handler(conn: PeerConnection, stream: ByteStream) -> None:
        calls.append(await stream.receive())

    async with listening_node() as (node, port):
        node.add_protocol(b"/counted/1", handler)
        events = node.events()
        ymx, connection = await _connect(port, events)
        await ymx.send(frame(WINDOW_UPDATE, SYN, 1, 0) + frame(
            DATA, 0, 1, body=negotiation_frame(b"/nope/1", 0x03) + b"payload" * 100))
        assert await ymx.wait_reset(1)
        assert ymx.data_of(1) == b""  # no reply to an optimistic proposal
        assert calls == [] and node.statistics().handlers == 0
        # the same attack with a supported protocol does reach its handler
        await ymx.send(frame(WINDOW_UPDATE, SYN, 3, 0) + frame(
            DATA, 0, 3, body=negotiation_frame(b"/counted/1", 0x03) + b"payload"))
        with anyio.fail_after(5):
            while not calls:
                await anyio.sleep(0.01)
        assert calls == [b"payload"]
        assert not node.is_banned(ymx.attacker.key.public)
        await ymx.aclose()
        await connection.wait_closed()


async def test_header_with_a_long_id_is_refused_before_the_id_arrives() -> None:
    """P3: with a 50-byte cap, a header announcing 200 bytes bans at once; the node does not
    wait for (or buffer) the announced id."""
    config = NodeConfig(negotiation=NegotiationConfig(max_protocol_id_length=50, timeout=30))
    async with listening_node(config) as (node, port):
        events = node.events()
        ymx, connection = await _connect(port, events)
        await ymx.send(frame(WINDOW_UPDATE, SYN, 1, 0) + frame(DATA, 0, 1, body=b"\xc8\x00"))
        gone = await next_event(events, PeerDisconnected)
        assert gone.connection is connection and gone.reason is DisconnectReason.BANNED
        assert isinstance(gone.error, ProtocolIdTooLongError)
        assert node.is_banned(ymx.attacker.key.public)
        await ymx.aclose()
        await connection.wait_closed()
        assert_idle(node)


async def test_invalid_flags_in_a_reply_to_the_nodes_proposal_ban_the_responder() -> None:
    """P1 the other way round: the node opens a substream to the attacker, which answers
    the proposal with undefined flag bits. ``open_substream`` raises ``InvalidFlagError``
    and the attacker is banned (a tari ban offence on either side)."""
    async with listening_node() as (node, port):
        events = node.events()
        ymx, connection = await _connect(port, events)

        async def answer() -> None:
            await ymx.recv_until(lambda fs: any(f.stream_id == 2 and f.body for f in fs))
            await ymx.send(frame(WINDOW_UPDATE, ACK, 2, 0) + frame(DATA, 0, 2, body=b"\x03\xf0abc"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(answer)
            with anyio.fail_after(5), pytest.raises(InvalidFlagError):
                await connection.open_substream(b"/something/1", optimistic=False)
        gone = await next_event(events, PeerDisconnected)
        assert gone.reason is DisconnectReason.BANNED
        assert node.is_banned(ymx.attacker.key.public)
        await ymx.aclose()
        await connection.wait_closed()
        assert_idle(node)

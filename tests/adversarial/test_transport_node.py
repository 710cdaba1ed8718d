"""Adversarial catalogue against a listening Node: transport, handshake, identity and
per-substream negotiation (hardening.md §3.2 T1-T11, §3.5 P1-P7).

Every attack runs against a real :class:`~plait.node.Node` on 127.0.0.1. Each test asserts
the typed error the node reports (``ConnectionFailed`` or ``PeerDisconnected`` events), the
ban it applies, and that its counters return to zero: nothing upgrading, no connection, no
task beyond the accept loop.

Case → test (Noise-level T3-T7 and the dialer's side of T11 are in test_noise.py, T12 in
tests/integration/test_node.py::test_simultaneous_dial_keeps_one_connection_on_both_sides,
P3/P5 at scale/P6/P7 in test_negotiation.py):

- T1 idle sockets beyond the cap → ``test_idle_sockets_beyond_the_cap_time_out_and_an_honest_dial_succeeds``
- T2 dripping handshake → ``test_dripping_handshake_hits_the_overall_deadline``
- T3 garbage → ``test_garbage_instead_of_noise`` (wrong network byte: ``test_wrong_network_byte_is_dropped_without_a_reply``)
- T4 length prefix then stall, absurd length → ``test_length_prefix_then_stall_times_out_and_an_absurd_length_is_refused``
- T8 wrong key when dialling → ``test_wrong_expected_key_fails_the_dial``
- T9 identity limits → ``test_bad_identity_bans_the_key_and_the_key_is_refused_afterwards``
  (oversize, > 20 protocols, > 5 addresses, protocol id > 50 B, user agent > 50 B,
  undecodable), ``test_undecodable_address_is_refused_without_a_ban``,
  ``test_bogus_identity_signature_is_ignored_in_the_default_suite`` (bad signature)
- T10 banned peer reconnects → the second half of the T9 test,
  ``test_banned_peer_redials_before_and_after_expiry``
- T11 drop during the upgrade, FIN and RST at each step → ``test_drop_during_the_upgrade``
- P1 → ``test_undefined_negotiation_flags_ban_and_disconnect``
- P2 → ``test_protocol_id_above_the_configured_cap_bans`` and the 255-byte name in
  ``test_unban_worthy_negotiation_garbage_only_costs_the_stream``
- P4, P7 → ``test_unban_worthy_negotiation_garbage_only_costs_the_stream``
- P5 → ``test_stalled_negotiations_beyond_the_cap_are_reset_at_once``
"""

from __future__ import annotations

import os
import socket
import struct
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

import anyio
import pytest
from anyio.abc import SocketAttribute
from plait.identity import NodeIdentity
from plait.muxer import MuxedConnection, StreamResetError
from plait.negotiation import (
    EmptyProtocolIdError,
    InvalidFlagError,
    NegotiationConfig,
    ProtocolIdTooLongError,
)
from plait.node import (
    ECHO_PROTOCOL_ID,
    ConnectionFailed,
    DisconnectReason,
    Node,
    NodeConfig,
    NodeEvents,
    PeerConnected,
    PeerConnection,
    PeerDisconnected,
    echo_handler,
)
from plait.noise import (
    HandshakeTimeoutError,
    NoiseConfig,
    NoiseProtocolViolation,
    NoiseStream,
    StaticKeypair,
)
from plait.transport import (
    DEFAULT_NETWORK_BYTE,
    IdentityDecodeError,
    IdentityMessageTooLargeError,
    IdentityTruncatedError,
    InvalidPeerDataError,
    Multiaddr,
    PeerBannedError,
    PeerIdentity,
    PeerValidationError,
    UpgradeTimeoutError,
    WrongNetworkError,
    encode_identity_frame,
)
from plait.transport.proto import identity_pb2
from plait.transport.upgrade import UpgradeClosedError, Upgrader

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import ByteStream, SocketStream

pytestmark = pytest.mark.anyio

E = TypeVar("E")
SLOW = b"/test/slow/1"


async def next_event(events: NodeEvents, kind: type[E], timeout: float = 5.0) -> E:
    with anyio.fail_after(timeout):
        async for event in events:
            if isinstance(event, kind):
                return event
    raise AssertionError("the event stream ended")


def assert_idle(node: Node) -> None:
    stats = node.statistics()
    assert (stats.upgrading, stats.connections, stats.closing) == (0, 0, 0)
    assert (stats.negotiating, stats.handlers) == (0, 0)
    assert stats.tasks == stats.listeners == 1  # only the accept loop is left


@asynccontextmanager
async def listening_node(config: NodeConfig | None = None) -> AsyncIterator[tuple[Node, int]]:
    async with Node(NodeIdentity.generate(), config) as node:
        node.add_protocol(ECHO_PROTOCOL_ID, echo_handler)
        address = await node.listen("tcp://127.0.0.1:0")
        yield node, int(address.rsplit(":", 1)[1])


async def raw_connect(port: int) -> SocketStream:
    return await anyio.connect_tcp("127.0.0.1", port)


def reset_on_close(stream: SocketStream) -> None:
    """Make ``aclose`` send a TCP RST (SO_LINGER 0)."""
    sock = stream.extra(SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def noise_connect(port: int, key: StaticKeypair) -> NoiseStream:
    tcp = await raw_connect(port)
    await tcp.send(bytes([DEFAULT_NETWORK_BYTE]))
    return await NoiseStream.wrap(tcp, NoiseConfig(static_key=key), initiator=True)


async def read_frame(stream: ByteStream) -> bytes:
    header = b""
    while len(header) < 3:
        header += await stream.receive(3 - len(header))
    _, length = struct.unpack("<BH", header)
    body = b""
    while len(body) < length:
        body += await stream.receive(length - len(body))
    return body


@asynccontextmanager
async def muxed_attacker(port: int, key: StaticKeypair) -> AsyncIterator[MuxedConnection]:
    """An honest stack up to Yamux, so the test can write raw negotiation bytes."""
    upgraded = await Upgrader(key, PeerIdentity()).upgrade_outbound(await raw_connect(port))
    async with upgraded.muxer() as mux:
        yield mux


def open_fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except FileNotFoundError:  # not Linux
        return None


# ---------------------------------------------------------------------------- T1-T4


async def test_idle_sockets_beyond_the_cap_time_out_and_an_honest_dial_succeeds() -> None:
    config = NodeConfig(max_upgrading=4, first_byte_timeout=0.3)
    fds_before = open_fds()
    async with listening_node(config) as (node, port):
        events = node.events()
        idle = [await raw_connect(port) for _ in range(8)]  # cap + 4: slowloris
        async with Node(NodeIdentity.generate()) as honest:
            with anyio.fail_after(5):
                conn = await honest.dial(f"tcp://127.0.0.1:{port}", node.peer_id)
            assert conn.is_connected
            await conn.disconnect()
        for _ in range(8):
            failed = await next_event(events, ConnectionFailed)
            assert isinstance(failed.error, UpgradeTimeoutError)
        for stream in idle:  # the node closed every idle socket without a byte
            with anyio.fail_after(5), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await stream.receive()
            await stream.aclose()
        await next_event(events, PeerDisconnected)
        for conn in list(node._live):
            await conn.wait_closed()
        assert_idle(node)
    if fds_before is not None:
        assert open_fds() == fds_before


async def test_wrong_network_byte_is_dropped_without_a_reply() -> None:
    async with listening_node() as (node, port):
        events = node.events()
        stream = await raw_connect(port)
        await stream.send(b"\x00")
        failed = await next_event(events, ConnectionFailed)
        assert isinstance(failed.error, WrongNetworkError) and failed.error.received == 0
        assert failed.address.startswith("tcp://127.0.0.1:")
        with anyio.fail_after(5), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            await stream.receive()
        await stream.aclose()
        assert_idle(node)
        assert node.statistics().bans == 0  # nothing is authenticated: no ban


async def test_dripping_handshake_hits_the_overall_deadline() -> None:
    config = NodeConfig(first_byte_timeout=5, noise_handshake_timeout=5, upgrade_timeout=0.5)
    async with listening_node(config) as (node, port):
        events = node.events()
        stream = await raw_connect(port)
        await stream.send(bytes([DEFAULT_NETWORK_BYTE]))
        started = anyio.current_time()
        async with anyio.create_task_group() as tg:

            async def drip() -> None:
                for byte in b"\x00\x20" + bytes(32):
                    await stream.send(bytes([byte]))
                    await anyio.sleep(0.05)  # the attack: bytes just in time for each read

            tg.start_soon(drip)
            failed = await next_event(events, ConnectionFailed)
            tg.cancel_scope.cancel()
        assert isinstance(failed.error, UpgradeTimeoutError)
        assert anyio.current_time() - started < 2
        await stream.aclose()
        assert_idle(node)


async def test_garbage_instead_of_noise() -> None:
    async with listening_node() as (node, port):
        events = node.events()
        stream = await raw_connect(port)
        await stream.send(bytes([DEFAULT_NETWORK_BYTE]) + b"\x00\x05" + b"\x99" * 5)
        failed = await next_event(events, ConnectionFailed)
        assert isinstance(failed.error, NoiseProtocolViolation)
        await stream.aclose()
        assert_idle(node)


async def test_length_prefix_then_stall_times_out_and_an_absurd_length_is_refused() -> None:
    config = NodeConfig(noise_handshake_timeout=0.3)
    async with listening_node(config) as (node, port):
        events = node.events()
        streams = [await raw_connect(port) for _ in range(5)]
        for stream in streams:  # message 1 announced at its real size, then a stall
            await stream.send(bytes([DEFAULT_NETWORK_BYTE]) + b"\x00\x20" + b"x" * 10)
        for _ in streams:
            failed = await next_event(events, ConnectionFailed)
            assert isinstance(failed.error, HandshakeTimeoutError)
        absurd = await raw_connect(port)  # 65535 bytes cannot be message 1 of XX
        await absurd.send(bytes([DEFAULT_NETWORK_BYTE]) + b"\xff\xff" + b"x" * 10)
        failed = await next_event(events, ConnectionFailed, timeout=0.25)
        assert isinstance(failed.error, NoiseProtocolViolation)
        for stream in [*streams, absurd]:
            await stream.aclose()
        assert_idle(node)


# ---------------------------------------------------------------------------- T8-T11


async def test_wrong_expected_key_fails_the_dial() -> None:
    async with listening_node() as (node, port), Node(NodeIdentity.generate()) as dialer:
        events = node.events()
        from plait.transport import PeerKeyMismatchError

        with anyio.fail_after(5), pytest.raises(PeerKeyMismatchError):
            await dialer.dial(f"tcp://127.0.0.1:{port}", NodeIdentity.generate().peer_id)
        failed = await next_event(events, ConnectionFailed)
        assert isinstance(failed.error, IdentityTruncatedError | UpgradeClosedError)
        assert dialer.statistics().upgrading == 0 and dialer.connections == ()
        assert_idle(node)


def _frame(body: bytes, *, length: int | None = None) -> bytes:
    return struct.pack("<BH", 0, len(body) if length is None else length) + body


IDENTITY_ATTACKS = {
    "oversize": (_frame(b"", length=1025), IdentityMessageTooLargeError),
    "too_many_protocols": (
        _frame(identity_pb2.PeerIdentityMsg(
            supported_protocols=[b"/p/%d" % i for i in range(21)]).SerializeToString()),
        PeerValidationError,
    ),
    "too_many_addresses": (
        _frame(identity_pb2.PeerIdentityMsg(
            addresses=[Multiaddr.from_string("/ip4/10.0.0.1/tcp/1").to_bytes()] * 6
        ).SerializeToString()),
        PeerValidationError,
    ),
    "protocol_id_over_50_bytes": (
        _frame(identity_pb2.PeerIdentityMsg(
            supported_protocols=[b"/p/" + b"x" * 48]).SerializeToString()),
        PeerValidationError,
    ),
    "user_agent_over_50_bytes": (
        _frame(identity_pb2.PeerIdentityMsg(user_agent="u" * 51).SerializeToString()),
        PeerValidationError,
    ),
    "undecodable": (_frame(b"\x0a\xff\xff\xff\xff\x0f"), IdentityDecodeError),
}


@pytest.mark.parametrize("case", sorted(IDENTITY_ATTACKS))
async def test_bad_identity_bans_the_key_and_the_key_is_refused_afterwards(case: str) -> None:
    frame, error_type = IDENTITY_ATTACKS[case]
    key = StaticKeypair.generate()
    async with listening_node() as (node, port):
        events = node.events()
        secure = await noise_connect(port, key)
        await read_frame(secure)
        await secure.send(frame)
        failed = await next_event(events, ConnectionFailed)
        assert isinstance(failed.error, error_type)
        assert node.is_banned(key.public.hex())
        await secure.aclose()
        # T10: the banned key comes back; refused right after Noise, no identity sent
        again = await noise_connect(port, key)
        with anyio.fail_after(5), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError,
                                                 NoiseProtocolViolation)):
            await again.receive()
        refused = await next_event(events, ConnectionFailed)
        assert isinstance(refused.error, PeerBannedError)
        await again.aclose()
        assert_idle(node)


async def test_undecodable_address_is_refused_without_a_ban() -> None:
    """Undecodable multiaddr bytes: tari refuses the peer without a ban (wire.md §1.4.5)."""
    key = StaticKeypair.generate()
    async with listening_node() as (node, port):
        events = node.events()
        secure = await noise_connect(port, key)
        await read_frame(secure)
        message = identity_pb2.PeerIdentityMsg(addresses=[b"\xff\xff"])
        await secure.send(_frame(message.SerializeToString()))
        failed = await next_event(events, ConnectionFailed)
        assert isinstance(failed.error, InvalidPeerDataError)
        assert not node.is_banned(key.public)
        await secure.aclose()
        assert_idle(node)


async def test_bogus_identity_signature_is_ignored_in_the_default_suite() -> None:
    """T9 "bad signature": plait's default suite authenticates the key with Noise and does
    not verify tari's identity signature (wire.md §1.4), so garbage there is ignored, not
    banned; the connection is admitted."""
    key = StaticKeypair.generate()
    async with listening_node() as (node, port):
        events = node.events()
        secure = await noise_connect(port, key)
        await read_frame(secure)
        bogus = identity_pb2.PeerIdentityMsg(identity_signature=identity_pb2.IdentitySignature(
            version=9, signature=b"\x01" * 32, public_nonce=b"\x02" * 32, updated_at=-1))
        await secure.send(_frame(bogus.SerializeToString()))
        connected = await next_event(events, PeerConnected)
        assert connected.connection.public_key == key.public
        assert not node.is_banned(key.public)
        await secure.aclose()
        await connected.connection.wait_closed()
        assert_idle(node)


async def test_banned_peer_redials_before_and_after_expiry() -> None:
    async with listening_node() as (node, port), Node(NodeIdentity.generate()) as peer:
        events = node.events()
        address = f"tcp://127.0.0.1:{port}"
        conn = await peer.dial(address, node.peer_id)
        inbound = (await next_event(events, PeerConnected)).connection
        node.ban(peer.peer_id, 0.5)
        gone = await next_event(events, PeerDisconnected)
        assert gone.reason is DisconnectReason.BANNED
        await conn.wait_closed()
        with pytest.raises((IdentityTruncatedError, UpgradeClosedError)):
            await peer.dial(address, node.peer_id)
        assert isinstance((await next_event(events, ConnectionFailed)).error, PeerBannedError)
        peer.unban(node.peer_id)  # the peer banned the node for hanging up on it
        await inbound.wait_closed()
        assert_idle(node)
        await anyio.sleep(0.5)  # the ban's own duration
        assert (await peer.dial(address, node.peer_id)).is_connected


@pytest.mark.parametrize("how", ["fin", "rst"])
@pytest.mark.parametrize("step", ["wire_byte", "noise_msg1", "noise_done", "identity_sent"])
async def test_drop_during_the_upgrade(step: str, how: str) -> None:
    async with listening_node() as (node, port):
        events = node.events()
        tcp = await raw_connect(port)
        if how == "rst":
            reset_on_close(tcp)
        await tcp.send(bytes([DEFAULT_NETWORK_BYTE]))
        closer: ByteStream = tcp
        if step == "noise_msg1":
            await tcp.send(b"\x00\x20" + os.urandom(32))
            await tcp.receive()  # message 2 arrived
        elif step in ("noise_done", "identity_sent"):
            closer = await NoiseStream.wrap(tcp, NoiseConfig(), initiator=True)
            if step == "identity_sent":
                await read_frame(closer)
                await closer.send(encode_identity_frame(PeerIdentity()))
        started = anyio.current_time()
        await closer.aclose()
        if step == "identity_sent":  # the upgrade completed; the connection then ends
            connected = await next_event(events, PeerConnected)
            gone = await next_event(events, PeerDisconnected)
            assert gone.connection is connected.connection
            assert gone.reason in (DisconnectReason.REMOTE, DisconnectReason.ERROR)
            await gone.connection.wait_closed()
        else:
            failed = await next_event(events, ConnectionFailed)
            if step == "noise_done":
                assert isinstance(failed.error, IdentityTruncatedError | UpgradeClosedError)
            else:
                assert isinstance(failed.error, NoiseProtocolViolation)
        assert anyio.current_time() - started < 1
        assert_idle(node)


# ---------------------------------------------------------------------------- P1-P7


async def _expect_reset(stream: ByteStream) -> None:
    with anyio.fail_after(5), pytest.raises(StreamResetError):
        while True:
            await stream.receive()


async def test_undefined_negotiation_flags_ban_and_disconnect() -> None:
    key = StaticKeypair.generate()
    async with listening_node() as (node, port):
        events = node.events()
        async with muxed_attacker(port, key) as mux:
            inbound = (await next_event(events, PeerConnected)).connection
            stream = await mux.open_stream()
            await stream.send(b"\x03\xf0abc")
            gone = await next_event(events, PeerDisconnected)
            assert gone.connection is inbound and gone.reason is DisconnectReason.BANNED
            assert isinstance(gone.error, InvalidFlagError)
            with anyio.fail_after(5), pytest.raises(anyio.BrokenResourceError):
                while True:
                    await stream.receive()
        assert node.is_banned(key.public)
        await inbound.wait_closed()
        assert_idle(node)


async def test_protocol_id_above_the_configured_cap_bans() -> None:
    key = StaticKeypair.generate()
    config = NodeConfig(negotiation=NegotiationConfig(max_protocol_id_length=50))
    async with listening_node(config) as (node, port):
        events = node.events()
        async with muxed_attacker(port, key) as mux:
            inbound = (await next_event(events, PeerConnected)).connection
            stream = await mux.open_stream()
            await stream.send(bytes([51, 0]) + b"p" * 51)
            gone = await next_event(events, PeerDisconnected)
            assert isinstance(gone.error, ProtocolIdTooLongError)
        assert node.is_banned(key.public)
        await inbound.wait_closed()
        assert_idle(node)


async def test_unban_worthy_negotiation_garbage_only_costs_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    key = StaticKeypair.generate()
    async with listening_node() as (node, port):
        events = node.events()
        async with muxed_attacker(port, key) as mux:
            inbound = (await next_event(events, PeerConnected)).connection
            # an empty id in a proposal (length 0): EmptyProtocolIdError, no ban
            empty = await mux.open_stream()
            await empty.send(b"\x00\x00")
            await _expect_reset(empty)
            # a 255-byte unsupported id: NOT_SUPPORTED, no crash
            long = await mux.open_stream()
            await long.send(bytes([255, 0]) + b"\x00\xff" * 127 + b"x")
            assert await long.receive(2) == b"\x00\x04"
            await long.reset()
            # six unsupported proposals: NOT_SUPPORTED four times, then NOT_SUPPORTED|TERMINATE
            # and the stream is dropped (reset), so the sixth is never answered
            six = await mux.open_stream()
            for i in range(4):
                await six.send(bytes([5, 0]) + b"/no/%d" % i)
                assert await six.receive(2) == b"\x00\x04"
            await six.send(bytes([5, 0]) + b"/no/4" + bytes([5, 0]) + b"/no/5")
            with anyio.fail_after(5):
                try:  # the reset may overtake the final reply
                    assert await six.receive(2) == b"\x00\x06"
                except StreamResetError:
                    pass
                else:
                    await _expect_reset(six)
            # an optimistic open of an unsupported protocol followed by data: reset
            optimistic = await mux.open_stream()
            await optimistic.send(bytes([7, 3]) + b"/nope/1" + b"payload")
            await _expect_reset(optimistic)
            # the connection is intact and unbanned
            echo = await mux.open_stream()
            await echo.send(bytes([len(ECHO_PROTOCOL_ID), 0]) + ECHO_PROTOCOL_ID)
            assert await echo.receive(2 + len(ECHO_PROTOCOL_ID)) == (
                bytes([len(ECHO_PROTOCOL_ID), 0]) + ECHO_PROTOCOL_ID
            )
            await echo.send(b"alive")
            assert await echo.receive() == b"alive"
            assert inbound.is_connected and not node.is_banned(key.public)
            assert inbound.statistics().inbound_substreams == 1
        await inbound.wait_closed()
        assert_idle(node)
    assert EmptyProtocolIdError.ban.duration is None


async def test_stalled_negotiations_beyond_the_cap_are_reset_at_once() -> None:
    config = NodeConfig(max_negotiating_streams=3, negotiation=NegotiationConfig(timeout=0.5))
    async with listening_node(config) as (node, port):
        events = node.events()
        async with muxed_attacker(port, StaticKeypair.generate()) as mux:
            inbound = (await next_event(events, PeerConnected)).connection
            streams = [await mux.open_stream() for _ in range(5)]
            started = anyio.current_time()
            for stream in streams:
                await stream.send(b"\x05")  # half a frame header, then silence
            await _expect_reset(streams[3])
            await _expect_reset(streams[4])
            assert anyio.current_time() - started < 0.4  # not the negotiation deadline
            assert node.statistics().negotiating == 3
            for stream in streams[:3]:
                await _expect_reset(stream)  # the 0.5 s negotiation deadline
            assert node.statistics().negotiating == 0
            assert inbound.is_connected
        await inbound.wait_closed()
        assert_idle(node)


async def test_local_protocol_id_over_255_bytes_is_refused_before_sending() -> None:
    async with listening_node() as (node, port), Node(NodeIdentity.generate()) as peer:
        conn: PeerConnection = await peer.dial(f"tcp://127.0.0.1:{port}", node.peer_id)
        with pytest.raises(ValueError, match=r"1\.\.255"):
            await conn.open_substream(b"p" * 256)
        assert conn.muxer.core.stream_count == 0

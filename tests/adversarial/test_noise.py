"""Adversarial catalogue, Noise: handshake attacks and the transport after it (hardening.md
§3.2 T3-T7, T11 on the dialer side, §3.3 N1-N5, N7), against a listening Node over TCP.

Case → test:

- T3 random garbage instead of message 1 → ``test_random_garbage_instead_of_message_1``
- T4 stalled handshakes keep memory bounded → ``test_stalled_handshakes_hold_little_memory``
- T5 handshake messages of the wrong length → ``test_wrong_length_handshake_messages``
- T6 all-zero (low-order) ephemeral key → ``test_all_zero_ephemeral_key``
- T7 bit flip in the encrypted static key (message 3) → ``test_bit_flip_in_message_3``
- T11 (dialer side) the listener drops mid-handshake, by FIN or RST →
  ``test_dialer_sees_a_typed_error_when_the_listener_drops``
- N1 transport message shorter than a tag → ``test_transport_message_shorter_than_a_tag``
- N2 bad MAC, the bystander on another connection unaffected → ``test_bad_mac_kills_only_that_connection``
- N3 replayed transport message → ``test_replayed_transport_message``
- N4 truncated message then EOF → ``test_truncated_message_then_eof``
- N5 maximal messages and the 65519-byte boundary → ``test_maximal_messages_echo_byte_exact``
- N7 writing after the peer closed TCP → ``test_write_after_the_peer_closed``

Unit-level counterparts (sans-IO): tests/unit/noise (N6 nonce exhaustion, the nonce not
advancing on a failed decrypt, low-order keys in every message).
"""

from __future__ import annotations

import os

import anyio
import pytest
from plait.node import (
    ConnectionFailed,
    DisconnectReason,
    NodeConfig,
    PeerConnected,
    PeerDisconnected,
)
from plait.noise import (
    HandshakeTimeoutError,
    NoiseConfig,
    NoiseConnection,
    NoiseProtocolViolation,
    NoiseStream,
    StaticKeypair,
)
from plait.noise.config import MAX_PLAINTEXT_SIZE
from plait.transport import DEFAULT_NETWORK_BYTE, IdentityDecodeError
from plait.transport.upgrade import UpgradeClosedError
from support.adversary import (
    NoiseAttacker,
    assert_idle,
    bystander,
    listening_node,
    next_event,
    raw_connect,
    reset,
    traced_peak,
)
from support.net import tcp_pair
from support.yamux_raw import PING, SYN, WINDOW_UPDATE, frame

pytestmark = [pytest.mark.anyio, pytest.mark.network]

WIRE_BYTE = bytes([DEFAULT_NETWORK_BYTE])


def _initiator() -> NoiseConnection:
    conn = NoiseConnection(initiator=True, config=NoiseConfig())
    conn.initiate()
    return conn


async def _expect_failed(events: object, error: type[BaseException]) -> ConnectionFailed:
    failed = await next_event(events, ConnectionFailed)  # type: ignore[arg-type]
    assert isinstance(failed.error, error), repr(failed.error)
    return failed


async def _read_message(stream: anyio.abc.ByteStream, size: int) -> bytes:
    data = b""
    with anyio.fail_after(5):
        while len(data) < size:
            data += await stream.receive(size - len(data))
    return data


# ---------------------------------------------------------------------------- T3-T7


async def test_random_garbage_instead_of_message_1() -> None:
    async with listening_node() as (node, port):
        events = node.events()
        for _ in range(3):  # random length prefixes: almost never 32; never a traceback
            tcp = await raw_connect(port)
            await tcp.send(WIRE_BYTE + os.urandom(64))
            await _expect_failed(events, NoiseProtocolViolation)
            await tcp.aclose()
        assert node.statistics().bans == 0  # not authenticated: nothing to ban
        assert_idle(node)


async def test_stalled_handshakes_hold_little_memory() -> None:
    """T4: 100 connections announce message 1 and stall after 10 bytes; each costs the node
    a few KiB at most (nothing is allocated from the announced length), then all time out."""
    config = NodeConfig(noise_handshake_timeout=1.0, max_upgrading=100)
    async with listening_node(config) as (node, port):
        events = node.events()
        with traced_peak() as peak:
            streams = [await raw_connect(port) for _ in range(100)]
            for stream in streams:
                await stream.send(WIRE_BYTE + b"\x00\x20" + b"x" * 10)
            for _ in streams:
                await _expect_failed(events, HandshakeTimeoutError)
            assert peak() < 100 * 64 * 1024  # well under 64 KiB per pending connection
        for stream in streams:
            await stream.aclose()
        assert_idle(node)


@pytest.mark.parametrize("message", ["msg1_short", "msg1_long", "msg3_short", "msg3_missing_tag"])
async def test_wrong_length_handshake_messages(message: str) -> None:
    async with listening_node() as (node, port):
        events = node.events()
        tcp = await raw_connect(port)
        initiator = _initiator()
        msg1 = initiator.data_to_send()
        if message == "msg1_short":
            await tcp.send(WIRE_BYTE + b"\x00\x1f" + msg1[2:33])
        elif message == "msg1_long":
            await tcp.send(WIRE_BYTE + b"\x00\x21" + msg1[2:] + b"\x00")
        else:
            await tcp.send(WIRE_BYTE + msg1)
            initiator.receive_data(await _read_message(tcp, 2 + 96))
            msg3 = initiator.data_to_send()[2:]
            cut = msg3[:48] if message == "msg3_short" else msg3[:-16]
            await tcp.send(len(cut).to_bytes(2, "big") + cut)
        await _expect_failed(events, NoiseProtocolViolation)
        await tcp.aclose()
        assert node.statistics().bans == 0
        assert_idle(node)


async def test_all_zero_ephemeral_key() -> None:
    async with listening_node() as (node, port):
        events = node.events()
        tcp = await raw_connect(port)
        await tcp.send(WIRE_BYTE + b"\x00\x20" + bytes(32))
        await _expect_failed(events, NoiseProtocolViolation)
        with anyio.fail_after(5), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            await tcp.receive()  # no message 2 was sent
        await tcp.aclose()
        assert_idle(node)


@pytest.mark.parametrize("where", ["static_key", "payload_tag"])
async def test_bit_flip_in_message_3(where: str) -> None:
    key = StaticKeypair.generate()
    async with listening_node() as (node, port):
        events = node.events()
        tcp = await raw_connect(port)
        initiator = NoiseConnection(initiator=True, config=NoiseConfig(static_key=key))
        initiator.initiate()
        await tcp.send(WIRE_BYTE + initiator.data_to_send())
        initiator.receive_data(await _read_message(tcp, 2 + 96))
        msg3 = bytearray(initiator.data_to_send())
        msg3[2 + (5 if where == "static_key" else 60)] ^= 0x01
        await tcp.send(bytes(msg3))
        await _expect_failed(events, NoiseProtocolViolation)
        await tcp.aclose()
        assert not node.is_banned(key.public)  # B0: the key was never authenticated
        assert node.statistics().bans == 0
        assert_idle(node)


# ---------------------------------------------------------------------------- T11 (dialer)


@pytest.mark.parametrize("how", ["fin", "rst"])
@pytest.mark.parametrize("step", ["after_wire_byte", "after_msg1", "after_msg2"])
async def test_dialer_sees_a_typed_error_when_the_listener_drops(step: str, how: str) -> None:
    """The node dials a raw listener that hangs up at each handshake step: the dial fails
    with a typed error within a second and leaves nothing behind."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)  # type: ignore[attr-defined]

    async def serve(tcp: anyio.abc.SocketStream) -> None:
        await _read_message(tcp, 1)
        if step != "after_wire_byte":
            msg1 = await _read_message(tcp, 2 + 32)
            if step == "after_msg2":
                responder = NoiseConnection(initiator=False, config=NoiseConfig())
                responder.receive_data(msg1)
                await tcp.send(responder.data_to_send())
        if how == "rst":
            await reset(tcp)
        else:
            await tcp.aclose()

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        async with listening_node() as (dialer, _):
            started = anyio.current_time()
            with anyio.fail_after(1), pytest.raises((NoiseProtocolViolation, UpgradeClosedError)):
                await dialer.dial(f"tcp://127.0.0.1:{port}")
            assert anyio.current_time() - started < 1
            assert dialer.connections == () and dialer.statistics().upgrading == 0
            assert dialer.statistics().bans == 0
        tg.cancel_scope.cancel()


# ---------------------------------------------------------------------------- N1-N4


async def _authenticated(port: int, events: object) -> tuple[NoiseAttacker, object]:
    attacker = await NoiseAttacker.connect(port)
    connected = await next_event(events, PeerConnected)  # type: ignore[arg-type]
    return attacker, connected.connection


async def _expect_noise_disconnect(events: object, connection: object) -> PeerDisconnected:
    gone = await next_event(events, PeerDisconnected)  # type: ignore[arg-type]
    assert gone.connection is connection
    assert gone.reason is DisconnectReason.ERROR
    cause: BaseException | None = gone.error
    while cause is not None and not isinstance(cause, NoiseProtocolViolation):
        cause = cause.__cause__ or cause.__context__
    assert isinstance(cause, NoiseProtocolViolation), repr(gone.error)
    return gone


@pytest.mark.parametrize("raw", [b"\x00\x00", b"\x00\x0f" + b"\x00" * 15])
async def test_transport_message_shorter_than_a_tag(raw: bytes) -> None:
    async with listening_node() as (node, port):
        events = node.events()
        attacker, connection = await _authenticated(port, events)
        await attacker.send_raw(raw)
        await _expect_noise_disconnect(events, connection)
        await attacker.expect_closed()
        await attacker.aclose()
        await connection.wait_closed()  # type: ignore[attr-defined]
        assert_idle(node)


def _pings_then_a_flipped_bit(attacker: NoiseAttacker) -> bytes:
    """Messages 0..2 carry valid pings, message 3 has one ciphertext bit flipped."""
    sealed = [bytearray(attacker.seal(frame(PING, SYN, 0, k))) for k in range(4)]
    sealed[3][7] ^= 0x80
    return b"".join(sealed)


async def test_bad_mac_kills_only_that_connection() -> None:
    async with listening_node() as (node, port), bystander(node, port) as honest:
        events = node.events()
        attacker, connection = await _authenticated(port, events)
        await attacker.send_raw(_pings_then_a_flipped_bit(attacker))
        gone = await _expect_noise_disconnect(events, connection)
        assert not node.is_banned(attacker.key.public) or gone.reason is DisconnectReason.BANNED
        await attacker.expect_closed()
        await honest.check()  # another connection: unaffected
        await attacker.aclose()
        await connection.wait_closed()  # type: ignore[attr-defined]


async def test_bad_mac_after_small_messages_is_reported_as_the_peers_violation() -> None:
    async with listening_node() as (node, port):
        events = node.events()
        attacker, connection = await _authenticated(port, events)
        try:
            await attacker.send_raw(_pings_then_a_flipped_bit(attacker))
            gone = await next_event(events, PeerDisconnected)
        finally:
            await attacker.aclose()
            await connection.wait_closed()  # type: ignore[attr-defined]
        assert isinstance(gone.error, NoiseProtocolViolation), repr(gone.error)


async def test_replayed_transport_message() -> None:
    async with listening_node() as (node, port):
        events = node.events()
        attacker, connection = await _authenticated(port, events)
        sealed = attacker.seal(frame(WINDOW_UPDATE, SYN, 1, 0))
        await attacker.send_raw(sealed)
        await attacker.send_raw(sealed)  # same nonce again: the MAC fails
        await _expect_noise_disconnect(events, connection)
        await attacker.aclose()
        await connection.wait_closed()  # type: ignore[attr-defined]
        assert_idle(node)


async def test_truncated_message_then_eof() -> None:
    async with listening_node() as (node, port):
        events = node.events()
        attacker, connection = await _authenticated(port, events)
        sealed = attacker.seal(frame(WINDOW_UPDATE, SYN, 1, 0))
        started = anyio.current_time()
        await attacker.send_raw(sealed[: len(sealed) // 2])
        await attacker.tcp.send_eof()
        await _expect_noise_disconnect(events, connection)
        assert anyio.current_time() - started < 2  # promptly, not a keep-alive later
        await attacker.aclose()
        await connection.wait_closed()  # type: ignore[attr-defined]
        assert_idle(node)


# ---------------------------------------------------------------------------- N5, N7


async def test_maximal_messages_echo_byte_exact() -> None:
    """N5: 4 MiB through the node's echo in maximal 65519-byte plaintexts, plus writes of
    max, max + 1 and 1 byte; everything comes back byte-exact."""
    async with listening_node() as (node, port):
        from plait.identity import NodeIdentity
        from plait.node import ECHO_PROTOCOL_ID, Node

        async with Node(NodeIdentity.generate()) as peer:
            conn = await peer.dial(f"tcp://127.0.0.1:{port}", node.peer_id)
            stream = await conn.open_substream(ECHO_PROTOCOL_ID)
            payload = os.urandom(4 * 1024 * 1024)
            sizes = [MAX_PLAINTEXT_SIZE, MAX_PLAINTEXT_SIZE + 1, 1]
            extra = [os.urandom(n) for n in sizes]
            expected = payload + b"".join(extra)
            received = bytearray()

            async def read() -> None:
                while len(received) < len(expected):
                    received.extend(await stream.receive())

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(read)
                    await stream.send(payload)
                    for chunk in extra:
                        await stream.send(chunk)
            assert bytes(received) == expected
            await stream.aclose()


async def test_write_after_the_peer_closed() -> None:
    """N7: the peer's TCP is gone; the first failing send raises BrokenResourceError and so
    does every later one, at once (no busy loop, no other exception)."""
    async with tcp_pair() as (client_tcp, server_tcp):
        async with anyio.create_task_group() as tg:
            server_noise: list[NoiseStream] = []

            async def accept() -> None:
                server_noise.append(await NoiseStream.wrap(server_tcp, initiator=False))

            tg.start_soon(accept)
            client = await NoiseStream.wrap(client_tcp, initiator=True)
        await reset(server_tcp)  # the peer vanishes with an RST
        with anyio.fail_after(5):
            with pytest.raises(anyio.BrokenResourceError):
                while True:
                    await client.send(b"x" * 65536)
            for _ in range(3):
                with pytest.raises(anyio.BrokenResourceError):
                    await client.send(b"again")
        await client.aclose()


async def test_identity_exchange_garbage_after_noise_is_typed() -> None:
    """The first authenticated bytes are a Yamux frame instead of an identity frame: a
    typed transport violation (undecodable identity), the key banned, never a crash."""
    async with listening_node() as (node, port):
        events = node.events()
        attacker = await NoiseAttacker.connect(port, exchange_identity=False)
        await attacker.send_plain(frame(WINDOW_UPDATE, SYN, 1, 0))
        failed = await next_event(events, ConnectionFailed)
        assert isinstance(failed.error, IdentityDecodeError), repr(failed.error)
        assert node.is_banned(attacker.key.public)  # authenticated and provably malformed
        await attacker.aclose()
        assert_idle(node)

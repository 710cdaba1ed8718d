"""The connection upgrade on its own: wire byte, Noise XX, identity exchange (wire.md §1.1-§1.4).

Real TCP on 127.0.0.1 and the memory transport; the peer is either another
:class:`Upgrader` or a hand-driven client that sends exactly what the test needs.
"""

from __future__ import annotations

import struct
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import pytest
from plait.errors import BanTier
from plait.identity import PeerFeatures
from plait.noise import (
    HandshakeTimeoutError,
    NoiseConfig,
    NoiseProtocolViolation,
    NoiseStream,
    StaticKeypair,
)
from plait.transport import (
    DEFAULT_NETWORK_BYTE,
    IdentityConfig,
    IdentityDecodeError,
    IdentityMessageTooLargeError,
    IdentityTruncatedError,
    IdentityVersionError,
    MemoryNetwork,
    Multiaddr,
    PeerBannedError,
    PeerIdentity,
    PeerKeyMismatchError,
    PeerValidationError,
    UpgradeTimeoutError,
    WrongNetworkError,
)
from plait.transport.proto import identity_pb2
from plait.transport.upgrade import (
    SelfConnectionError,
    UpgradeClosedError,
    UpgradeConfig,
    UpgradedConnection,
    Upgrader,
    UpgradingListener,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import ByteStream

pytestmark = pytest.mark.anyio

IDENTITY_A = PeerIdentity(
    addresses=(Multiaddr.from_string("/ip4/10.0.0.1/tcp/7000"),),
    features=PeerFeatures.COMMUNICATION_NODE,
    supported_protocols=(b"/a/1", b"/plait/echo/1"),
    user_agent="plait/test-a",
)
IDENTITY_B = PeerIdentity(supported_protocols=(b"/b/1",), user_agent="plait/test-b")


@pytest.fixture(params=["tcp", "memory"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def stream_pair(transport: str) -> AsyncIterator[tuple[ByteStream, ByteStream]]:
    """A connected (dialer, listener) pair of transport streams."""
    if transport == "tcp":
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        async with listener:
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            dialer: ByteStream = await anyio.connect_tcp("127.0.0.1", port)
            accepted: ByteStream = await listener.listeners[0].accept()
    else:
        network = MemoryNetwork()
        memory_listener = await network.listen("memory://up")
        dialer = await network.dial("memory://up")
        accepted = await memory_listener.accept()
    async with dialer, accepted:
        yield dialer, accepted


class Offences:
    """Records ``on_offence`` calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, BanTier, BaseException]] = []

    def __call__(self, key: bytes, tier: BanTier, error: BaseException, /) -> None:
        self.calls.append((key, tier, error))


def make_upgrader(
    key: StaticKeypair, identity: PeerIdentity = IDENTITY_B, **kwargs: object
) -> Upgrader:
    return Upgrader(key, identity, **kwargs)  # type: ignore[arg-type]


async def noise_dial(stream: ByteStream, key: StaticKeypair | None = None) -> NoiseStream:
    """A hand-driven dialer: the wire byte and a real Noise handshake, nothing else."""
    await stream.send(bytes([DEFAULT_NETWORK_BYTE]))
    config = NoiseConfig(static_key=key or StaticKeypair.generate())
    return await NoiseStream.wrap(stream, config, initiator=True)


async def read_identity_frame(stream: ByteStream) -> bytes:
    header = b""
    while len(header) < 3:
        header += await stream.receive(3 - len(header))
    _, length = struct.unpack("<BH", header)
    body = b""
    while len(body) < length:
        body += await stream.receive(length - len(body))
    return header + body


async def test_upgrade_both_ways_then_yamux_with_the_dialer_as_client(transport: str) -> None:
    key_a, key_b = StaticKeypair.generate(), StaticKeypair.generate()
    dialer_up, listener_up = make_upgrader(key_a, IDENTITY_A), make_upgrader(key_b, IDENTITY_B)
    results: dict[str, UpgradedConnection] = {}
    async with stream_pair(transport) as (dialer, listener):

        async def inbound() -> None:
            results["in"] = await listener_up.upgrade_inbound(listener)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(inbound)
                results["out"] = await dialer_up.upgrade_outbound(
                    dialer, expected_key=key_b.public, remote_address="somewhere"
                )
        out, inb = results["out"], results["in"]
        assert out.remote_key == key_b.public and inb.remote_key == key_a.public
        assert out.identity == IDENTITY_B and inb.identity == IDENTITY_A
        assert out.is_client and not inb.is_client
        assert out.remote_address == "somewhere"
        assert inb.remote_address.startswith("tcp://127.0.0.1:" if transport == "tcp" else "memory://")
        assert out.stream.handshake_hash == inb.stream.handshake_hash
        assert dialer_up.upgrading == listener_up.upgrading == 0

        async with out.muxer() as client, inb.muxer() as server:
            stream = await client.open_stream()
            assert stream.stream_id % 2 == 1  # the dialer opens odd ids
            await stream.send(b"over yamux")
            accepted = await server.accept_stream()
            assert await accepted.receive() == b"over yamux"


async def test_wrong_network_byte_is_refused_and_nothing_is_sent(transport: str) -> None:
    listener_up = make_upgrader(StaticKeypair.generate())
    async with stream_pair(transport) as (dialer, listener):
        await dialer.send(b"\x00" + b"noise message 1 would follow")
        with pytest.raises(WrongNetworkError) as info:
            await listener_up.upgrade_inbound(listener)
        assert info.value.received == 0x00 and info.value.expected == DEFAULT_NETWORK_BYTE
        assert info.value.ban is BanTier.NONE
        with anyio.fail_after(5), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            await dialer.receive()  # the listener closed without writing a byte


async def test_dialer_with_another_network_byte_fails(transport: str) -> None:
    dialer_up = make_upgrader(StaticKeypair.generate(), config=UpgradeConfig(network_byte=0x00))
    listener_up = make_upgrader(StaticKeypair.generate())
    async with stream_pair(transport) as (dialer, listener):
        async with anyio.create_task_group() as tg:

            async def inbound() -> None:
                with pytest.raises(WrongNetworkError):
                    await listener_up.upgrade_inbound(listener)

            tg.start_soon(inbound)
            with anyio.fail_after(5), pytest.raises(NoiseProtocolViolation):
                await dialer_up.upgrade_outbound(dialer)


async def test_liveness_byte_is_refused(transport: str) -> None:
    listener_up = make_upgrader(StaticKeypair.generate())
    async with stream_pair(transport) as (dialer, listener):
        await dialer.send(b"\xa7pingpong\n")
        with pytest.raises(WrongNetworkError) as info:
            await listener_up.upgrade_inbound(listener)
        assert info.value.received == 0xA7


async def test_first_byte_deadline(transport: str) -> None:
    config = UpgradeConfig(first_byte_timeout=0.2)
    listener_up = make_upgrader(StaticKeypair.generate(), config=config)
    async with stream_pair(transport) as (dialer, listener):
        started = anyio.current_time()
        with pytest.raises(UpgradeTimeoutError, match="wire-mode byte"):
            await listener_up.upgrade_inbound(listener)
        assert anyio.current_time() - started < 2
        assert listener_up.upgrading == 0
        with anyio.fail_after(5), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            await dialer.receive()


async def test_overall_deadline_cuts_off_a_dripping_peer(transport: str) -> None:
    # every step's own deadline is generous; only the overall one can fire
    config = UpgradeConfig(first_byte_timeout=5, noise_handshake_timeout=5, upgrade_timeout=0.5)
    listener_up = make_upgrader(StaticKeypair.generate(), config=config)
    async with stream_pair(transport) as (dialer, listener):

        async def drip() -> None:
            await dialer.send(bytes([DEFAULT_NETWORK_BYTE]))
            for byte in b"\x00\x20" + bytes(32):
                await dialer.send(bytes([byte]))
                await anyio.sleep(0.05)  # the attack: one byte at a time, slowly

        async with anyio.create_task_group() as tg:
            tg.start_soon(drip)
            started = anyio.current_time()
            with pytest.raises(UpgradeTimeoutError, match="did not finish"):
                await listener_up.upgrade_inbound(listener)
            assert 0.4 < anyio.current_time() - started < 2
            tg.cancel_scope.cancel()


async def test_noise_deadline_is_a_noise_error(transport: str) -> None:
    config = UpgradeConfig(noise_handshake_timeout=0.2)
    listener_up = make_upgrader(StaticKeypair.generate(), config=config)
    async with stream_pair(transport) as (dialer, listener):
        await dialer.send(bytes([DEFAULT_NETWORK_BYTE]))
        with pytest.raises(HandshakeTimeoutError):
            await listener_up.upgrade_inbound(listener)


async def test_eof_before_the_wire_byte(transport: str) -> None:
    listener_up = make_upgrader(StaticKeypair.generate())
    async with stream_pair(transport) as (dialer, listener):
        await dialer.aclose()
        with pytest.raises(UpgradeClosedError):
            await listener_up.upgrade_inbound(listener)


async def test_garbage_instead_of_noise_message_1(transport: str) -> None:
    listener_up = make_upgrader(StaticKeypair.generate())
    async with stream_pair(transport) as (dialer, listener):
        await dialer.send(bytes([DEFAULT_NETWORK_BYTE]) + b"\x00\x05hello")
        with pytest.raises(NoiseProtocolViolation):
            await listener_up.upgrade_inbound(listener)


async def test_dial_to_an_unexpected_key_fails_with_key_mismatch(transport: str) -> None:
    key_a, key_b, other = (StaticKeypair.generate() for _ in range(3))
    offences = Offences()
    dialer_up = make_upgrader(key_a)
    listener_up = make_upgrader(key_b, on_offence=offences)
    async with stream_pair(transport) as (dialer, listener):
        errors: list[BaseException] = []

        async def inbound() -> None:
            try:
                await listener_up.upgrade_inbound(listener)
            except (IdentityTruncatedError, UpgradeClosedError) as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(inbound)
            with anyio.fail_after(5), pytest.raises(PeerKeyMismatchError) as info:
                await dialer_up.upgrade_outbound(dialer, expected_key=other.public)
        assert info.value.expected == other.public and info.value.actual == key_b.public
        assert len(errors) == 1  # the listener saw the dialer hang up
        if isinstance(errors[0], IdentityTruncatedError):  # tari: PeerUnexpectedCloseConnection
            assert offences.calls == [(key_a.public, BanTier.SHORT, errors[0])]


async def test_banned_key_is_refused_before_the_identity_exchange(transport: str) -> None:
    banned = StaticKeypair.generate()
    listener_up = make_upgrader(StaticKeypair.generate(), is_banned=lambda k: k == banned.public)
    async with stream_pair(transport) as (dialer, listener):
        async with anyio.create_task_group() as tg:

            async def inbound() -> None:
                with pytest.raises(PeerBannedError):
                    await listener_up.upgrade_inbound(listener)

            tg.start_soon(inbound)
            secure = await noise_dial(dialer, banned)
            # the listener never sends its identity frame: the stream just ends
            with anyio.fail_after(5), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError,
                                                     NoiseProtocolViolation)):
                await secure.receive()


async def test_connection_to_ourselves_is_refused(transport: str) -> None:
    key = StaticKeypair.generate()
    async with stream_pair(transport) as (dialer, listener):
        async with anyio.create_task_group() as tg:

            async def inbound() -> None:
                with pytest.raises((SelfConnectionError, UpgradeClosedError, IdentityTruncatedError)):
                    await make_upgrader(key).upgrade_inbound(listener)

            tg.start_soon(inbound)
            with anyio.fail_after(5), pytest.raises(SelfConnectionError):
                await make_upgrader(key).upgrade_outbound(dialer)


def _frame(body: bytes, *, version: int = 0, length: int | None = None) -> bytes:
    return struct.pack("<BH", version, len(body) if length is None else length) + body


def _message(**fields: object) -> bytes:
    return identity_pb2.PeerIdentityMsg(**fields).SerializeToString()  # type: ignore[arg-type]


_ADDRESS = Multiaddr.from_string("/ip4/10.0.0.1/tcp/7000").to_bytes()
BAD_IDENTITIES = {
    "oversize": (_frame(b"", length=2000), IdentityMessageTooLargeError, BanTier.LONG),
    "too_many_protocols": (
        _frame(_message(supported_protocols=[b"/p/%d" % i for i in range(21)])),
        PeerValidationError, BanTier.LONG,
    ),
    "protocol_id_too_long": (
        _frame(_message(supported_protocols=[b"p" * 51])), PeerValidationError, BanTier.LONG,
    ),
    "too_many_addresses": (
        _frame(_message(addresses=[_ADDRESS] * 6)), PeerValidationError, BanTier.LONG,
    ),
    "user_agent_too_long": (_frame(_message(user_agent="u" * 51)), PeerValidationError,
                            BanTier.LONG),
    "undecodable": (_frame(b"\xff\xff\xff"), IdentityDecodeError, BanTier.LONG),
    "newer_version": (_frame(_message(), version=1), IdentityVersionError, BanTier.SHORT),
    "truncated": (_frame(b"", length=100) + b"short", IdentityTruncatedError, BanTier.SHORT),
}


@pytest.mark.parametrize("case", sorted(BAD_IDENTITIES))
async def test_bad_identity_message_is_typed_and_bans(transport: str, case: str) -> None:
    frame, error_type, tier = BAD_IDENTITIES[case]
    client_key = StaticKeypair.generate()
    offences = Offences()
    listener_up = make_upgrader(StaticKeypair.generate(), on_offence=offences)
    async with stream_pair(transport) as (dialer, listener):
        async with anyio.create_task_group() as tg:

            async def attack() -> None:
                secure = await noise_dial(dialer, client_key)
                await read_identity_frame(secure)  # the listener writes first
                await secure.send(frame)
                if case == "truncated":
                    await secure.send_eof()

            tg.start_soon(attack)
            with anyio.fail_after(5), pytest.raises(error_type) as info:
                await listener_up.upgrade_inbound(listener)
        assert info.value.ban is tier
        assert offences.calls == [(client_key.public, tier, info.value)]
        assert listener_up.upgrading == 0


async def test_identity_limits_are_configurable(transport: str) -> None:
    listener_up = make_upgrader(
        StaticKeypair.generate(),
        config=UpgradeConfig(identity=IdentityConfig(max_supported_protocols=1)),
    )
    async with stream_pair(transport) as (dialer, listener):
        async with anyio.create_task_group() as tg:
            tg.start_soon(make_upgrader(StaticKeypair.generate(), IDENTITY_A).upgrade_outbound, dialer)
            with anyio.fail_after(5), pytest.raises(PeerValidationError):
                await listener_up.upgrade_inbound(listener)
            tg.cancel_scope.cancel()


async def test_cancelling_an_upgrade_closes_the_stream(transport: str) -> None:
    listener_up = make_upgrader(StaticKeypair.generate())
    async with stream_pair(transport) as (dialer, listener):
        with anyio.move_on_after(0.1):
            await listener_up.upgrade_inbound(listener)
        assert listener_up.upgrading == 0
        with anyio.fail_after(5), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            await dialer.receive()


async def test_upgrading_listener_stops_accepting_at_the_cap() -> None:
    network = MemoryNetwork()
    config = UpgradeConfig(first_byte_timeout=0.3)
    upgrader = make_upgrader(StaticKeypair.generate(), config=config)
    errors: list[BaseException] = []
    both_timed_out = anyio.Event()
    upgraded: list[UpgradedConnection] = []
    handled = anyio.Event()
    slots = anyio.Semaphore(2)

    def on_error(error: BaseException, address: object) -> None:
        errors.append(error)
        if len(errors) == 2:
            both_timed_out.set()

    listener = UpgradingListener(
        await network.listen("memory://capped"), upgrader, slots, on_error=on_error
    )

    async def handle(connection: UpgradedConnection) -> None:
        upgraded.append(connection)
        handled.set()
        await connection.stream.aclose()

    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle, tg)
        idle = [await network.dial("memory://capped") for _ in range(2)]
        with anyio.fail_after(5):
            while upgrader.upgrading < 2:  # both idle connections hold a slot
                await anyio.lowlevel.checkpoint()
        honest = await network.dial("memory://capped")
        started = anyio.current_time()
        with anyio.fail_after(5):
            result = await make_upgrader(StaticKeypair.generate()).upgrade_outbound(honest)
        # it was accepted only once an idle connection's first-byte deadline freed a slot
        assert anyio.current_time() - started >= 0.25
        assert result.identity == IDENTITY_B
        with anyio.fail_after(5):  # the second idle connection's deadline may come later
            await both_timed_out.wait()
        assert [type(e) for e in errors] == [UpgradeTimeoutError, UpgradeTimeoutError]
        with anyio.fail_after(5):
            await handled.wait()
        assert len(upgraded) == 1 and upgrader.upgrading == 0
        await listener.aclose()
        for stream in idle:
            await stream.aclose()
    assert listener.active == 0 and not listener.serving

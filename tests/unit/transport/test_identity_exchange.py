"""The identity-exchange frame: codec, limits, validation order, bans (wire.md §1.4)."""

from __future__ import annotations

import struct

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from plait import ProtocolViolation
from plait.identity import PeerFeatures
from plait.transport import (
    BanTier,
    IdentityConfig,
    IdentityDecodeError,
    IdentityFrameReader,
    IdentityMessageTooLargeError,
    IdentityTimeoutError,
    IdentityTruncatedError,
    IdentityVersionError,
    InvalidPeerDataError,
    MemoryNetwork,
    Multiaddr,
    PeerIdentity,
    PeerValidationError,
    TransportProtocolViolation,
    encode_identity_frame,
    exchange_identity,
)
from plait.transport.proto import identity_pb2

IDENTITY = PeerIdentity(
    addresses=(Multiaddr.from_string("/ip4/10.0.0.1/tcp/7000"),
               Multiaddr.from_string("/dns4/node.example/tcp/7001")),
    features=PeerFeatures.COMMUNICATION_NODE,
    supported_protocols=(b"t/msg/0.1", b"/plait/greeting/1"),
    user_agent="plait/0.1.0",
)


def frame(message: identity_pb2.PeerIdentityMsg, version: int = 0) -> bytes:
    body = message.SerializeToString()
    return struct.pack("<BH", version, len(body)) + body


def read(data: bytes, config: IdentityConfig | None = None) -> PeerIdentity:
    reader = IdentityFrameReader(config)
    result = reader.receive_data(data)
    assert result is not None
    return result


def test_round_trip() -> None:
    encoded = encode_identity_frame(IDENTITY)
    assert encoded[0] == 0
    assert struct.unpack_from("<H", encoded, 1)[0] == len(encoded) - 3  # little-endian length
    assert read(encoded) == IDENTITY
    assert IDENTITY.supports("t/msg/0.1") and not IDENTITY.supports(b"t/msg/1.0")


def test_protobuf_field_layout_matches_tari() -> None:
    encoded = encode_identity_frame(PeerIdentity(
        addresses=(Multiaddr.from_string("/ip4/1.2.3.4/tcp/80"),),
        features=PeerFeatures.MESSAGE_PROPAGATION,
        supported_protocols=(b"p",),
        user_agent="u",
    ))
    assert encoded == bytes.fromhex(
        "00" "1200"              # version 0, length 18 (LE)
        "0a08" "04010203040600" "50"  # addresses: /ip4/1.2.3.4/tcp/80
        "1001"                   # features = 1
        "1a0170"                 # supported_protocols = [b"p"]
        "220175"                 # user_agent = "u"
    )


def test_empty_identity_is_accepted_by_default() -> None:
    encoded = encode_identity_frame(PeerIdentity())
    assert encoded == b"\x00\x00\x00"
    assert read(encoded) == PeerIdentity()
    with pytest.raises(PeerValidationError):
        read(encoded, IdentityConfig(require_addresses=True))


def test_byte_at_a_time_and_exact_read_sizes() -> None:
    encoded = encode_identity_frame(IDENTITY)
    reader = IdentityFrameReader()
    assert reader.next_read_size == 3
    result = None
    for i, byte in enumerate(encoded):
        assert reader.next_read_size >= 1
        result = reader.receive_data(bytes([byte]))
        assert (result is None) == (i < len(encoded) - 1)
    assert result == IDENTITY
    assert reader.next_read_size == 0
    with pytest.raises(RuntimeError):
        reader.receive_data(b"x")


def test_trailing_bytes_are_kept() -> None:
    reader = IdentityFrameReader()
    assert reader.receive_data(encode_identity_frame(IDENTITY) + b"\x00\x00yamux") == IDENTITY
    assert reader.trailing_data == b"\x00\x00yamux"


def test_oversize_rejected_from_the_header_before_the_body() -> None:
    reader = IdentityFrameReader()
    with pytest.raises(IdentityMessageTooLargeError) as info:
        reader.receive_data(struct.pack("<BH", 0, 1025))
    assert info.value.ban is BanTier.LONG
    assert info.value.seen == 1025
    assert read(struct.pack("<BH", 0, 0)) == PeerIdentity()


def test_sender_refuses_more_than_1024_bytes() -> None:
    big = PeerIdentity(supported_protocols=tuple(b"p" * 50 for _ in range(21)))
    with pytest.raises(ValueError, match="1024"):
        encode_identity_frame(big)


def test_higher_version_refused_lower_accepted() -> None:
    body = encode_identity_frame(IDENTITY)[1:]
    with pytest.raises(IdentityVersionError) as info:
        read(b"\x01" + body)
    assert info.value.ban is BanTier.SHORT
    assert read(b"\x00" + body, IdentityConfig(version=1)) == IDENTITY


def test_malformed_protobuf() -> None:
    for body in (b"\x0a\x05ab", b"\xff\xff\xff", b"\x22\x02\xff\xfe"):  # truncated, bad tag, bad UTF-8
        with pytest.raises(IdentityDecodeError) as info:
            read(struct.pack("<BH", 0, len(body)) + body)
        assert info.value.ban is BanTier.LONG


def test_eof_inside_the_frame() -> None:
    reader = IdentityFrameReader()
    reader.receive_data(encode_identity_frame(IDENTITY)[:5])
    with pytest.raises(IdentityTruncatedError) as info:
        reader.receive_data(b"")
    assert info.value.ban is BanTier.SHORT


@pytest.mark.parametrize(
    ("message", "error", "ban"),
    [
        (identity_pb2.PeerIdentityMsg(supported_protocols=[b"p"] * 21), PeerValidationError,
         BanTier.LONG),
        (identity_pb2.PeerIdentityMsg(supported_protocols=[b"p" * 51]), PeerValidationError,
         BanTier.LONG),
        (identity_pb2.PeerIdentityMsg(addresses=[bytes.fromhex("047f000001061f90")] * 6),
         PeerValidationError, BanTier.LONG),
        (identity_pb2.PeerIdentityMsg(user_agent="é" * 26), PeerValidationError, BanTier.LONG),
        (identity_pb2.PeerIdentityMsg(addresses=[b"\x63\x00"]), InvalidPeerDataError,
         BanTier.NONE),
        (identity_pb2.PeerIdentityMsg(features=4), InvalidPeerDataError, BanTier.NONE),
        (identity_pb2.PeerIdentityMsg(addresses=[bytes.fromhex("0400000000061f90")]),
         PeerValidationError, BanTier.LONG),  # /ip4/0.0.0.0/tcp/8080
        (identity_pb2.PeerIdentityMsg(addresses=[bytes.fromhex("8906" + "00" * 7 + "01")]),
         PeerValidationError, BanTier.LONG),  # /memory/1 without test addresses
    ],
    ids=["21-protocols", "51-byte-id", "6-addresses", "52-byte-agent", "bad-multiaddr",
         "unknown-feature", "unspecified-ip", "memory-address"],
)
def test_validation_failures(
    message: identity_pb2.PeerIdentityMsg, error: type[TransportProtocolViolation], ban: BanTier
) -> None:
    with pytest.raises(error) as info:
        read(frame(message))
    assert info.value.ban is ban
    assert isinstance(info.value, ProtocolViolation)


def test_limits_at_the_boundary_pass() -> None:
    message = identity_pb2.PeerIdentityMsg(
        supported_protocols=[b"p" * 50] + [b"q"] * 19,
        addresses=[bytes.fromhex("047f000001061f90")] * 5,
        user_agent="a" * 50,
        features=3,
    )
    result = read(frame(message))
    assert len(result.supported_protocols) == 20 and len(result.addresses) == 5
    assert result.features is PeerFeatures.COMMUNICATION_NODE


def test_validation_order_protocols_before_addresses() -> None:
    message = identity_pb2.PeerIdentityMsg(
        supported_protocols=[b"p"] * 21, addresses=[b"\x63\x00"]
    )
    with pytest.raises(PeerValidationError, match="protocols"):
        read(frame(message))


def test_test_addresses_allowed_by_config() -> None:
    message = identity_pb2.PeerIdentityMsg(addresses=[bytes.fromhex("8906" + "00" * 7 + "01")])
    result = read(frame(message), IdentityConfig(allow_test_addresses=True))
    assert str(result.addresses[0]) == "/memory/1"


def test_signature_present_is_ignored_in_the_default_suite() -> None:
    message = identity_pb2.PeerIdentityMsg(
        user_agent="tari/basenode/1.7",
        identity_signature=identity_pb2.IdentitySignature(
            version=0, signature=b"s" * 32, public_nonce=b"r" * 32, updated_at=1
        ),
    )
    assert read(frame(message)).user_agent == "tari/basenode/1.7"


@given(st.binary(max_size=1100))
def test_arbitrary_bytes_raise_only_transport_violations(data: bytes) -> None:
    reader = IdentityFrameReader()
    try:
        reader.receive_data(data)
        reader.receive_data(b"")
    except TransportProtocolViolation:
        pass
    except RuntimeError:
        pass  # the frame was complete: nothing more to read


@pytest.mark.anyio
async def test_exchange_over_memory_streams_leaves_following_bytes_unread() -> None:
    network = MemoryNetwork()
    listener = await network.listen("memory://ident")
    dialer = await network.dial("memory://ident")
    accepted = await listener.accept()
    other = PeerIdentity(user_agent="other", features=PeerFeatures.MESSAGE_PROPAGATION)
    results: dict[str, PeerIdentity] = {}

    async def side(name: str, stream: anyio.abc.ByteStream, local: PeerIdentity) -> None:
        results[name] = await exchange_identity(stream, local)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(side, "dialer", dialer, IDENTITY)
            tg.start_soon(side, "listener", accepted, other)
        await dialer.send(b"next-layer")
        assert await accepted.receive() == b"next-layer"
    assert results == {"dialer": other, "listener": IDENTITY}
    await listener.aclose()


@pytest.mark.anyio
async def test_exchange_times_out_and_reports_truncation() -> None:
    network = MemoryNetwork()
    listener = await network.listen("memory://slow")
    dialer = await network.dial("memory://slow")
    accepted = await listener.accept()
    with pytest.raises(IdentityTimeoutError) as info:
        await exchange_identity(dialer, IDENTITY, config=IdentityConfig(timeout=0.05))
    assert isinstance(info.value, TimeoutError) and info.value.ban is BanTier.SHORT
    await accepted.send(b"\x00\x10")
    await accepted.send_eof()
    with anyio.fail_after(5), pytest.raises(IdentityTruncatedError):
        await exchange_identity(dialer, IDENTITY)
    await listener.aclose()

"""Binary and text multiaddrs and tari's address validation (wire.md §5.4, §1.4.3 check 9)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from plait.transport import Multiaddr, MultiaddrError, MultiaddrProtocol, validate_peer_address
from plait.transport._multiaddr import decode_varint, encode_varint

P = MultiaddrProtocol
VALID_ONION3 = "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:1234"


@pytest.mark.parametrize(
    ("text", "hex_bytes"),
    [
        ("/ip4/127.0.0.1/tcp/8080", "047f000001061f90"),
        ("/ip6/::1/tcp/1", "29" + "00" * 15 + "01" + "060001"),
        ("/dns4/example.com/tcp/443", "360b6578616d706c652e636f6d0601bb"),
        ("/memory/1234", "8906" + "00000000000004d2"),
    ],
)
def test_known_encodings(text: str, hex_bytes: str) -> None:
    address = Multiaddr.from_string(text)
    assert address.to_bytes().hex() == hex_bytes
    assert Multiaddr.from_bytes(bytes.fromhex(hex_bytes)) == address
    assert str(address) == text


def test_onion3_text_round_trip() -> None:
    address = Multiaddr.from_string(VALID_ONION3)
    assert str(address) == VALID_ONION3
    raw = address.to_bytes()
    assert raw[:2] == encode_varint(445) and len(raw) == 2 + 35 + 2
    assert Multiaddr.from_bytes(raw) == address


components = st.one_of(
    st.builds(lambda v: (P.IP4, ipaddress.IPv4Address(v)), st.integers(0, 2**32 - 1)),
    st.builds(lambda v: (P.IP6, ipaddress.IPv6Address(v)), st.integers(0, 2**128 - 1)),
    st.builds(lambda v: (P.TCP, v), st.integers(0, 0xFFFF)),
    st.builds(lambda v: (P.MEMORY, v), st.integers(0, 2**64 - 1)),
    st.builds(lambda c, v: (c, v), st.sampled_from([P.DNS, P.DNS4, P.DNS6, P.DNSADDR]),
              st.text(min_size=1, max_size=40).filter(lambda s: "/" not in s)),
)


@given(st.lists(components, max_size=5))
def test_binary_and_text_round_trip(parts: list[tuple[P, object]]) -> None:
    address = Multiaddr(tuple(parts))  # type: ignore[arg-type]
    assert Multiaddr.from_bytes(address.to_bytes()) == address
    assert Multiaddr.from_string(str(address)) == address


@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_multiaddr_error(data: bytes) -> None:
    try:
        address = Multiaddr.from_bytes(data)
    except MultiaddrError:
        return
    assert address.to_bytes() == data  # the encoding is canonical


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x04\x7f\x00", "truncated ip4"),
        (b"\x06\x1f", "truncated tcp"),
        (b"\x36\x05abc", "truncated dns"),
        (b"\x36\x02\xff\xfe", "not UTF-8"),
        (b"\x63\x00", "unsupported code 99"),
        (b"\x84\x00", "non-minimal varint"),
        (b"\xff\xff\xff\xff\xff\x01", "varint too long"),
        (b"\x80", "truncated varint"),
    ],
)
def test_malformed_bytes(data: bytes, reason: str) -> None:
    with pytest.raises(MultiaddrError):
        Multiaddr.from_bytes(data)


def test_varint_bounds() -> None:
    assert decode_varint(encode_varint(2**32 - 1)) == (2**32 - 1, 5)
    assert decode_varint(b"\x00") == (0, 1)
    with pytest.raises(MultiaddrError):
        decode_varint(encode_varint(2**35))


@pytest.mark.parametrize("text", ["ip4/1.2.3.4", "/ip4", "/ip4/300.1.1.1", "/tcp/x", "/udp/1",
                                  "/onion3/abc:1", "/dns4/"])
def test_malformed_text(text: str) -> None:
    with pytest.raises(MultiaddrError):
        Multiaddr.from_string(text)


def test_value_types_are_checked() -> None:
    with pytest.raises(MultiaddrError):
        Multiaddr(((P.TCP, 70000),))
    with pytest.raises(MultiaddrError):
        Multiaddr(((P.IP4, "1.2.3.4"),))


# -- tari validate_address (helpers.rs tests) --------------------------------------------

STRICT_VALID = [
    "/ip4/172.0.0.1/tcp/1",
    "/ip6/ac:0:0:1:1:1:1:1/tcp/1",
    VALID_ONION3,
    "/dnsaddr/mike-magic-nodes.com/tcp/1",
    "/dns4/example.com/tcp/7000",
    "/ip4/127.0.0.1/tcp/1",  # loopback is not rejected, as in tari
]
STRICT_INVALID = [
    "/dnsaddr/mike-magic-nodes.com",
    "/memory/1234",
    "/memory/0",
    "/ip4/172.0.0.1",
    "/ip4/172.0.0.1/tcp/0",
    "/ip4/172.0.0.1/tcp/1/tcp/2",
    "/ip4/0.0.0.0/tcp/1",
    "/ip6/::/tcp/1",
    "/dns/example.com/tcp/1",
    "/tcp/1",
    "/onion3/www6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:1234",
    "/onion3/pd6sf3mqkkkfrn4rk5odgcr2j5sn7m523a4tm7pzpuotk2b7rpuhaeym:1234",
    "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:0",
    "/onion/aaimaq4ygg2iegci:1234",
    "",
]


@pytest.mark.parametrize("text", STRICT_VALID)
def test_strict_valid(text: str) -> None:
    validate_peer_address(Multiaddr.from_string(text))


@pytest.mark.parametrize("text", STRICT_INVALID)
def test_strict_invalid(text: str) -> None:
    with pytest.raises(MultiaddrError):
        validate_peer_address(Multiaddr.from_string(text))


def test_test_addresses() -> None:
    for text in ("/memory/1234", "/ip4/0.0.0.0/tcp/1", "/ip6/::/tcp/1"):
        validate_peer_address(Multiaddr.from_string(text), allow_test_addresses=True)
    for text in ("/memory/0", "/ip4/172.0.0.1", "/onion/aaimaq4ygg2iegci:1234"):
        with pytest.raises(MultiaddrError):
            validate_peer_address(Multiaddr.from_string(text), allow_test_addresses=True)

"""Parsing ``tcp://HOST:PORT`` and ``memory://NAME``."""

from __future__ import annotations

import pytest
from plait.transport import (
    InvalidAddressError,
    MemoryAddress,
    Multiaddr,
    TcpAddress,
    TransportError,
    parse_address,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tcp://127.0.0.1:7000", TcpAddress("127.0.0.1", 7000)),
        ("tcp://[::1]:0", TcpAddress("::1", 0)),
        ("TCP://[2001:db8::1]:65535", TcpAddress("2001:db8::1", 65535)),
        ("tcp://localhost:80", TcpAddress("localhost", 80)),
        ("tcp://node-1.example.com:9", TcpAddress("node-1.example.com", 9)),
        ("memory://a", MemoryAddress("a")),
        ("memory://node_1.x-y~z", MemoryAddress("node_1.x-y~z")),
    ],
)
def test_valid(text: str, expected: object) -> None:
    parsed = parse_address(text)
    assert parsed == expected
    assert parse_address(str(parsed)) == parsed


def test_canonical_text() -> None:
    assert str(parse_address("TCP://[::1]:7")) == "tcp://[::1]:7"
    assert str(TcpAddress("10.0.0.1", 1)) == "tcp://10.0.0.1:1"
    assert str(MemoryAddress("n")) == "memory://n"


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1:7000",
        "udp://1.2.3.4:5",
        "tcp://::1:7000",
        "tcp://[::1]7000",
        "tcp://[not-v6]:1",
        "tcp://127.0.0.1",
        "tcp://127.0.0.1:",
        "tcp://127.0.0.1:65536",
        "tcp://127.0.0.1:-1",
        "tcp://127.0.0.1:１２",
        "tcp://:80",
        "tcp://bad_host!:80",
        "tcp://-leading.example:80",
        "memory://",
        "memory://a/b",
        "memory://" + "x" * 256,
    ],
)
def test_invalid(text: str) -> None:
    with pytest.raises(InvalidAddressError) as info:
        parse_address(text)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, TransportError)


def test_address_objects_pass_through() -> None:
    address = TcpAddress("::1", 5)
    assert parse_address(address) is address


def test_to_multiaddr() -> None:
    assert TcpAddress("1.2.3.4", 80).to_multiaddr() == Multiaddr.from_string("/ip4/1.2.3.4/tcp/80")
    assert TcpAddress("::1", 80).to_multiaddr() == Multiaddr.from_string("/ip6/::1/tcp/80")
    assert TcpAddress("example.com", 1).to_multiaddr() == Multiaddr.from_string(
        "/dns4/example.com/tcp/1"
    )

"""Binary and text multiaddrs, the subset tari uses (wire.md §5.4, rust-multiaddr 0.14).

Theory of operation
-------------------
A multiaddr is a sequence of components; in binary each is an unsigned LEB128 varint
protocol code followed by the value in that protocol's encoding:

======== ==== =============================================================
name     code value
======== ==== =============================================================
ip4      4    4 bytes
tcp      6    u16 big-endian
ip6      41   16 bytes
dns      53   varint length + UTF-8
dns4     54   varint length + UTF-8
dns6     55   varint length + UTF-8
dnsaddr  56   varint length + UTF-8
onion    444  10-byte hash + u16 BE port (tor v2; parsed only to be rejected)
onion3   445  35 bytes (pubkey 32, checksum 2, version 1) + u16 BE port
memory   777  u64 big-endian
======== ==== =============================================================

Decoding is strict and bounded: a varint is at most 5 bytes (a u32, as rust-multiaddr reads
codes) and must be minimally encoded; a length prefix may not exceed the bytes left; DNS
names must be UTF-8; an unknown code is an error because its value length is unknown.
Errors are :class:`MultiaddrError` (a ``ValueError``); this module does not decide blame.

:func:`validate_peer_address` applies tari's ``validate_address`` rules (wire.md §1.4.3
check 9) to an address a peer advertised.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import ipaddress
import struct
from dataclasses import dataclass
from typing import TypeAlias

__all__ = (
    "Multiaddr",
    "MultiaddrError",
    "MultiaddrProtocol",
    "MultiaddrValue",
    "OnionAddress",
    "decode_varint",
    "encode_varint",
    "validate_peer_address",
)

MAX_VARINT_BYTES = 5  # u32, as unsigned_varint::decode::u32 reads protocol codes
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")
_ONION3_KEY_SIZE = 35  # pubkey 32 ‖ checksum 2 ‖ version 1
_ONION_HASH_SIZE = 10


class MultiaddrError(ValueError):
    """Malformed multiaddr bytes or text."""


class MultiaddrProtocol(enum.IntEnum):
    """Multiaddr protocol codes plait understands (multicodec table)."""

    IP4 = 4
    TCP = 6
    IP6 = 41
    DNS = 53
    DNS4 = 54
    DNS6 = 55
    DNSADDR = 56
    ONION = 444
    ONION3 = 445
    MEMORY = 777


@dataclass(frozen=True, slots=True)
class OnionAddress:
    """The value of an ``onion`` (10-byte hash) or ``onion3`` (35-byte key) component."""

    key: bytes
    """The service id as bytes: 10 for onion v2, 35 for onion3."""
    port: int
    """The service port."""


MultiaddrValue: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address | int | str | OnionAddress
"""A component's value: an IP address, a port or memory id, a DNS name, or an onion address."""

_DNS = (
    MultiaddrProtocol.DNS, MultiaddrProtocol.DNS4, MultiaddrProtocol.DNS6,
    MultiaddrProtocol.DNSADDR,
)


# Components that must be followed by exactly one non-zero /tcp (tari validate_address).
_TCP_HOSTS = (
    MultiaddrProtocol.IP4, MultiaddrProtocol.IP6, MultiaddrProtocol.DNS4, MultiaddrProtocol.DNS6,
    MultiaddrProtocol.DNSADDR,
)


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128."""
    if value < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(
    data: bytes, offset: int = 0, *, max_bytes: int = MAX_VARINT_BYTES
) -> tuple[int, int]:
    """Decode an unsigned LEB128 varint of at most ``max_bytes`` bytes at ``offset``.

    :return: ``(value, offset after the varint)``.
    :raises MultiaddrError: if truncated, longer than ``max_bytes`` or not minimal.
    """
    value = 0
    for i in range(max_bytes):
        if offset + i >= len(data):
            raise MultiaddrError("truncated varint")
        byte = data[offset + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise MultiaddrError("varint is not minimally encoded")
            return value, offset + i + 1
    raise MultiaddrError(f"varint longer than {max_bytes} bytes")


def _take(data: bytes, offset: int, size: int, what: str) -> bytes:
    if offset + size > len(data):
        raise MultiaddrError(f"truncated {what}: need {size} bytes, have {len(data) - offset}")
    return data[offset : offset + size]


def _decode_value(code: MultiaddrProtocol, data: bytes, offset: int) -> tuple[MultiaddrValue, int]:
    if code is MultiaddrProtocol.IP4:
        return ipaddress.IPv4Address(_take(data, offset, 4, "ip4")), offset + 4
    if code is MultiaddrProtocol.IP6:
        return ipaddress.IPv6Address(_take(data, offset, 16, "ip6")), offset + 16
    if code is MultiaddrProtocol.TCP:
        return _U16.unpack(_take(data, offset, 2, "tcp port"))[0], offset + 2
    if code is MultiaddrProtocol.MEMORY:
        return _U64.unpack(_take(data, offset, 8, "memory id"))[0], offset + 8
    if code in _DNS:
        length, offset = decode_varint(data, offset)
        raw = _take(data, offset, length, "dns name")
        try:
            return raw.decode("utf-8"), offset + length
        except UnicodeDecodeError as exc:
            raise MultiaddrError("dns name is not UTF-8") from exc
    size = _ONION3_KEY_SIZE if code is MultiaddrProtocol.ONION3 else _ONION_HASH_SIZE
    raw = _take(data, offset, size + 2, code.name.lower())
    return OnionAddress(raw[:size], _U16.unpack_from(raw, size)[0]), offset + size + 2


def _encode_value(code: MultiaddrProtocol, value: MultiaddrValue) -> bytes:
    if code is MultiaddrProtocol.IP4 and isinstance(value, ipaddress.IPv4Address):
        return value.packed
    if code is MultiaddrProtocol.IP6 and isinstance(value, ipaddress.IPv6Address):
        return value.packed
    if code is MultiaddrProtocol.TCP and isinstance(value, int) and 0 <= value <= 0xFFFF:
        return _U16.pack(value)
    if code is MultiaddrProtocol.MEMORY and isinstance(value, int) and 0 <= value < 2**64:
        return _U64.pack(value)
    if code in _DNS and isinstance(value, str):
        raw = value.encode("utf-8")
        return encode_varint(len(raw)) + raw
    if code in (MultiaddrProtocol.ONION, MultiaddrProtocol.ONION3) and isinstance(
        value, OnionAddress
    ):
        size = _ONION3_KEY_SIZE if code is MultiaddrProtocol.ONION3 else _ONION_HASH_SIZE
        if len(value.key) == size and 0 <= value.port <= 0xFFFF:
            return value.key + _U16.pack(value.port)
    raise MultiaddrError(f"invalid value {value!r} for /{code.name.lower()}")


def _value_text(code: MultiaddrProtocol, value: MultiaddrValue) -> str:
    if isinstance(value, OnionAddress):
        return base64.b32encode(value.key).decode().lower() + f":{value.port}"
    return str(value)


def _parse_value(code: MultiaddrProtocol, text: str) -> MultiaddrValue:
    try:
        if code is MultiaddrProtocol.IP4:
            return ipaddress.IPv4Address(text)
        if code is MultiaddrProtocol.IP6:
            return ipaddress.IPv6Address(text)
        if code in (MultiaddrProtocol.TCP, MultiaddrProtocol.MEMORY):
            if not text.isdigit():
                raise ValueError(text)
            return int(text)
        if code in _DNS:
            if not text:
                raise ValueError("empty name")
            return text
        key_text, _, port_text = text.partition(":")
        if not port_text.isdigit():
            raise ValueError(text)
        return OnionAddress(base64.b32decode(key_text.upper()), int(port_text))
    except ValueError as exc:  # binascii.Error is a ValueError too
        raise MultiaddrError(f"bad /{code.name.lower()} value {text!r}") from exc


@dataclass(frozen=True, slots=True)
class Multiaddr:
    """An immutable multiaddr: a tuple of ``(protocol, value)`` components."""

    components: tuple[tuple[MultiaddrProtocol, MultiaddrValue], ...]
    """The components in order."""

    def __post_init__(self) -> None:
        for code, value in self.components:
            _encode_value(code, value)  # validates the value type and range

    @classmethod
    def from_bytes(cls, data: bytes) -> Multiaddr:
        """Decode the binary form.

        :raises MultiaddrError: on malformed or unsupported input.
        """
        data = bytes(data)
        components: list[tuple[MultiaddrProtocol, MultiaddrValue]] = []
        offset = 0
        while offset < len(data):
            raw_code, offset = decode_varint(data, offset)
            try:
                code = MultiaddrProtocol(raw_code)
            except ValueError:
                raise MultiaddrError(f"unsupported multiaddr protocol code {raw_code}") from None
            value, offset = _decode_value(code, data, offset)
            components.append((code, value))
        return cls(tuple(components))

    @classmethod
    def from_string(cls, text: str) -> Multiaddr:
        """Parse the text form, e.g. ``/ip4/1.2.3.4/tcp/80`` or ``/onion3/<base32>:<port>``.

        :raises MultiaddrError: on malformed or unsupported input.
        """
        if text == "":
            return cls(())
        parts = text.split("/")
        if parts[0] != "":
            raise MultiaddrError(f"a multiaddr starts with '/': {text!r}")
        components: list[tuple[MultiaddrProtocol, MultiaddrValue]] = []
        i = 1
        while i < len(parts):
            try:
                code = MultiaddrProtocol[parts[i].upper()]
            except KeyError:
                raise MultiaddrError(f"unsupported multiaddr protocol {parts[i]!r}") from None
            if i + 1 >= len(parts):
                raise MultiaddrError(f"/{parts[i]} needs a value")
            components.append((code, _parse_value(code, parts[i + 1])))
            i += 2
        return cls(tuple(components))

    def to_bytes(self) -> bytes:
        """The binary form (wire.md §5.4)."""
        return b"".join(
            encode_varint(code) + _encode_value(code, value) for code, value in self.components
        )

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def __str__(self) -> str:
        return "".join(
            f"/{code.name.lower()}/{_value_text(code, value)}" for code, value in self.components
        )


def _onion3_checksum_ok(key: bytes) -> bool:
    pubkey, checksum, version = key[:32], key[32:34], key[34:]
    digest = hashlib.sha3_256(b".onion checksum" + pubkey + version).digest()
    return version == b"\x03" and digest[:2] == checksum


def validate_peer_address(address: Multiaddr, *, allow_test_addresses: bool = False) -> None:
    """Apply tari's ``validate_address`` to an advertised address (wire.md §1.4.3 check 9).

    Accepted: ``/ip4|ip6|dns4|dns6|dnsaddr/<x>/tcp/<non-zero>`` exactly; ``/onion3/<key>:<port>``
    with a non-zero port and a valid checksum and version; ``/memory/<non-zero>`` only with
    ``allow_test_addresses``. The unspecified IP (0.0.0.0, ::) only with
    ``allow_test_addresses``. Loopback is accepted, as in tari. Plain ``/dns`` and onion v2
    are rejected.

    :raises MultiaddrError: with the reason, when the address is not acceptable.
    """
    components = address.components
    if not components:
        raise MultiaddrError("multiaddr is empty")
    code, value = components[0]
    rest = components[1:]
    if code in _TCP_HOSTS:
        if (
            isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address)
            and value.is_unspecified
            and not allow_test_addresses
        ):
            raise MultiaddrError(f"unspecified address {value} is not allowed")
        if not rest or rest[0][0] is not MultiaddrProtocol.TCP:
            raise MultiaddrError(f"{address} does not include a TCP port")
        if rest[0][1] == 0:
            raise MultiaddrError("cannot connect to a zero TCP port")
        if len(rest) > 1:
            raise MultiaddrError(f"unexpected component after the TCP port in {address}")
        return
    if code is MultiaddrProtocol.MEMORY:
        if value == 0:
            raise MultiaddrError("cannot connect to a zero memory port")
        if not allow_test_addresses:
            raise MultiaddrError("memory addresses are not allowed")
    elif code is MultiaddrProtocol.ONION3:
        assert isinstance(value, OnionAddress)
        if value.port == 0:
            raise MultiaddrError("a zero onion port is not valid")
        if not _onion3_checksum_ok(value.key):
            raise MultiaddrError("invalid onion3 checksum or version")
    elif code is MultiaddrProtocol.ONION:
        raise MultiaddrError("onion v2 addresses are not supported")
    else:
        raise MultiaddrError(f"unsupported address type /{code.name.lower()}")
    if rest:
        raise MultiaddrError(f"unexpected component after /{code.name.lower()} in {address}")

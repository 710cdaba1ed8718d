"""Transport addresses as users write them: ``tcp://HOST:PORT`` and ``memory://NAME``.

``HOST`` is an IPv4 literal, an IPv6 literal in brackets (``tcp://[::1]:7000``) or a DNS
name; ``PORT`` is 0..65535 (0 asks the OS for a free port when listening). ``NAME`` is 1 to
255 characters from ``[A-Za-z0-9._~-]``. :func:`parse_address` returns a frozen
:class:`TcpAddress` or :class:`MemoryAddress` whose ``str()`` is the canonical text form.
These are *local* addresses for dialling and listening; what a node advertises to peers is
the binary multiaddr form (:meth:`TcpAddress.to_multiaddr`, wire.md §5.4).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TypeAlias

from ._multiaddr import Multiaddr, MultiaddrProtocol, MultiaddrValue
from .errors import InvalidAddressError

__all__ = ("MemoryAddress", "TcpAddress", "TransportAddress", "parse_address")

_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?\Z"
)
_MEMORY_NAME = re.compile(r"[A-Za-z0-9._~-]{1,255}\Z")


@dataclass(frozen=True, slots=True)
class TcpAddress:
    """A TCP endpoint."""

    host: str
    """An IPv4 or IPv6 literal (no brackets) or a DNS name."""
    port: int
    """0..65535."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 0xFFFF:
            raise InvalidAddressError(f"TCP port out of range: {self.port!r}")
        if self.ip is None and not _HOSTNAME.match(self.host):
            raise InvalidAddressError(f"not an IP address or host name: {self.host!r}")

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The host as an IP address, or ``None`` for a DNS name."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    def to_multiaddr(self) -> Multiaddr:
        """``/ip4|ip6/<ip>/tcp/<port>``, or ``/dns4/<name>/tcp/<port>`` for a name.

        (tari accepts ``dns4``, ``dns6`` and ``dnsaddr`` but not plain ``dns``.)
        """
        ip = self.ip
        head: tuple[MultiaddrProtocol, MultiaddrValue]
        if isinstance(ip, ipaddress.IPv4Address):
            head = (MultiaddrProtocol.IP4, ip)
        elif isinstance(ip, ipaddress.IPv6Address):
            head = (MultiaddrProtocol.IP6, ip)
        else:
            head = (MultiaddrProtocol.DNS4, self.host.rstrip("."))
        return Multiaddr((head, (MultiaddrProtocol.TCP, self.port)))

    def __str__(self) -> str:
        if ":" in self.host:
            return f"tcp://[{self.host}]:{self.port}"
        return f"tcp://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class MemoryAddress:
    """An in-process endpoint of a :class:`~plait.transport.MemoryNetwork`."""

    name: str
    """The listener's name."""

    def __post_init__(self) -> None:
        if not _MEMORY_NAME.match(self.name):
            raise InvalidAddressError(f"invalid memory address name: {self.name!r}")

    def __str__(self) -> str:
        return f"memory://{self.name}"


TransportAddress: TypeAlias = TcpAddress | MemoryAddress
"""Any address a plait transport understands."""


def parse_address(address: str | TransportAddress) -> TransportAddress:
    """Parse ``tcp://HOST:PORT`` or ``memory://NAME``; an address object is returned as is.

    :raises InvalidAddressError: (a ``ValueError``) on anything else.
    """
    if isinstance(address, TcpAddress | MemoryAddress):
        return address
    scheme, sep, rest = address.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise InvalidAddressError(f"address needs a scheme (tcp:// or memory://): {address!r}")
    if scheme == "memory":
        return MemoryAddress(rest)
    if scheme != "tcp":
        raise InvalidAddressError(f"unsupported address scheme {scheme!r} in {address!r}")
    if rest.startswith("["):
        host, bracket, port_part = rest[1:].partition("]")
        if not bracket or not port_part.startswith(":"):
            raise InvalidAddressError(f"expected tcp://[IPV6]:PORT, got {address!r}")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InvalidAddressError(f"not an IPv6 address: {host!r}") from None
        port_text = port_part[1:]
    else:
        host, colon, port_text = rest.rpartition(":")
        if not colon or ":" in host:
            raise InvalidAddressError(
                f"expected tcp://HOST:PORT (IPv6 in brackets), got {address!r}"
            )
    if not port_text.isdigit() or not port_text.isascii():
        raise InvalidAddressError(f"invalid TCP port in {address!r}")
    return TcpAddress(host, int(port_text))

"""TCP transport over anyio, IPv4 and IPv6 (wire.md §0 layer 0, §1.1 step 1).

Dialling uses ``anyio.connect_tcp`` (happy eyeballs for names); like tari's TcpTransport
it applies no connect timeout unless :attr:`TcpConfig.connect_timeout` is set. Listening
resolves the host to one address and binds a single socket there, so :attr:`TcpListener.address`
is exact (port 0 is replaced by the port the OS chose). TCP_NODELAY is set explicitly on
every dialled and accepted socket: every layer above flushes small frames (network byte,
Noise handshake messages, Yamux headers, negotiation frames) and must not wait for Nagle.
OS errors become :class:`DialError` / :class:`ListenError`, chained to the original.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import SocketAttribute, SocketListener

from .address import TcpAddress, parse_address
from .base import Transport, TransportListener
from .errors import DialError, InvalidAddressError, ListenError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from anyio.abc import ByteStream, SocketStream

    from .address import TransportAddress

__all__ = ("DEFAULT_TCP_BACKLOG", "TcpConfig", "TcpListener", "TcpTransport")

logger = logging.getLogger(__name__)

DEFAULT_TCP_BACKLOG = 128  # listen(2) backlog; the upgrader bounds concurrent upgrades itself


@dataclass(frozen=True, slots=True, kw_only=True)
class TcpConfig:
    """Settings of :class:`TcpTransport`."""

    connect_timeout: float | None = None
    """Seconds allowed for the TCP connect; ``None`` leaves it to the OS (as tari does)."""
    backlog: int = DEFAULT_TCP_BACKLOG
    """Pending-connection queue length passed to ``listen(2)``."""

    def __post_init__(self) -> None:
        if self.connect_timeout is not None and not self.connect_timeout > 0:
            raise ValueError(f"connect_timeout must be positive, got {self.connect_timeout!r}")
        if self.backlog < 1:
            raise ValueError(f"backlog must be at least 1, got {self.backlog!r}")


def _tcp_address(address: str | TransportAddress) -> TcpAddress:
    parsed = parse_address(address)
    if not isinstance(parsed, TcpAddress):
        raise InvalidAddressError(f"not a tcp:// address: {parsed}")
    return parsed


def _set_nodelay(stream: SocketStream) -> None:
    sock = stream.extra(SocketAttribute.raw_socket)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class TcpListener(TransportListener):
    """A listening TCP socket; see :meth:`TcpTransport.listen`."""

    def __init__(self, listener: SocketListener) -> None:
        self._listener = listener
        local = listener.extra(SocketAttribute.local_address)
        assert isinstance(local, tuple)  # an IP socket, never a UNIX path
        host, port = local[0], local[1]
        self._address = TcpAddress(str(host), int(port))

    def __repr__(self) -> str:
        return f"<TcpListener {self._address}>"

    @property
    def address(self) -> TcpAddress:
        return self._address

    async def accept(self) -> ByteStream:
        stream = await self._listener.accept()
        _set_nodelay(stream)
        return stream

    async def aclose(self) -> None:
        await self._listener.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._listener.extra_attributes


class TcpTransport(Transport):
    """``tcp://HOST:PORT`` over anyio sockets."""

    scheme = "tcp"

    def __init__(self, config: TcpConfig | None = None) -> None:
        self.config = config if config is not None else TcpConfig()

    async def dial(self, address: str | TransportAddress) -> ByteStream:
        target = _tcp_address(address)
        if target.port == 0:
            raise InvalidAddressError(f"cannot dial port 0: {target}")
        try:
            with anyio.fail_after(self.config.connect_timeout):
                stream = await anyio.connect_tcp(target.host, target.port)
        except TimeoutError as exc:
            raise DialError(f"connecting to {target} timed out") from exc
        except OSError as exc:
            raise DialError(f"cannot connect to {target}: {exc}") from exc
        _set_nodelay(stream)
        return stream

    async def listen(self, address: str | TransportAddress) -> TcpListener:
        target = _tcp_address(address)
        try:
            infos = await anyio.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
            if not infos:
                raise ListenError(f"{target.host!r} resolves to no address")
            bind_host = str(infos[0][4][0])
            multi = await anyio.create_tcp_listener(
                local_host=bind_host, local_port=target.port, backlog=self.config.backlog
            )
        except OSError as exc:
            if isinstance(exc, ListenError):
                raise
            raise ListenError(f"cannot listen on {target}: {exc}") from exc
        sockets = multi.listeners
        if len(sockets) != 1 or not isinstance(sockets[0], SocketListener):
            # An IP literal binds exactly one socket listener; anything else is unexpected.
            await multi.aclose()
            raise ListenError(f"binding {bind_host} produced {len(sockets)} listeners")
        listener = TcpListener(sockets[0])
        logger.debug("listening on %s", listener.address)
        return listener

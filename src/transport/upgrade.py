"""The connection upgrade: wire byte → Noise XX → identity exchange, ready for Yamux.

Theory of operation (wire.md §1.1, §1.2, §1.4; hardening.md §2.7, §3.2)
-----------------------------------------------------------------------
:class:`Upgrader` turns a fresh transport stream into an authenticated
:class:`UpgradedConnection` in tari's order:

Dialer (:meth:`Upgrader.upgrade_outbound`)
    1. write the network byte (one unframed byte, :func:`~plait.transport.encode_wire_byte`);
    2. Noise XX as *initiator*;
    3. the authenticated remote static key must equal the key we dialled, else
       :class:`~plait.transport.PeerKeyMismatchError` (tari ``DialedPublicKeyMismatch``);
       a banned key is refused with :class:`~plait.transport.PeerBannedError`;
    4. identity exchange: write ours, read theirs.

Listener (:meth:`Upgrader.upgrade_inbound`)
    1. read exactly one byte within ``first_byte_timeout``: our network byte continues; any
       other byte is refused with :class:`~plait.transport.WrongNetworkError` and nothing is
       sent. The liveness byte 0xA7 is refused the same way: plait serves no liveness
       sessions (tari also refuses it when no liveness permit is free; base nodes set
       ``liveness_max_sessions = 0``);
    2. Noise XX as *responder*;
    3. a banned remote key is refused with :class:`~plait.transport.PeerBannedError` right
       after Noise, *before* the identity exchange, so a banned peer never learns our identity;
    4. identity exchange.

In both directions a connection to ourselves (the remote key is our own) is refused with
:class:`SelfConnectionError`. The dialer becomes the Yamux client (odd stream ids); build the
multiplexer with :meth:`UpgradedConnection.muxer`.

Deadlines. Every step has its own: ``first_byte_timeout`` for the wire byte,
``NoiseConfig.handshake_timeout`` (overall, not per read) for Noise
(:class:`~plait.noise.HandshakeTimeoutError`), ``IdentityConfig.timeout`` for the peer's
identity frame (:class:`~plait.transport.IdentityTimeoutError`). Around all of it runs one
overall pre-authentication deadline, ``upgrade_timeout``: a peer that drips bytes just under
each step's limit is cut off there (:class:`~plait.transport.UpgradeTimeoutError`). On every
failure, cancellation included, the transport stream is closed before the error propagates.
A stream that ends or breaks mid-upgrade outside Noise raises :class:`UpgradeClosedError`.

Bans (wire.md §1.4.5). Only an identity authenticated by Noise is ever banned. When the
identity exchange fails with an error whose ``ban`` tier is not ``NONE`` (oversized or
undecodable message, too many protocols or addresses, unsupported version, timeout,
truncation) the upgrader reports ``on_offence(remote_key, tier, error)`` and re-raises.

Bounded upgrading. :class:`UpgradingListener` accepts from a transport listener and runs each
upgrade in its own task. At most ``max_upgrading`` upgrades run at once (a semaphore shared
by every listener of a node): **at the cap the listener stops accepting** until a slot frees,
as tari's BoundedExecutor does, so further connections wait in the kernel's accept backlog
and an idle connection holds a slot no longer than the step deadlines allow.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import anyio
from anyio.abc import SocketAttribute

from ..errors import BanTier, PlaitError
from ..muxer import MuxedConnection, YamuxConfig
from ..noise import NoiseConfig, NoiseStream, StaticKeypair
from ._identity import IdentityConfig, PeerIdentity
from .errors import (
    IdentityTimeoutError,
    PeerBannedError,
    PeerKeyMismatchError,
    TooManyConnectionsFromHostError,
    TransportError,
    TransportProtocolViolation,
    UpgradeTimeoutError,
    WrongNetworkError,
)
from .identity_exchange import exchange_identity
from .memory import MemoryStream
from .wire_mode import (
    DEFAULT_NETWORK_BYTE,
    WireMode,
    classify_wire_byte,
    encode_wire_byte,
    validate_network_byte,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from anyio.abc import ByteStream, TaskGroup

    from .base import TransportListener

__all__ = (
    "DEFAULT_FIRST_BYTE_TIMEOUT",
    "DEFAULT_MAX_UPGRADING",
    "DEFAULT_NOISE_HANDSHAKE_TIMEOUT",
    "DEFAULT_UPGRADE_TIMEOUT",
    "SelfConnectionError",
    "UpgradeClosedError",
    "UpgradeConfig",
    "UpgradedConnection",
    "Upgrader",
    "UpgradingListener",
    "describe_remote",
)

logger = logging.getLogger(__name__)

#: tari#5728 cut time_to_first_byte to 3 s: well below a dialer's Noise deadline (6 s), so
#: idle connections holding every upgrade slot free them before honest dials time out.
DEFAULT_FIRST_BYTE_TIMEOUT = 3.0
DEFAULT_NOISE_HANDSHAKE_TIMEOUT = 6.0  # tari noise_handshake_recv_timeout; plait's is overall
DEFAULT_UPGRADE_TIMEOUT = 10.0  # hardening.md §2.7: pre-authentication deadline, overall
DEFAULT_MAX_UPGRADING = 100  # tari max_simultaneous_inbound_connects


class UpgradeClosedError(TransportError, ConnectionError):
    """The connection ended or broke during the upgrade, outside the Noise handshake
    (before the wire byte, or during the identity exchange). Not a ban offence."""


class SelfConnectionError(TransportError):
    """The authenticated remote key is our own: we dialled ourselves."""


class _OffenceHook(Protocol):
    def __call__(self, key: bytes, tier: BanTier, error: BaseException, /) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class UpgradeConfig:
    """Deadlines and limits of the upgrade (tari ``ConnectionManagerConfig`` code values)."""

    network_byte: int = DEFAULT_NETWORK_BYTE
    """The wire-mode byte the dialer writes and the listener requires (wire.md §1.2)."""
    first_byte_timeout: float = DEFAULT_FIRST_BYTE_TIMEOUT
    """Seconds the listener waits for the wire byte."""
    noise_handshake_timeout: float = DEFAULT_NOISE_HANDSHAKE_TIMEOUT
    """Seconds for the whole Noise handshake (overall, not per read)."""
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    """Identity-exchange limits and its read timeout (``IdentityConfig.timeout``)."""
    upgrade_timeout: float = DEFAULT_UPGRADE_TIMEOUT
    """Seconds for the whole pre-authentication phase: wire byte, Noise and identity."""

    def __post_init__(self) -> None:
        validate_network_byte(self.network_byte)
        for name in ("first_byte_timeout", "noise_handshake_timeout", "upgrade_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class UpgradedConnection:
    """An authenticated connection, ready for Yamux."""

    stream: NoiseStream
    """The secured stream; Yamux runs on it."""
    remote_key: bytes
    """The peer's 32-byte static key, authenticated by Noise: its identity."""
    identity: PeerIdentity
    """What the peer advertised in the identity exchange."""
    is_client: bool
    """True on the dialer: the Yamux client (odd stream ids)."""
    remote_address: str
    """Where the peer is: the dialled address, or the remote end of an accepted stream."""

    def muxer(self, config: YamuxConfig | None = None) -> MuxedConnection:
        """The Yamux session for this connection (not started: enter it with ``async with``)."""
        return MuxedConnection(self.stream, is_client=self.is_client, config=config)


def _remote_socket(stream: ByteStream) -> tuple[str, int] | None:
    """The remote ``(IP, port)`` of a socket stream, else ``None``."""
    if isinstance(stream, MemoryStream):
        return None
    remote = stream.extra(SocketAttribute.remote_address, None)
    if isinstance(remote, tuple) and len(remote) >= 2:
        return str(remote[0]), int(remote[1])
    return None


def describe_remote(stream: ByteStream) -> str:
    """A printable address of the remote end of ``stream``.

    ``tcp://IP:PORT`` for a TCP stream, ``memory://NAME`` for a memory stream, else ``?``.
    """
    if isinstance(stream, MemoryStream):
        return f"memory://{stream.remote_name}"
    remote = _remote_socket(stream)
    if remote is None:
        return "?"
    host, port = remote
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


@contextmanager
def _closed_as_upgrade_error(step: str) -> Iterator[None]:
    try:
        yield
    except anyio.EndOfStream:
        raise UpgradeClosedError(f"the peer closed the connection {step}") from None
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
        raise UpgradeClosedError(f"the connection broke {step}") from exc


class Upgrader:
    """Runs the upgrade of wire.md §1.1 on transport streams (module docstring).

    :param static_key: our Noise static key pair (its public half is our identity).
    :param local_identity: what we advertise, or a callable returning it for each upgrade
        (protocols and addresses may change while the node runs).
    :param config: deadlines and limits.
    :param is_banned: called with an authenticated remote key; True refuses the connection.
    :param on_offence: called with ``(remote_key, tier, error)`` when the identity exchange
        fails with a ban-worthy error.
    """

    def __init__(
        self,
        static_key: StaticKeypair,
        local_identity: PeerIdentity | Callable[[], PeerIdentity],
        *,
        config: UpgradeConfig | None = None,
        is_banned: Callable[[bytes], bool] | None = None,
        on_offence: _OffenceHook | None = None,
    ) -> None:
        self.config = config if config is not None else UpgradeConfig()
        self._noise = NoiseConfig(
            static_key=static_key, handshake_timeout=self.config.noise_handshake_timeout
        )
        self._local_key = static_key.public
        self._local_identity = local_identity
        self._is_banned = is_banned
        self._on_offence = on_offence
        self._wire_byte = encode_wire_byte(self.config.network_byte)
        self._upgrading = 0

    @property
    def upgrading(self) -> int:
        """Upgrades in progress right now, both directions."""
        return self._upgrading

    async def upgrade_outbound(
        self, stream: ByteStream, *, expected_key: bytes | None = None, remote_address: str = ""
    ) -> UpgradedConnection:
        """Upgrade a stream we dialled (we are the Noise initiator and the Yamux client).

        :param expected_key: the 32-byte key of the peer we meant to reach, if known.
        :param remote_address: the dialled address, recorded on the result.
        :raises PeerKeyMismatchError: the authenticated key is not ``expected_key``.
        :raises PeerBannedError: the authenticated key is banned.
        :raises SelfConnectionError: we reached ourselves.
        :raises NoiseError: the handshake failed or timed out.
        :raises TransportProtocolViolation, IdentityTimeoutError: the identity exchange failed.
        :raises UpgradeClosedError: the connection ended outside the handshake.
        :raises UpgradeTimeoutError: the overall deadline passed.
        """
        return await self._run(
            stream, self._outbound(stream, expected_key, remote_address or describe_remote(stream))
        )

    async def upgrade_inbound(self, stream: ByteStream) -> UpgradedConnection:
        """Upgrade an accepted stream (we are the Noise responder and the Yamux server).

        :raises WrongNetworkError: the first byte is not our network byte.
        :raises PeerBannedError: the authenticated key is banned (before the identity exchange).
        :raises SelfConnectionError: the peer is ourselves.
        :raises NoiseError: the handshake failed or timed out.
        :raises TransportProtocolViolation, IdentityTimeoutError: the identity exchange failed.
        :raises UpgradeClosedError: the connection ended outside the handshake.
        :raises UpgradeTimeoutError: no wire byte in time, or the overall deadline passed.
        """
        return await self._run(stream, self._inbound(stream))

    async def _run(
        self, stream: ByteStream, steps: Awaitable[UpgradedConnection]
    ) -> UpgradedConnection:
        self._upgrading += 1
        try:
            with anyio.move_on_after(self.config.upgrade_timeout):
                return await steps
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise
        finally:
            self._upgrading -= 1
        await anyio.aclose_forcefully(stream)
        raise UpgradeTimeoutError(
            f"the connection upgrade did not finish within {self.config.upgrade_timeout} s"
        )

    async def _outbound(
        self, stream: ByteStream, expected_key: bytes | None, remote_address: str
    ) -> UpgradedConnection:
        with _closed_as_upgrade_error("before the handshake"):
            await stream.send(self._wire_byte)
        secure = await NoiseStream.wrap(stream, self._noise, initiator=True)
        key = secure.remote_static_key
        if expected_key is not None and key != expected_key:
            raise PeerKeyMismatchError(expected_key, key)
        self._check_key(key)
        identity = await self._exchange(secure, key)
        return UpgradedConnection(
            stream=secure, remote_key=key, identity=identity, is_client=True,
            remote_address=remote_address,
        )

    async def _inbound(self, stream: ByteStream) -> UpgradedConnection:
        with anyio.move_on_after(self.config.first_byte_timeout) as scope:
            with _closed_as_upgrade_error("before sending the wire byte"):
                first = await stream.receive(1)
        if scope.cancelled_caught:
            raise UpgradeTimeoutError(
                f"no wire-mode byte within {self.config.first_byte_timeout} s"
            )
        mode = classify_wire_byte(first[0], network_byte=self.config.network_byte)
        if mode is WireMode.LIVENESS:
            raise WrongNetworkError(first[0], self.config.network_byte)
        secure = await NoiseStream.wrap(stream, self._noise, initiator=False)
        key = secure.remote_static_key
        self._check_key(key)
        identity = await self._exchange(secure, key)
        return UpgradedConnection(
            stream=secure, remote_key=key, identity=identity, is_client=False,
            remote_address=describe_remote(stream),
        )

    def _check_key(self, key: bytes) -> None:
        if key == self._local_key:
            raise SelfConnectionError("the remote static key is our own")
        if self._is_banned is not None and self._is_banned(key):
            raise PeerBannedError(f"peer {key.hex()} is banned")

    async def _exchange(self, secure: NoiseStream, key: bytes) -> PeerIdentity:
        local = self._local_identity
        if callable(local):
            local = local()
        try:
            with _closed_as_upgrade_error("during the identity exchange"):
                return await exchange_identity(secure, local, config=self.config.identity)
        except (TransportProtocolViolation, IdentityTimeoutError) as exc:
            if exc.ban is not BanTier.NONE and self._on_offence is not None:
                self._on_offence(key, exc.ban, exc)
            raise


class UpgradingListener:
    """Accepts from a transport listener and upgrades each connection in its own task.

    :param listener: the transport listener (closed by :meth:`aclose`).
    :param upgrader: runs each inbound upgrade.
    :param slots: bounds the upgrades in progress; shared by every listener of a node. The
        accept loop takes a slot *before* accepting, so at the cap it stops accepting.
    :param on_error: called with ``(error, remote_address)`` for every failed upgrade
        (after it was logged at DEBUG); a pre-authentication failure is routine noise.
    :param max_per_host: at most this many connections (upgrading, then running the handler)
        from one source IP address at a time; a further one is closed at accept, before any
        byte is read, and reported to ``on_error`` as
        :class:`~plait.transport.TooManyConnectionsFromHostError`. ``None``: no cap. Streams
        without an IP address (the memory transport) are not counted.
    :param hosts: the per-host counts, shared by every listener of a node (a new dict when
        omitted).
    """

    def __init__(
        self,
        listener: TransportListener,
        upgrader: Upgrader,
        slots: anyio.Semaphore,
        *,
        on_error: Callable[[BaseException, str], None] | None = None,
        max_per_host: int | None = None,
        hosts: dict[str, int] | None = None,
    ) -> None:
        if max_per_host is not None and max_per_host < 1:
            raise ValueError("max_per_host must be at least 1 or None")
        self.listener = listener
        self.upgrader = upgrader
        self._slots = slots
        self._on_error = on_error
        self._max_per_host = max_per_host
        self._hosts: dict[str, int] = hosts if hosts is not None else {}
        self._active = 0
        self._serving = False

    @property
    def active(self) -> int:
        """Tasks this listener started that are still running (each upgrade, and then the
        handler it runs)."""
        return self._active

    @property
    def serving(self) -> bool:
        """True while :meth:`serve` is accepting."""
        return self._serving

    async def serve(
        self, handler: Callable[[UpgradedConnection], Awaitable[None]], task_group: TaskGroup
    ) -> None:
        """Accept until the listener closes; run ``handler`` on each upgraded connection in
        the upgrade's own task (started in ``task_group``)."""
        slots = self._slots
        self._serving = True
        try:
            await self._accept_loop(slots, handler, task_group)
        finally:
            self._serving = False

    async def _accept_loop(
        self,
        slots: anyio.Semaphore,
        handler: Callable[[UpgradedConnection], Awaitable[None]],
        task_group: TaskGroup,
    ) -> None:
        while True:
            await slots.acquire()
            try:
                stream = await self.listener.accept()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                slots.release()
                return
            except OSError as exc:  # e.g. EMFILE: back off instead of spinning
                slots.release()
                logger.warning("accept on %s failed: %s", self.listener.address, exc)
                await anyio.sleep(0.1)
                continue
            except BaseException:
                slots.release()
                raise
            remote = _remote_socket(stream) if self._max_per_host is not None else None
            host = remote[0] if remote is not None else None
            if host is not None:
                assert self._max_per_host is not None
                count = self._hosts.get(host, 0)
                if count >= self._max_per_host:
                    slots.release()
                    address = describe_remote(stream)  # while the socket is open
                    await anyio.aclose_forcefully(stream)
                    error = TooManyConnectionsFromHostError(
                        f"{host} already holds {count} connections (the cap)"
                    )
                    logger.debug("refused a connection at accept: %s", error)
                    if self._on_error is not None:
                        self._on_error(error, address)
                    continue
                self._hosts[host] = count + 1
            task_group.start_soon(self._upgrade_one, stream, handler, host)

    async def _upgrade_one(
        self,
        stream: ByteStream,
        handler: Callable[[UpgradedConnection], Awaitable[None]],
        host: str | None = None,
    ) -> None:
        self._active += 1
        try:
            await self._upgrade_and_handle(stream, handler)
        finally:
            self._active -= 1
            if host is not None:
                left = self._hosts[host] - 1
                if left:
                    self._hosts[host] = left
                else:
                    del self._hosts[host]

    async def _upgrade_and_handle(
        self, stream: ByteStream, handler: Callable[[UpgradedConnection], Awaitable[None]]
    ) -> None:
        remote = describe_remote(stream)  # while the socket is open
        try:
            upgraded = await self.upgrader.upgrade_inbound(stream)
        except PlaitError as exc:
            logger.debug("inbound upgrade from %s failed: %s", remote, exc)
            if self._on_error is not None:
                self._on_error(exc, remote)
            return
        except Exception as exc:  # a bug, not the peer: keep the listener alive
            logger.exception("inbound upgrade from %s raised", remote)
            if self._on_error is not None:
                self._on_error(exc, remote)
            return
        finally:
            self._slots.release()
        await handler(upgraded)

    async def aclose(self) -> None:
        """Close the transport listener; :meth:`serve` returns."""
        await self.listener.aclose()

"""Sans-IO identity exchange: the frame codec and plait's validation (wire.md §1.4).

Theory of operation
-------------------
Once Noise is up, each side writes one frame and reads the peer's::

    u8 version ‖ u16 LITTLE-endian length ‖ PeerIdentityMsg (protobuf, ≤ 1024 bytes)

:func:`encode_identity_frame` builds ours (refusing, like tari, to send more than 1024
bytes). :class:`IdentityFrameReader` parses theirs incrementally, in tari's order:

1. version above ours → :class:`IdentityVersionError` (a lower version is accepted);
2. length above 1024 → :class:`IdentityMessageTooLargeError`, decided from the 3-byte header
   alone, before a byte of the body is awaited or decoded;
3. read exactly ``length`` bytes (EOF first → :class:`IdentityTruncatedError`);
4. decode the protobuf (:class:`IdentityDecodeError` on failure);
5. validate (:func:`validate_identity_message`) and convert to a :class:`PeerIdentity`.

Validation follows wire.md §1.4.3 as plait's default suite applies it, in tari's order:
(1) at most 20 protocols, (2) each id at most 50 bytes, [(3) at least one address, only
with ``require_addresses``], (4) at most 5 addresses, (5) user agent at most 50 UTF-8 bytes
— all :class:`PeerValidationError`, 2 h ban —; (6) every address decodes as a multiaddr and
(7) no unknown feature bit — :class:`InvalidPeerDataError`, no ban, as tari's conversion
errors —; (9) every address passes tari's ``validate_address``
(:func:`~plait.transport._multiaddr.validate_peer_address`) — :class:`PeerValidationError`.
Check (8), the identity signature, belongs to a tari-compatible suite: a signature present
in the message is ignored here, an absent one is accepted.

The reader reads at most :attr:`IdentityFrameReader.next_read_size` bytes per call when the
adapter wants no over-read (Yamux bytes follow the frame immediately on the same stream);
any surplus is kept in :attr:`IdentityFrameReader.trailing_data`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from google.protobuf.message import DecodeError

from .._buffer import ReceiveBuffer
from ..identity import KNOWN_PEER_FEATURE_BITS, PeerFeatures
from ._multiaddr import Multiaddr, MultiaddrError, validate_peer_address
from .errors import (
    IdentityDecodeError,
    IdentityMessageTooLargeError,
    IdentityTruncatedError,
    IdentityVersionError,
    InvalidPeerDataError,
    PeerValidationError,
    TransportProtocolViolation,
)
from .proto import identity_pb2

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = (
    "DEFAULT_IDENTITY_TIMEOUT",
    "IDENTITY_HEADER_SIZE",
    "IDENTITY_PROTOCOL_VERSION",
    "MAX_IDENTITY_MESSAGE_SIZE",
    "IdentityConfig",
    "IdentityFrameReader",
    "PeerIdentity",
    "decode_identity_message",
    "encode_identity_frame",
    "validate_identity_message",
)

IDENTITY_PROTOCOL_VERSION = 0  # tari MAJOR_NETWORK_VERSION: 0 on every network
MAX_IDENTITY_MESSAGE_SIZE = 1024  # tari MAX_IDENTITY_PROTOCOL_MSG_SIZE, protocol/identity.rs
DEFAULT_IDENTITY_TIMEOUT = 10.0  # tari: reading the peer's frame, protocol/identity.rs
_HEADER = struct.Struct("<BH")  # u8 version, u16 little-endian length
IDENTITY_HEADER_SIZE = _HEADER.size


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityConfig:
    """Limits of the identity exchange (tari ``PeerValidatorConfig::default()`` values)."""

    version: int = IDENTITY_PROTOCOL_VERSION
    """Our major network version: sent in our frame; a peer's higher version is refused."""
    max_message_size: int = MAX_IDENTITY_MESSAGE_SIZE
    """Largest ``PeerIdentityMsg`` accepted or sent, in bytes."""
    max_supported_protocols: int = 20
    """Most protocol ids a peer may advertise."""
    max_protocol_id_length: int = 50
    """Longest advertised protocol id, in bytes."""
    max_addresses: int = 5
    """Most addresses a peer may advertise (tari ``max_permitted_peer_addresses_per_claim``)."""
    max_user_agent_length: int = 50
    """Longest user agent, in UTF-8 bytes."""
    allow_test_addresses: bool = False
    """Accept ``/memory/N`` and unspecified IPs in advertised addresses (tari test mode)."""
    require_addresses: bool = False
    """Refuse an identity with no address (tari's check 3; off in plait's default suite,
    where a node that only dials advertises nothing)."""
    timeout: float = DEFAULT_IDENTITY_TIMEOUT
    """Seconds an adapter allows for reading the peer's whole frame."""

    def __post_init__(self) -> None:
        if not 0 <= self.version <= 0xFF:
            raise ValueError(f"version must fit in a byte, got {self.version!r}")
        if not 1 <= self.max_message_size <= 0xFFFF:
            raise ValueError(f"max_message_size must be in 1..65535, got {self.max_message_size}")
        for name in (
            "max_supported_protocols", "max_protocol_id_length", "max_addresses",
            "max_user_agent_length",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be positive, got {self.timeout!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerIdentity:
    """What a node tells its peer about itself in the identity exchange (wire.md §1.4.2).

    The key is not here: Noise authenticates it.
    """

    addresses: tuple[Multiaddr, ...] = ()
    """Addresses the node can be reached on (never unspecified or ``memory://`` ones)."""
    features: PeerFeatures = PeerFeatures.NONE
    """Feature bits."""
    supported_protocols: tuple[bytes, ...] = ()
    """Every protocol id the node serves; a dialler negotiates these optimistically."""
    user_agent: str = ""
    """Free text, e.g. ``plait/0.1.0``."""

    def supports(self, protocol: bytes | str) -> bool:
        """Whether ``protocol`` is in :attr:`supported_protocols` (``str`` as UTF-8)."""
        raw = protocol.encode() if isinstance(protocol, str) else protocol
        return raw in self.supported_protocols


def encode_identity_frame(
    identity: PeerIdentity, *, config: IdentityConfig | None = None
) -> bytes:
    """Our frame: ``u8 version ‖ u16-LE length ‖ PeerIdentityMsg``.

    :raises ValueError: if the message exceeds ``config.max_message_size`` (tari refuses to
        send it: ``InvariantError``).
    """
    config = config if config is not None else IdentityConfig()
    message = identity_pb2.PeerIdentityMsg(
        addresses=[a.to_bytes() for a in identity.addresses],
        features=int(identity.features),
        supported_protocols=list(identity.supported_protocols),
        user_agent=identity.user_agent,
    )
    body = message.SerializeToString(deterministic=True)
    if len(body) > config.max_message_size:
        raise ValueError(
            f"identity message of {len(body)} bytes exceeds {config.max_message_size}"
        )
    return _HEADER.pack(config.version, len(body)) + body


def validate_identity_message(
    message: identity_pb2.PeerIdentityMsg, *, config: IdentityConfig
) -> PeerIdentity:
    """Apply the checks of wire.md §1.4.3 (module docstring) and convert.

    :raises PeerValidationError: a limit is exceeded or an address is not acceptable.
    :raises InvalidPeerDataError: an address does not decode, or unknown feature bits.
    """
    protocols = tuple(message.supported_protocols)
    if len(protocols) > config.max_supported_protocols:
        raise PeerValidationError(
            f"{len(protocols)} protocols advertised, limit {config.max_supported_protocols}",
            seen=len(protocols),
        )
    for protocol in protocols:
        if len(protocol) > config.max_protocol_id_length:
            raise PeerValidationError(
                f"protocol id of {len(protocol)} bytes, limit {config.max_protocol_id_length}",
                seen=protocol[:64],
            )
    raw_addresses = tuple(message.addresses)
    if config.require_addresses and not raw_addresses:
        raise PeerValidationError("the peer advertised no address")
    if len(raw_addresses) > config.max_addresses:
        raise PeerValidationError(
            f"{len(raw_addresses)} addresses advertised, limit {config.max_addresses}",
            seen=len(raw_addresses),
        )
    user_agent = message.user_agent
    agent_size = len(user_agent.encode("utf-8"))
    if agent_size > config.max_user_agent_length:
        raise PeerValidationError(
            f"user agent of {agent_size} bytes, limit {config.max_user_agent_length}",
            seen=user_agent[:64],
        )
    addresses: list[Multiaddr] = []
    for raw in raw_addresses:
        try:
            addresses.append(Multiaddr.from_bytes(raw))
        except MultiaddrError as exc:
            raise InvalidPeerDataError(f"undecodable address: {exc}", seen=raw[:64]) from None
    if message.features & ~KNOWN_PEER_FEATURE_BITS:
        raise InvalidPeerDataError(
            f"unknown feature bits 0x{message.features:x}", seen=message.features
        )
    for address in addresses:
        try:
            validate_peer_address(address, allow_test_addresses=config.allow_test_addresses)
        except MultiaddrError as exc:
            raise PeerValidationError(f"address {address} rejected: {exc}",
                                      seen=str(address)) from None
    return PeerIdentity(
        addresses=tuple(addresses),
        features=PeerFeatures(message.features),
        supported_protocols=protocols,
        user_agent=user_agent,
    )


def decode_identity_message(body: bytes, *, config: IdentityConfig) -> PeerIdentity:
    """Decode and validate a ``PeerIdentityMsg`` body (the frame without its header).

    :raises IdentityMessageTooLargeError: if ``body`` exceeds ``config.max_message_size``.
    :raises IdentityDecodeError: if it is not a valid protobuf message.
    :raises PeerValidationError, InvalidPeerDataError: see :func:`validate_identity_message`.
    """
    if len(body) > config.max_message_size:
        raise IdentityMessageTooLargeError(
            f"identity message of {len(body)} bytes exceeds {config.max_message_size}",
            seen=len(body),
        )
    message = identity_pb2.PeerIdentityMsg()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise IdentityDecodeError(f"malformed identity message: {exc}", seen=body[:64]) from None
    return validate_identity_message(message, config=config)


class IdentityFrameReader:
    """Reads the peer's identity frame incrementally, without I/O.

    Feed bytes to :meth:`receive_data` until it returns the :class:`PeerIdentity`. Every
    error is a :class:`~plait.transport.TransportProtocolViolation` subclass carrying its ban
    tier; after one, the reader is finished and later calls raise ``RuntimeError``.

    :param config: our version and the limits.
    """

    __slots__ = ("_buffer", "_config", "_done", "_length", "_trailing")

    def __init__(self, config: IdentityConfig | None = None) -> None:
        self._config = config if config is not None else IdentityConfig()
        self._buffer = ReceiveBuffer()
        self._length: int | None = None
        self._done = False
        self._trailing = b""

    @property
    def next_read_size(self) -> int:
        """Bytes still missing from the frame (0 once it was returned or failed)."""
        if self._done:
            return 0
        if self._length is None:
            return IDENTITY_HEADER_SIZE - len(self._buffer)
        return self._length - len(self._buffer)

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after the frame (they belong to the next layer)."""
        return self._trailing

    def receive_data(self, data: Buffer) -> PeerIdentity | None:
        """Feed bytes; ``b""`` means EOF.

        :return: the validated identity once the frame is complete, else ``None``.
        :raises TransportProtocolViolation: the subclasses listed in the module docstring.
        """
        if self._done:
            raise RuntimeError("the identity frame was already read")
        try:
            return self._receive(data)
        except TransportProtocolViolation:
            self._done = True
            raise

    def _receive(self, data: Buffer) -> PeerIdentity | None:
        if not memoryview(data).nbytes:
            raise IdentityTruncatedError(
                "the peer closed the stream during the identity exchange",
                seen=len(self._buffer),
            )
        self._buffer.extend(data)
        if self._length is None:
            if len(self._buffer) < IDENTITY_HEADER_SIZE:
                return None
            version, length = self._buffer.unpack_from(_HEADER)
            if version > self._config.version:
                raise IdentityVersionError(
                    f"identity version {version} is above ours ({self._config.version})",
                    seen=version,
                )
            if length > self._config.max_message_size:
                raise IdentityMessageTooLargeError(
                    f"identity message of {length} bytes exceeds {self._config.max_message_size}",
                    seen=length,
                )
            self._buffer.discard(IDENTITY_HEADER_SIZE)
            self._length = length
        body = self._buffer.maybe_extract(self._length)
        if body is None:
            return None
        self._done = True
        self._trailing = self._buffer.extract_all()
        return decode_identity_message(body, config=self._config)

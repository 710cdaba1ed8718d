"""plait.transport: transports, the network byte and the identity exchange.

- :class:`Transport` implementations: :class:`TcpTransport` (``tcp://HOST:PORT``) and
  :class:`MemoryNetwork` (``memory://NAME``), producing ``anyio.abc.ByteStream`` objects;
- the wire-mode byte (:mod:`~plait.transport.wire_mode`, wire.md §1.2);
- the identity exchange: :class:`PeerIdentity`, its sans-IO codec and
  :func:`exchange_identity` (wire.md §1.4);
- binary multiaddrs (wire.md §5.4) and the transport errors with their ban tiers;
- the connection upgrade (:mod:`~plait.transport.upgrade`): :class:`Upgrader`,
  :class:`UpgradingListener`, :class:`UpgradeConfig`, :class:`UpgradedConnection`.
"""

from __future__ import annotations

from ._identity import DEFAULT_IDENTITY_TIMEOUT as DEFAULT_IDENTITY_TIMEOUT
from ._identity import IDENTITY_PROTOCOL_VERSION as IDENTITY_PROTOCOL_VERSION
from ._identity import MAX_IDENTITY_MESSAGE_SIZE as MAX_IDENTITY_MESSAGE_SIZE
from ._identity import IdentityConfig as IdentityConfig
from ._identity import IdentityFrameReader as IdentityFrameReader
from ._identity import PeerIdentity as PeerIdentity
from ._identity import decode_identity_message as decode_identity_message
from ._identity import encode_identity_frame as encode_identity_frame
from ._multiaddr import Multiaddr as Multiaddr
from ._multiaddr import MultiaddrError as MultiaddrError
from ._multiaddr import MultiaddrProtocol as MultiaddrProtocol
from ._multiaddr import OnionAddress as OnionAddress
from ._multiaddr import validate_peer_address as validate_peer_address
from .address import MemoryAddress as MemoryAddress
from .address import TcpAddress as TcpAddress
from .address import TransportAddress as TransportAddress
from .address import parse_address as parse_address
from .base import Transport as Transport
from .base import TransportListener as TransportListener
from .errors import BanTier as BanTier
from .errors import DialError as DialError
from .errors import IdentityDecodeError as IdentityDecodeError
from .errors import IdentityMessageTooLargeError as IdentityMessageTooLargeError
from .errors import IdentityTimeoutError as IdentityTimeoutError
from .errors import IdentityTruncatedError as IdentityTruncatedError
from .errors import IdentityVersionError as IdentityVersionError
from .errors import InvalidAddressError as InvalidAddressError
from .errors import InvalidPeerDataError as InvalidPeerDataError
from .errors import ListenError as ListenError
from .errors import PeerBannedError as PeerBannedError
from .errors import PeerKeyMismatchError as PeerKeyMismatchError
from .errors import PeerValidationError as PeerValidationError
from .errors import TooManyConnectionsFromHostError as TooManyConnectionsFromHostError
from .errors import TransportError as TransportError
from .errors import TransportProtocolViolation as TransportProtocolViolation
from .errors import UpgradeTimeoutError as UpgradeTimeoutError
from .errors import WrongNetworkError as WrongNetworkError
from .identity_exchange import exchange_identity as exchange_identity
from .memory import MemoryListener as MemoryListener
from .memory import MemoryNetwork as MemoryNetwork
from .memory import MemoryStream as MemoryStream
from .memory import MemoryTransportConfig as MemoryTransportConfig
from .tcp import TcpConfig as TcpConfig
from .tcp import TcpListener as TcpListener
from .tcp import TcpTransport as TcpTransport
from .upgrade import DEFAULT_FIRST_BYTE_TIMEOUT as DEFAULT_FIRST_BYTE_TIMEOUT
from .upgrade import DEFAULT_MAX_UPGRADING as DEFAULT_MAX_UPGRADING
from .upgrade import DEFAULT_NOISE_HANDSHAKE_TIMEOUT as DEFAULT_NOISE_HANDSHAKE_TIMEOUT
from .upgrade import DEFAULT_UPGRADE_TIMEOUT as DEFAULT_UPGRADE_TIMEOUT
from .upgrade import SelfConnectionError as SelfConnectionError
from .upgrade import UpgradeClosedError as UpgradeClosedError
from .upgrade import UpgradeConfig as UpgradeConfig
from .upgrade import UpgradedConnection as UpgradedConnection
from .upgrade import Upgrader as Upgrader
from .upgrade import UpgradingListener as UpgradingListener
from .wire_mode import DEFAULT_NETWORK_BYTE as DEFAULT_NETWORK_BYTE
from .wire_mode import LIVENESS_BYTE as LIVENESS_BYTE
from .wire_mode import Network as Network
from .wire_mode import WireMode as WireMode
from .wire_mode import classify_wire_byte as classify_wire_byte
from .wire_mode import encode_wire_byte as encode_wire_byte
from .wire_mode import validate_network_byte as validate_network_byte

__all__ = (
    "DEFAULT_FIRST_BYTE_TIMEOUT",
    "DEFAULT_IDENTITY_TIMEOUT",
    "DEFAULT_MAX_UPGRADING",
    "DEFAULT_NETWORK_BYTE",
    "DEFAULT_NOISE_HANDSHAKE_TIMEOUT",
    "DEFAULT_UPGRADE_TIMEOUT",
    "IDENTITY_PROTOCOL_VERSION",
    "LIVENESS_BYTE",
    "MAX_IDENTITY_MESSAGE_SIZE",
    "BanTier",
    "DialError",
    "IdentityConfig",
    "IdentityDecodeError",
    "IdentityFrameReader",
    "IdentityMessageTooLargeError",
    "IdentityTimeoutError",
    "IdentityTruncatedError",
    "IdentityVersionError",
    "InvalidAddressError",
    "InvalidPeerDataError",
    "ListenError",
    "MemoryAddress",
    "MemoryListener",
    "MemoryNetwork",
    "MemoryStream",
    "MemoryTransportConfig",
    "Multiaddr",
    "MultiaddrError",
    "MultiaddrProtocol",
    "Network",
    "OnionAddress",
    "PeerBannedError",
    "TooManyConnectionsFromHostError",
    "PeerIdentity",
    "PeerKeyMismatchError",
    "PeerValidationError",
    "SelfConnectionError",
    "TcpAddress",
    "TcpConfig",
    "TcpListener",
    "TcpTransport",
    "Transport",
    "TransportAddress",
    "TransportError",
    "TransportListener",
    "TransportProtocolViolation",
    "UpgradeClosedError",
    "UpgradeConfig",
    "UpgradeTimeoutError",
    "UpgradedConnection",
    "Upgrader",
    "UpgradingListener",
    "WireMode",
    "WrongNetworkError",
    "classify_wire_byte",
    "decode_identity_message",
    "encode_identity_frame",
    "encode_wire_byte",
    "exchange_identity",
    "parse_address",
    "validate_network_byte",
    "validate_peer_address",
)

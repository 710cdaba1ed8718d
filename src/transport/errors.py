"""Errors of the transport layer: dialling, listening, the network byte, the identity exchange.

Two axes (style.md §7): every class here is a :class:`TransportError`; those caused by the
remote peer also derive from :class:`~plait.errors.ProtocolViolation` through
:class:`TransportProtocolViolation`. Each violation states, as the class attribute ``ban``,
the :class:`BanTier` tari applies to the offence (wire.md §1.4.5), so the node applies the
ban without a lookup table. Bans apply only to an identity authenticated by Noise.
"""

from __future__ import annotations

from typing import ClassVar

from ..errors import BanTier, PlaitError, ProtocolViolation

__all__ = (
    "BanTier",
    "DialError",
    "IdentityDecodeError",
    "IdentityMessageTooLargeError",
    "IdentityTimeoutError",
    "IdentityTruncatedError",
    "IdentityVersionError",
    "InvalidAddressError",
    "InvalidPeerDataError",
    "ListenError",
    "PeerBannedError",
    "PeerKeyMismatchError",
    "PeerValidationError",
    "TooManyConnectionsFromHostError",
    "TransportError",
    "TransportProtocolViolation",
    "UpgradeTimeoutError",
    "WrongNetworkError",
)


class TransportError(PlaitError):
    """Base class of every transport-layer error."""


class TransportProtocolViolation(TransportError, ProtocolViolation):
    """The remote peer broke the transport or identity-exchange protocol."""

    ban: ClassVar[BanTier] = BanTier.LONG
    """The ban tari applies for this offence."""


class WrongNetworkError(TransportProtocolViolation):
    """The first byte of an inbound connection was neither our network byte nor liveness.

    tari shuts the socket down without a reply (wire.md §1.1, listener step 2). Raised before
    any authentication, so it never leads to a ban.
    """

    ban = BanTier.NONE

    def __init__(self, received: int, expected: int) -> None:
        super().__init__(
            f"wire-mode byte 0x{received:02x} is not this node's network byte 0x{expected:02x}",
            seen=received,
        )
        self.received = received
        self.expected = expected


class IdentityVersionError(TransportProtocolViolation):
    """The identity frame's version is above ours (tari ``UnsupportedProtocolVersion``)."""

    ban = BanTier.SHORT


class IdentityMessageTooLargeError(TransportProtocolViolation):
    """The identity frame announces more than 1024 bytes (tari ``MaxMsgSizeExceeded``)."""

    ban = BanTier.LONG


class IdentityDecodeError(TransportProtocolViolation):
    """The identity message is not a valid ``PeerIdentityMsg`` (tari ``ProtobufDecodeError``)."""

    ban = BanTier.LONG


class IdentityTruncatedError(TransportProtocolViolation):
    """The peer closed the stream inside the identity frame (``PeerUnexpectedCloseConnection``)."""

    ban = BanTier.SHORT


class IdentityTimeoutError(TransportError, TimeoutError):
    """The peer's identity frame did not arrive in time (tari ``Timeout``: 2 min ban).

    A slow peer is not provably malicious, so this is not a protocol violation, but tari
    still bans it briefly; the tier is the class attribute ``ban`` as on the violations.
    """

    ban: ClassVar[BanTier] = BanTier.SHORT
    """The ban tari applies."""


class PeerValidationError(TransportProtocolViolation):
    """The identity message breaks a validation limit (tari ``PeerValidatorError``).

    Too many protocols or addresses, a protocol id or user agent too long, or an address that
    fails tari's ``validate_address`` rules (wire.md §1.4.3 checks 1, 2, 4, 5, 9).
    """

    ban = BanTier.LONG


class InvalidPeerDataError(TransportProtocolViolation):
    """The identity message carries undecodable multiaddr bytes or unknown feature bits.

    tari raises these as ``PeerManagerError`` while converting the message, which carries no
    ban (wire.md §1.4.3 checks 6 and 7, §1.4.5 last row).
    """

    ban = BanTier.NONE


class PeerKeyMismatchError(TransportError):
    """The Noise-authenticated key differs from the key we dialled (``DialedPublicKeyMismatch``).

    :param expected: the 32-byte key we meant to reach.
    :param actual: the 32-byte key the handshake authenticated.
    """

    def __init__(self, expected: bytes, actual: bytes) -> None:
        super().__init__(f"dialled peer {expected.hex()} but authenticated {actual.hex()}")
        self.expected = expected
        self.actual = actual


class PeerBannedError(TransportError):
    """The authenticated peer is banned; the connection is refused before the identity exchange."""


class TooManyConnectionsFromHostError(TransportError):
    """An inbound connection was refused at accept, before any byte was read, because its
    source address already holds ``NodeConfig.max_connections_per_ip`` connections (upgrading
    or established). Not an offence: nothing is banned."""


class UpgradeTimeoutError(TransportError, TimeoutError):
    """The connection upgrade (wire byte, Noise, identity exchange) missed its deadline."""


class InvalidAddressError(TransportError, ValueError):
    """A transport address (``tcp://HOST:PORT``, ``memory://NAME``) could not be parsed."""


class DialError(TransportError, ConnectionError):
    """Dialling failed: nothing listens there, the connection was refused or unreachable."""


class ListenError(TransportError, OSError):
    """Listening failed: the address is in use or cannot be bound."""

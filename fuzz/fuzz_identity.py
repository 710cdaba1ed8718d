"""Fuzz target ``identity``: the identity-exchange frame reader and message decoder
(hardening.md §4, target 5; wire.md §1.4).

Byte 0 picks the limits (strict tari limits or test addresses allowed) and whether the
frame reader (``u8 version ‖ u16 LE length ‖ PeerIdentityMsg``) or the bare message decoder
is fed; byte 1 is the chunk size. Only :class:`~plait.transport.TransportError` subclasses
(PlaitErrors) may escape.
"""

from __future__ import annotations

from _common import Cursor, split, test_one_input
from plait.identity import PeerFeatures
from plait.transport import (
    IdentityConfig,
    IdentityFrameReader,
    Multiaddr,
    PeerIdentity,
    decode_identity_message,
    encode_identity_frame,
)

__all__ = ("SEEDS", "TestOneInput", "run_one")

_CONFIGS = (
    IdentityConfig(),
    IdentityConfig(allow_test_addresses=True, require_addresses=True),
    IdentityConfig(max_message_size=64, max_supported_protocols=2, max_addresses=1),
)


def run_one(data: bytes) -> None:
    cur = Cursor(data)
    selector = cur.byte()
    config = _CONFIGS[selector % len(_CONFIGS)]
    step = cur.byte()
    body = cur.rest()
    if selector & 0x80:
        identity = decode_identity_message(body, config=config)
        assert isinstance(identity, PeerIdentity)
        return
    reader = IdentityFrameReader(config)
    for chunk in [*split(body, step), b""]:
        result = reader.receive_data(chunk)
        if result is not None:
            assert isinstance(result, PeerIdentity)
            assert len(result.supported_protocols) <= config.max_supported_protocols
            assert len(result.addresses) <= config.max_addresses
            assert reader.next_read_size == 0
            return


def TestOneInput(data: bytes) -> None:
    test_one_input(run_one, data)


def _frame(identity: PeerIdentity) -> bytes:
    return encode_identity_frame(identity)


SEEDS: list[bytes] = [
    b"\x00\x00" + _frame(PeerIdentity()),
    b"\x00\x03" + _frame(PeerIdentity(
        addresses=(Multiaddr.from_string("/ip4/10.0.0.1/tcp/7000"),),
        features=PeerFeatures(1),
        supported_protocols=(b"/plait/echo/1", b"t/rpc/1"),
    )),
    b"\x01\x00" + _frame(PeerIdentity(
        addresses=(Multiaddr.from_string("/ip4/127.0.0.1/tcp/1"),),
    )),
    b"\x80\x00" + _frame(PeerIdentity(supported_protocols=(b"a",)))[3:],
    b"\x00\x00\x00\xff\xff",
    b"\x00\x00\x01\x00\x00",
]

"""The defaults that make plait speak tari_comms' wire, pinned so a change is deliberate.

Each value is quoted from the specification (noise.md, wire.md §1–§3, yamux.md): changing one
breaks compatibility with tari peers or a documented limit, so it must fail a test first.
"""

from __future__ import annotations

from plait.muxer import YamuxConfig
from plait.negotiation import NegotiationConfig
from plait.noise import NoiseConfig
from plait.rpc import RpcServerConfig
from plait.transport.wire_mode import DEFAULT_NETWORK_BYTE


def test_noise_defaults_are_taris() -> None:
    config = NoiseConfig()
    assert config.protocol_name == "Noise_XX_25519_ChaChaPoly_BLAKE2b"
    assert config.prologue == b"com.tari.comms.noise.prologue"
    assert config.handshake_timeout == 10.0
    assert config.max_plaintext_size == 65519


def test_negotiation_defaults_are_taris() -> None:
    config = NegotiationConfig()
    assert config.timeout == 10.0
    assert config.max_proposals == 5


def test_yamux_defaults() -> None:
    config = YamuxConfig()
    assert config.initial_window == 256 * 1024
    assert config.max_streams == 512


def test_rpc_and_wire_byte_defaults() -> None:
    assert RpcServerConfig().max_frame_size == 4 * 1024 * 1024
    assert DEFAULT_NETWORK_BYTE == 0xF0

"""plait.noise: the Noise XX secure channel (Noise rev. 34, tari_comms framing).

The sans-IO core (:class:`NoiseConnection`, :class:`HandshakeState`, :class:`CipherState`,
:class:`SymmetricState`) and the anyio adapter :class:`NoiseStream`.
"""

from __future__ import annotations

from ._handshake import PATTERNS as PATTERNS
from ._handshake import HandshakeState as HandshakeState
from ._suite import KeyPair as KeyPair
from ._suite import parse_protocol_name as parse_protocol_name
from ._symmetric import CipherState as CipherState
from ._symmetric import SymmetricState as SymmetricState
from .config import NoiseConfig as NoiseConfig
from .connection import HandshakePhase as HandshakePhase
from .connection import NoiseConnection as NoiseConnection
from .errors import HandshakeTimeoutError as HandshakeTimeoutError
from .errors import NoiseError as NoiseError
from .errors import NoiseProtocolViolation as NoiseProtocolViolation
from .errors import NoiseStateError as NoiseStateError
from .errors import NonceExhaustedError as NonceExhaustedError
from .events import HandshakeCompleted as HandshakeCompleted
from .events import PlaintextReceived as PlaintextReceived
from .keys import StaticKeypair as StaticKeypair
from .stream import NoiseAttribute as NoiseAttribute
from .stream import NoiseStream as NoiseStream

__all__ = (
    "PATTERNS",
    "CipherState",
    "HandshakeCompleted",
    "HandshakePhase",
    "HandshakeState",
    "HandshakeTimeoutError",
    "KeyPair",
    "NoiseAttribute",
    "NoiseConfig",
    "NoiseConnection",
    "NoiseError",
    "NoiseProtocolViolation",
    "NoiseStateError",
    "NoiseStream",
    "NonceExhaustedError",
    "PlaintextReceived",
    "StaticKeypair",
    "SymmetricState",
    "parse_protocol_name",
)

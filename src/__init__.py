"""plait: a peer-to-peer transport stack for Python.

Noise XX over TCP, Yamux multiplexing, per-substream protocol negotiation and an RPC
framework, byte-compatible with the transport core of tari_comms.
"""

from __future__ import annotations

from .errors import PlaitError as PlaitError
from .errors import ProtocolViolation as ProtocolViolation

__all__ = ("PlaitError", "ProtocolViolation", "__version__")

__version__ = "0.1.0"

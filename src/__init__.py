"""plait: a peer-to-peer transport stack for Python.

Noise XX over TCP, Yamux multiplexing, per-substream protocol negotiation and an RPC
framework, byte-compatible with the transport core of tari_comms.

The names an application needs first are here: :class:`Node` (with :class:`NodeConfig` and
:class:`NodeIdentity`), the :class:`PeerConnection` it returns, and its events. Each layer has
its own package: :mod:`plait.noise`, :mod:`plait.muxer`, :mod:`plait.negotiation`,
:mod:`plait.transport`, :mod:`plait.rpc`, :mod:`plait.messaging`; :meth:`Node.stats` returns
:class:`NodeStats` and :mod:`plait.metrics` exports it to Prometheus.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import PlaitError as PlaitError
from .errors import ProtocolViolation as ProtocolViolation
from .identity import NodeIdentity as NodeIdentity
from .node import ConnectionCounts as ConnectionCounts
from .node import ConnectionDirection as ConnectionDirection
from .node import ConnectionFailed as ConnectionFailed
from .node import ConnectionLimitError as ConnectionLimitError
from .node import DisconnectReason as DisconnectReason
from .node import Node as Node
from .node import NodeConfig as NodeConfig
from .node import NodeError as NodeError
from .node import NodeEvent as NodeEvent
from .node import NodeEvents as NodeEvents
from .node import NodeStats as NodeStats
from .node import PeerConnected as PeerConnected
from .node import PeerConnection as PeerConnection
from .node import PeerDisconnected as PeerDisconnected
from .node import PeerStats as PeerStats
from .node import RpcProtocolStats as RpcProtocolStats
from .node import StreamCounts as StreamCounts
from .node import Traffic as Traffic

__all__ = (
    "ConnectionCounts",
    "ConnectionDirection",
    "ConnectionFailed",
    "ConnectionLimitError",
    "DisconnectReason",
    "Node",
    "NodeConfig",
    "NodeError",
    "NodeEvent",
    "NodeEvents",
    "NodeIdentity",
    "NodeStats",
    "PeerConnected",
    "PeerConnection",
    "PeerDisconnected",
    "PeerStats",
    "PlaitError",
    "ProtocolViolation",
    "RpcProtocolStats",
    "StreamCounts",
    "Traffic",
    "__version__",
)

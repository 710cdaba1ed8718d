"""plait.rpc: tari_comms-compatible RPC sessions over a negotiated substream (wire.md §3).

Sans-IO cores: :class:`ClientSessionState` and :class:`ServerSessionState` (one session per
substream: handshake, requests, replies, interrupts, pings), :class:`FrameDecoder` (u32-BE
framing), :class:`SessionLimits` (server admission) and :class:`PoolState` (client pool
bookkeeping). anyio adapters: :class:`RpcClient` and :class:`RpcServer` run sessions over
any negotiated byte stream; :class:`Service` and :func:`rpc` declare services and their typed
clients; the built-in Greeting service is in :mod:`plait.rpc.greeting`. Wire constants live
in :mod:`plait.rpc.status`, errors in :mod:`plait.rpc.errors`, events in
:mod:`plait.rpc.events`, limits in :mod:`plait.rpc.config`.
"""

from __future__ import annotations

from ._framing import FrameDecoder as FrameDecoder
from ._framing import frame_header as frame_header
from ._limits import AdmissionDecision as AdmissionDecision
from ._limits import Admitted as Admitted
from ._limits import Refused as Refused
from ._limits import SessionLimits as SessionLimits
from ._limits import SessionSlot as SessionSlot
from ._pool_state import FailAcquire as FailAcquire
from ._pool_state import LeaseSession as LeaseSession
from ._pool_state import OpenSession as OpenSession
from ._pool_state import PoolAction as PoolAction
from ._pool_state import PoolState as PoolState
from ._pool_state import PoolStatistics as PoolStatistics
from ._pool_state import WaitForRelease as WaitForRelease
from ._session import ClientSessionPhase as ClientSessionPhase
from ._session import ClientSessionState as ClientSessionState
from ._session import ServerSessionPhase as ServerSessionPhase
from ._session import ServerSessionState as ServerSessionState
from .client import ResponseStream as ResponseStream
from .client import RpcClient as RpcClient
from .config import RPC_MAX_FRAME_SIZE as RPC_MAX_FRAME_SIZE
from .config import PoolConfig as PoolConfig
from .config import RpcClientConfig as RpcClientConfig
from .config import RpcServerConfig as RpcServerConfig
from .config import max_response_payload_size as max_response_payload_size
from .errors import RequestTooLargeError as RequestTooLargeError
from .errors import RpcDeadlineExceeded as RpcDeadlineExceeded
from .errors import RpcError as RpcError
from .errors import RpcHandshakeRejected as RpcHandshakeRejected
from .errors import RpcHandshakeTimeoutError as RpcHandshakeTimeoutError
from .errors import RpcProtocolViolation as RpcProtocolViolation
from .errors import RpcStateError as RpcStateError
from .errors import RpcStatusError as RpcStatusError
from .errors import SessionClosedError as SessionClosedError
from .events import ClientEvent as ClientEvent
from .events import HandshakeTimedOut as HandshakeTimedOut
from .events import InterruptReceived as InterruptReceived
from .events import PingReceived as PingReceived
from .events import PongReceived as PongReceived
from .events import RequestReceived as RequestReceived
from .events import ResponseReceived as ResponseReceived
from .events import ResponseTimedOut as ResponseTimedOut
from .events import RpcEvent as RpcEvent
from .events import ServerEvent as ServerEvent
from .events import SessionAccepted as SessionAccepted
from .events import SessionEnded as SessionEnded
from .events import SessionRejected as SessionRejected
from .pool import RpcClientPool as RpcClientPool
from .server import RpcServer as RpcServer
from .server import RpcServerSessionCounts as RpcServerSessionCounts
from .service import MethodInfo as MethodInfo
from .service import RequestContext as RequestContext
from .service import Service as Service
from .service import ServiceClient as ServiceClient
from .service import rpc as rpc
from .status import RejectReason as RejectReason
from .status import RpcFlags as RpcFlags
from .status import RpcStatus as RpcStatus
from .status import StatusCode as StatusCode

__all__ = (
    "AdmissionDecision",
    "Admitted",
    "ClientEvent",
    "ClientSessionPhase",
    "ClientSessionState",
    "FailAcquire",
    "FrameDecoder",
    "HandshakeTimedOut",
    "InterruptReceived",
    "LeaseSession",
    "MethodInfo",
    "OpenSession",
    "PingReceived",
    "PongReceived",
    "PoolAction",
    "PoolConfig",
    "PoolState",
    "PoolStatistics",
    "RPC_MAX_FRAME_SIZE",
    "Refused",
    "RejectReason",
    "RequestContext",
    "RequestReceived",
    "RequestTooLargeError",
    "ResponseReceived",
    "ResponseStream",
    "ResponseTimedOut",
    "RpcClient",
    "RpcClientConfig",
    "RpcClientPool",
    "RpcDeadlineExceeded",
    "RpcError",
    "RpcEvent",
    "RpcFlags",
    "RpcHandshakeRejected",
    "RpcHandshakeTimeoutError",
    "RpcProtocolViolation",
    "RpcServer",
    "RpcServerSessionCounts",
    "RpcServerConfig",
    "RpcStateError",
    "RpcStatus",
    "RpcStatusError",
    "ServerEvent",
    "ServerSessionPhase",
    "ServerSessionState",
    "Service",
    "ServiceClient",
    "SessionAccepted",
    "SessionClosedError",
    "SessionEnded",
    "SessionLimits",
    "SessionRejected",
    "SessionSlot",
    "StatusCode",
    "WaitForRelease",
    "frame_header",
    "max_response_payload_size",
    "rpc",
)

"""Shared helpers for the sans-IO RPC tests: frame builders and a two-core pair."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from plait.rpc._session import ClientSessionState, ServerSessionState
from plait.rpc.events import ClientEvent, ServerEvent, SessionAccepted
from plait.rpc.proto.rpc_pb2 import RpcResponse

if TYPE_CHECKING:
    from google.protobuf.message import Message
    from plait.rpc.config import RpcClientConfig, RpcServerConfig


def frame(message: Message | bytes) -> bytes:
    """``u32 BE length ‖ body`` for a message or raw body."""
    body = message if isinstance(message, bytes) else message.SerializeToString()
    return struct.pack(">I", len(body)) + body


def unframe(data: bytes) -> list[bytes]:
    """Split a byte string made only of whole frames into bodies (asserts nothing is left)."""
    bodies: list[bytes] = []
    offset = 0
    while offset < len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        bodies.append(data[offset + 4 : offset + 4 + length])
        offset += 4 + length
    assert offset == len(data)
    return bodies


def response(request_id: int = 0, status: int = 0, flags: int = 0, payload: bytes = b"") -> bytes:
    """A framed RpcResponse."""
    return frame(RpcResponse(request_id=request_id, status=status, flags=flags, payload=payload))


def open_client(config: RpcClientConfig | None = None, now: float = 0.0) -> ClientSessionState:
    """A client core past its handshake (version 0 accepted)."""
    client = ClientSessionState(config)
    client.initiate(now)
    client.data_to_send()
    assert client.receive_data(frame(b"\x08\x00"), now=now) == [SessionAccepted(version=0)]
    return client


def open_server(config: RpcServerConfig | None = None) -> ServerSessionState:
    """A server core past its handshake."""
    server = ServerSessionState(config)
    assert server.receive_data(frame(b"\x0a\x01\x00")) == [SessionAccepted(version=0)]
    server.data_to_send()
    return server


class CorePair:
    """A client and a server core joined by a fake wire, with optional re-chunking."""

    def __init__(
        self,
        client_config: RpcClientConfig | None = None,
        server_config: RpcServerConfig | None = None,
        *,
        chunk_size: int | None = None,
    ) -> None:
        self.client = ClientSessionState(client_config)
        self.server = ServerSessionState(server_config)
        self.chunk_size = chunk_size
        self.now = 0.0

    def _chunks(self, data: bytes) -> list[bytes]:
        if self.chunk_size is None or not data:
            return [data] if data else []
        return [data[i : i + self.chunk_size] for i in range(0, len(data), self.chunk_size)]

    def to_server(self) -> list[ServerEvent]:
        events: list[ServerEvent] = []
        for chunk in self._chunks(self.client.data_to_send()):
            events.extend(self.server.receive_data(chunk))
        return events

    def to_client(self) -> list[ClientEvent]:
        events: list[ClientEvent] = []
        for chunk in self._chunks(self.server.data_to_send()):
            events.extend(self.client.receive_data(chunk, now=self.now))
        return events

    def handshake(self) -> None:
        self.client.initiate(self.now)
        assert self.to_server() == [SessionAccepted(version=0)]
        assert self.to_client() == [SessionAccepted(version=0)]

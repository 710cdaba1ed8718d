"""Fuzz target ``rpc``: RPC framing, the session cores and the protobuf messages behind
them (hardening.md §4, target 4; wire.md §3).

Byte 0 picks the mode, byte 1 the chunk size (and, for the server, how the service answers):

- mode 0: the u32-BE frame decoder with a small maximum;
- mode 1: a server session core is fed the input as a client's bytes; each dispatched
  request is decoded as its Greeting method's request (as the server adapter does) and
  answered as byte 1 says: a reply, stream items, an error, an oversize reply or nothing;
  every byte the core writes must parse back as ``RpcSessionReply`` / ``RpcResponse``;
- mode 2: a client session core past its handshake, with a request (or ping) in flight,
  is fed the input as the server's reply, with its timer run;
- mode 3: a client core in its handshake is fed the input as the server's reply.

Only :class:`~plait.rpc.RpcError` subclasses (PlaitErrors) may escape.
"""

from __future__ import annotations

import struct

from _common import Cursor, split, test_one_input
from google.protobuf.message import DecodeError
from plait.rpc import (
    ClientSessionState,
    FrameDecoder,
    RequestReceived,
    RpcClientConfig,
    RpcServerConfig,
    RpcStatus,
    ServerSessionState,
)
from plait.rpc.greeting import Greeting
from plait.rpc.proto.rpc_pb2 import (
    RpcRequest,
    RpcResponse,
    RpcSession,
    RpcSessionReply,
)

__all__ = ("SEEDS", "TestOneInput", "run_one")

_SERVER_CONFIG = RpcServerConfig(max_frame_size=4096)
_CLIENT_CONFIG = RpcClientConfig(max_frame_size=4096, deadline=10, deadline_grace_period=1,
                                 handshake_timeout=5, max_stale_responses=3)
_SERVICE = Greeting()
_LEN = struct.Struct(">I")


def _frames(data: bytes) -> list[bytes]:
    bodies = []
    pos = 0
    while pos < len(data):
        (length,) = _LEN.unpack_from(data, pos)
        bodies.append(data[pos + 4 : pos + 4 + length])
        pos += 4 + length
    assert pos == len(data), "the core wrote a partial frame"
    return bodies


def _check_server_output(data: bytes, handshake_done: bool) -> bool:
    for body in _frames(data):
        if not handshake_done:
            RpcSessionReply.FromString(body)
            handshake_done = True
        else:
            response = RpcResponse.FromString(body)
            assert 0 <= response.status <= 10 and response.flags in (0, 1, 2)
    return handshake_done


def _server(cur: Cursor, answer: int) -> None:
    core = ServerSessionState(_SERVER_CONFIG)
    handshake_done = False
    for chunk in [*split(cur.rest(), answer % 17 or 1), b""]:
        for event in core.receive_data(chunk):
            if not isinstance(event, RequestReceived):
                continue
            assert _SERVER_CONFIG.min_deadline <= event.deadline <= _SERVER_CONFIG.max_deadline
            found = _SERVICE.method(event.method)
            if found is None:
                core.send_error(event.request_id, RpcStatus.unsupported_method("nope"))
                continue
            info, _ = found
            try:
                info.request_type.FromString(event.payload)
            except DecodeError:
                core.send_error(event.request_id, RpcStatus.bad_request("undecodable"))
                continue
            how = answer >> 5
            if how == 0:
                core.send_response(event.request_id, b"ok")
            elif how == 1:
                core.send_item(event.request_id, b"item")
                core.send_item(event.request_id, b"item")
                core.end_stream(event.request_id)
            elif how == 2:
                core.send_error(event.request_id, RpcStatus.not_found("no"))
            elif how == 3:
                core.send_response(event.request_id, bytes(5000))  # MALFORMED_RESPONSE
            elif how == 4:
                core.abandon_request(event.request_id)
            elif how == 5:
                core.send_item(event.request_id, b"item")  # and keep streaming
            # 6, 7: leave the request in progress
        handshake_done = _check_server_output(core.data_to_send(), handshake_done)
        if core.is_closed:
            return


def _client(cur: Cursor, step: int, *, handshaking: bool) -> None:
    now = 0.0
    core = ClientSessionState(_CLIENT_CONFIG)
    core.initiate(now)
    if not handshaking:
        core.receive_data(_LEN.pack(2) + b"\x08\x00", now=now)
        mode = step >> 6
        if mode == 0:
            core.send_request(1, b"\x0a\x01x", now=now)
        elif mode == 1:
            core.send_request(3, b"", streaming=True, now=now)
        elif mode == 2:
            core.ping(now=now)
        else:
            core.send_request(1, b"", now=now)
            core.interrupt()
            core.send_request(2, b"", now=now)
    for chunk in [*split(cur.rest(), step % 13 or 1), b""]:
        now += 1.0
        core.receive_data(chunk, now=now)
        core.handle_timer(now + 20.0 * (step & 1))
        for body in _frames(core.data_to_send()):
            RpcRequest.FromString(body)
        if core.is_closed:
            return
        if core.is_idle:
            core.send_request(1, b"", now=now)


def _decoder(cur: Cursor, step: int) -> None:
    decoder = FrameDecoder(max_frame_size=step * 8)
    for chunk in split(cur.rest(), step % 11 or 1):
        for body in decoder.feed(chunk):
            assert len(body) <= decoder.max_frame_size
        assert decoder.buffered <= 4 + decoder.max_frame_size + (step % 11 or 1)


def run_one(data: bytes) -> None:
    cur = Cursor(data)
    mode = cur.byte() % 4
    step = cur.byte()
    if mode == 0:
        _decoder(cur, step)
    elif mode == 1:
        _server(cur, step)
    else:
        _client(cur, step, handshaking=mode == 3)


def TestOneInput(data: bytes) -> None:
    test_one_input(run_one, data)


def _f(message: RpcRequest | RpcResponse | RpcSession | RpcSessionReply) -> bytes:
    body = message.SerializeToString()
    return _LEN.pack(len(body)) + body


_HELLO = _f(RpcSession(supported_versions=[0]))
SEEDS: list[bytes] = [
    b"\x00\x08" + _LEN.pack(3) + b"abc" + _LEN.pack(0xFFFFFFFF),
    b"\x01\x00" + _HELLO + _f(RpcRequest(request_id=1, method=1, deadline=10, payload=b"\n\x01x")),
    b"\x01\x20" + _HELLO + _f(RpcRequest(request_id=1, method=3, deadline=10, payload=b"\x08\2")),
    b"\x01\x60" + _HELLO + _f(RpcRequest(request_id=1, method=9, deadline=0))
    + _f(RpcRequest(request_id=2, method=1, deadline=2**64 - 1))
    + _f(RpcRequest(request_id=0, flags=2, deadline=5)),
    b"\x01\xc0" + _HELLO + _f(RpcRequest(request_id=1, method=1, deadline=5))
    + _f(RpcRequest(request_id=1, flags=1, deadline=5)) + _f(RpcRequest(request_id=2, deadline=5)),
    b"\x01\x00" + _HELLO + _LEN.pack(2) + b"\xff\xff",
    b"\x01\x00" + _f(RpcSession(supported_versions=[7])),
    b"\x02\x00" + _f(RpcResponse(request_id=1, flags=1, payload=b"hi")),
    b"\x02\x40" + _f(RpcResponse(request_id=1, payload=b"a"))
    + _f(RpcResponse(request_id=1, flags=1)),
    b"\x02\x80" + _f(RpcResponse(request_id=0, flags=2)),
    b"\x02\xc0" + _f(RpcResponse(request_id=1, flags=1)) * 4
    + _f(RpcResponse(request_id=2, flags=1)),
    b"\x03\x00" + _f(RpcSessionReply(accepted_version=0)),
    b"\x03\x00" + _f(RpcSessionReply(rejected=True, reject_reason=2)),
]

"""Adversarial catalogue, RPC (hardening.md §3.6) and the RPC side of rapid reset (§3.4 Y13),
over the full stack: crafted RPC frames inside negotiated Yamux streams inside a real Noise
channel (RPC on YMX), or a real client node, against a node serving the Greeting service.

Case → test (unit and integration counterparts listed where they already existed):

- R1 malformed ``RpcSession`` → ``test_malformed_rpc_session_ends_only_that_stream``;
  the ban → ``test_malformed_rpc_session_counts_toward_a_ban``
- R2 ``supported_versions`` ``[]`` / ``[7]`` → ``test_unsupported_versions_are_rejected``
- R3 no service for the protocol → tests/unit/rpc::test_unknown_protocol_is_rejected (a Node
  only negotiates protocols it serves: tests/integration::test_unknown_protocol)
- R4 global pool exhaustion by several peers, then release → ``test_global_cap_over_several_peers``
- R5 per-peer cap → tests/integration/test_rpc_node_smoke.py::test_max_per_client_sessions,
  and the other peer still served in ``test_global_cap_over_several_peers``
- R6 slot leak on failed handshakes (garbage, stall, RST) → ``test_failed_handshakes_leak_no_slot``
- R7 handshake stall isolation → ``test_silent_handshakes_do_not_delay_another_peer``
- R8 client pool when the server rejects → tests/unit/rpc/test_pool.py
  (``test_it_falls_back_when_the_server_has_no_more_sessions``,
  ``test_exclusive_pool_times_out_with_no_client_sessions_available``)
- R9 malformed ``RpcRequest`` → ``test_junk_request_ends_the_session_not_the_connection``
- R10 unknown method, the session stays usable → ``test_unknown_method_keeps_the_session``
- R11 flags ≥ 256 or undefined bits → ``test_bad_request_flags_end_the_session``
- R12 request header above the frame cap → ``test_oversize_request_header_is_refused_before_allocation``
- R13 response above the cap → tests/integration/test_rpc_node_smoke.py::test_response_too_big_and_the_session_survives
- R14 deadline 0 and 2⁶⁴−1 → ``test_deadline_zero_and_huge``
- R15 handler past its deadline → tests/integration/test_rpc_node_smoke.py::test_timeout_keeps_the_session,
  ``test_slow_handler_and_slow_stream_are_cancelled_at_their_deadline`` (its ``finally`` runs)
- R16 streaming producer slower than the per-item deadline → same test
- R17 FIN mid-stream then a new request → tests/integration/test_rpc_node_smoke.py::test_stream_interruption_handling,
  tests/unit/rpc::test_dropped_stream_is_interrupted_by_the_next_call
- R18 a second request while streaming → ``test_request_while_streaming_ends_the_session``
- R19 client crash (TCP RST) mid-stream → ``test_client_reset_mid_stream_frees_the_slot``
- R20 handler raises → tests/unit/rpc::test_handler_exception_becomes_general_and_the_session_continues
- R21 handler raises a status → tests/integration/test_rpc_node_smoke.py::test_request_response_errors_and_streaming
- R22 cancel in flight → tests/integration/test_rpc_node_smoke.py::test_stream_still_works_after_cancel,
  tests/unit/rpc::test_cancelled_call_interrupts_and_the_next_call_gets_its_own_reply
- R23 wrong or duplicate ``request_id`` from the server → ``test_fake_server_with_wrong_request_ids``
- R24 server shutdown with active sessions → ``test_server_shutdown_ends_client_calls_promptly``
- R25 request-id wrap → tests/unit/rpc::test_request_ids_wrap_past_65535_skipping_zero_and_stale_frames_survive_the_wrap
- R26 load over a bounded pool → tests/stress/test_rpc_stress.py (quick variants in the default suite)
- Y13 rapid reset of RPC sessions → ``test_rapid_reset_of_rpc_sessions``
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from plait.identity import NodeIdentity
from plait.muxer import MuxerFloodError, YamuxConfig
from plait.node import Node, NodeConfig, PeerConnected, PeerConnection, PeerDisconnected
from plait.rpc import (
    RpcClientConfig,
    RpcDeadlineExceeded,
    RpcError,
    RpcProtocolViolation,
    RpcServerConfig,
    SessionClosedError,
)
from plait.rpc.greeting import GREETING_PROTOCOL, Greeting
from plait.rpc.proto.greeting_pb2 import SayHelloRequest, SayHelloResponse, SlowStreamRequest
from plait.rpc.proto.rpc_pb2 import RpcRequest, RpcResponse, RpcSession, RpcSessionReply
from plait.rpc.service import RequestContext, Service, rpc
from support.adversary import (
    HELLO,
    NoiseYamux,
    RpcProbe,
    assert_idle,
    bystander,
    listening_node,
    next_event,
    reset,
    rpc_frame,
    traced_peak,
    wait_until,
)
from support.yamux_raw import DATA, FIN, RST, SYN, WINDOW_UPDATE, frame

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


pytestmark = [pytest.mark.anyio, pytest.mark.network]

FAST = RpcClientConfig(deadline=5, deadline_grace_period=2, handshake_timeout=5)
_LEN = struct.Struct(">I")


@pytest.fixture
def greeting() -> Greeting:
    return Greeting()


async def _attacker(port: int, events: Any) -> tuple[NoiseYamux, PeerConnection]:
    ymx = await NoiseYamux.connect_to(port)
    connected = await next_event(events, PeerConnected)
    return ymx, connected.connection


def _hello(request_id: int, *, deadline: int = 5, flags: int = 0, method: int = 1) -> RpcRequest:
    return RpcRequest(request_id=request_id, method=method, deadline=deadline, flags=flags,
                      payload=SayHelloRequest(name="x", language=0).SerializeToString())


async def _session_still_works(ymx: NoiseYamux, stream_id: int) -> None:
    probe = await RpcProbe.open(ymx, stream_id)
    await probe.handshake()
    await probe.send(_hello(1))
    reply = await probe.response()
    assert (reply.request_id, reply.status, reply.flags) == (1, 0, 1)
    assert SayHelloResponse.FromString(reply.payload).greeting.endswith(" x")


# ---------------------------------------------------------------------------- handshake


async def test_malformed_rpc_session_ends_only_that_stream(greeting: Greeting) -> None:
    async with listening_node(services=(greeting,)) as (node, port):
        events = node.events()
        ymx, connection = await _attacker(port, events)
        probe = await RpcProbe.open(ymx, 1)
        await probe.send(b"\xff\xff")
        await probe.wait_ended()
        await wait_until(lambda: node.num_active_sessions() == 0)
        await _session_still_works(ymx, 3)
        assert connection.is_connected
        await ymx.aclose()
        await connection.wait_closed()
        assert_idle(node)


async def test_malformed_rpc_session_counts_toward_a_ban(greeting: Greeting) -> None:
    """R1: each malformed session ends only its stream, and counts toward a ban: at
    ``NodeConfig.rpc_violations_before_ban`` (3) the peer is banned and dropped."""
    async with listening_node(services=(greeting,)) as (node, port):
        events = node.events()
        ymx, connection = await _attacker(port, events)
        limit = node.config.rpc_violations_before_ban
        try:
            for index in range(limit):
                probe = await RpcProbe.open(ymx, 1 + 2 * index)
                await probe.send(b"\xff\xff")
                await probe.wait_ended()
                await wait_until(lambda: node.num_active_sessions() == 0)
                if index < limit - 1:
                    assert connection.is_connected
                    assert not node.is_banned(ymx.attacker.key.public)
            await wait_until(lambda: node.is_banned(ymx.attacker.key.public))
            await connection.wait_closed()
        finally:
            await ymx.aclose()


@pytest.mark.parametrize("versions", [[], [7], [1, 2, 3]])
async def test_unsupported_versions_are_rejected(greeting: Greeting, versions: list[int]) -> None:
    async with listening_node(services=(greeting,)) as (node, port):
        events = node.events()
        ymx, connection = await _attacker(port, events)
        probe = await RpcProbe.open(ymx, 1)
        await probe.send(RpcSession(supported_versions=versions))
        reply = RpcSessionReply.FromString(await probe.next_body())
        assert reply.rejected and reply.reject_reason == 1  # UNSUPPORTED_VERSION
        await probe.wait_ended()
        await wait_until(lambda: node.num_active_sessions() == 0)
        assert connection.is_connected and not node.is_banned(ymx.attacker.key.public)
        await ymx.aclose()
        await connection.wait_closed()


async def test_global_cap_over_several_peers(greeting: Greeting) -> None:
    """R4/R5: three peers fill a global cap of 4 (per-peer cap 2); the fifth session is
    refused with NO_SERVER_SESSIONS_AVAILABLE; a peer at its own cap gets
    NO_CLIENT_SESSIONS_AVAILABLE; after one session ends a new one succeeds."""
    config = NodeConfig(rpc_server=RpcServerConfig(max_sessions=4, max_sessions_per_peer=2))
    async with listening_node(config, services=(greeting,)) as (node, port):
        events = node.events()
        peers = [await _attacker(port, events) for _ in range(3)]
        (a, _), (b, _), (c, _) = peers
        sessions = [await RpcProbe.open(a, 1), await RpcProbe.open(a, 3),
                    await RpcProbe.open(b, 1), await RpcProbe.open(b, 3)]
        for probe in sessions:
            await probe.handshake()
        assert node.num_active_sessions() == 4
        over_global = await RpcProbe.open(c, 1)
        reply = RpcSessionReply.FromString(await over_global.next_body())
        assert reply.rejected and reply.reject_reason == 2  # NO_SERVER_SESSIONS_AVAILABLE
        await sessions[3].ymx.send(frame(DATA, FIN, 3, 0))  # b ends one session
        await wait_until(lambda: node.num_active_sessions() == 3)
        over_peer = await RpcProbe.open(a, 5)
        reply = RpcSessionReply.FromString(await over_peer.next_body())
        assert reply.rejected and reply.reject_reason == 3  # NO_CLIENT_SESSIONS_AVAILABLE
        await _session_still_works(c, 3)  # another peer is still served
        for ymx, connection in peers:
            await ymx.aclose()
            await connection.wait_closed()
        assert_idle(node)


@pytest.mark.parametrize("failure", ["garbage", "stall", "rst", "fin"])
async def test_failed_handshakes_leak_no_slot(greeting: Greeting, failure: str) -> None:
    """R6 (tari snapshot bug 1): 20 failed handshakes of one kind from one peer, with a
    per-peer cap of 10; afterwards the counters are back to 0 and the peer opens 10 good
    sessions."""
    config = NodeConfig(rpc_violations_before_ban=1000, rpc_server=RpcServerConfig(
        max_sessions=20, max_sessions_per_peer=10, handshake_timeout=0.3))
    async with listening_node(config, services=(greeting,)) as (node, port):
        events = node.events()
        key = None
        if failure == "stall":  # two rounds of 10 silent handshakes, timing out together
            ymx, connection = await _attacker(port, events)
            key = ymx.attacker.key
            for batch in range(2):
                stalled = [await RpcProbe.open(ymx, 1 + 2 * (10 * batch + i)) for i in range(10)]
                for probe in stalled:
                    await probe.wait_ended(timeout=5)  # the 0.3 s handshake timeout
                await wait_until(lambda: node.num_active_sessions() == 0)
            await ymx.aclose()
            await connection.wait_closed()
        for attempt in range({"stall": 0, "rst": 5}.get(failure, 20)):
            ymx, connection = await _attacker(port, events) if key is None else (
                await _reconnect(port, events, key))
            key = ymx.attacker.key
            sid = 1 + 2 * attempt
            probe = await RpcProbe.open(ymx, sid)
            if failure == "garbage":
                await probe.send(b"\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80")
                await probe.wait_ended()
            elif failure == "fin":
                await ymx.send(frame(DATA, FIN, sid, 0))
                await probe.wait_ended()
            else:  # the whole connection is reset under the handshake
                await reset(ymx.attacker.tcp)
                await connection.wait_closed()
            if failure != "rst":
                await ymx.aclose()
                await connection.wait_closed()
            await wait_until(lambda: node.num_active_sessions() == 0)
        assert key is not None
        ymx, connection = await _reconnect(port, events, key)
        good = [await RpcProbe.open(ymx, 1001 + 2 * i) for i in range(10)]
        for probe in good:
            await probe.handshake()
        assert node.num_active_sessions(key.public) == 10
        await ymx.aclose()
        await connection.wait_closed()
        await wait_until(lambda: node.num_active_sessions() == 0)
        assert_idle(node)


async def _reconnect(port: int, events: Any, key: Any) -> tuple[NoiseYamux, PeerConnection]:
    ymx = await NoiseYamux.connect_to(port, key=key)
    connected = await next_event(events, PeerConnected)
    return ymx, connected.connection


async def test_silent_handshakes_do_not_delay_another_peer(greeting: Greeting) -> None:
    """R7: peer X opens 10 sessions and stays silent; peer Y's session is accepted while X's
    handshakes are still pending (an order of events, not a latency)."""
    config = NodeConfig(rpc_server=RpcServerConfig(handshake_timeout=30))
    async with listening_node(config, services=(greeting,)) as (node, port):
        events = node.events()
        x, x_conn = await _attacker(port, events)
        silent = [await RpcProbe.open(x, 1 + 2 * i) for i in range(10)]
        await wait_until(lambda: node.num_active_sessions() == 10)
        async with Node(NodeIdentity.generate()) as y:
            conn = await y.dial(f"tcp://127.0.0.1:{port}", node.peer_id)
            with anyio.fail_after(5):
                client = await conn.connect_rpc(Greeting.Client, config=FAST)
            reply = await client.say_hello(SayHelloRequest(name="Y", language=0))
            assert reply.greeting.endswith(" Y")
            assert node.num_active_sessions(x.attacker.key.public) == 10  # still pending
            assert not any(probe.ended() for probe in silent)
            await client.aclose()
        await x.aclose()
        await x_conn.wait_closed()
        await wait_until(lambda: node.num_active_sessions() == 0)


# ---------------------------------------------------------------------------- requests


async def test_junk_request_ends_the_session_not_the_connection(greeting: Greeting) -> None:
    """R9: a valid length followed by junk protobuf ends the session (peer-caused) while the
    connection and another session on it carry on."""
    async with listening_node(services=(greeting,)) as (node, port):
        events = node.events()
        ymx, connection = await _attacker(port, events)
        other = await RpcProbe.open(ymx, 3)
        await other.handshake()
        probe = await RpcProbe.open(ymx, 1)
        await probe.handshake()
        await probe.send(b"\x0a\xff\xff\xff\xff\xff")  # field 1, LEN, truncated varint length
        await probe.wait_ended()
        await other.send(_hello(1))
        assert (await other.response()).status == 0
        assert connection.is_connected
        await ymx.aclose()
        await connection.wait_closed()


async def test_unknown_method_keeps_the_session(greeting: Greeting) -> None:
    """R10: UNSUPPORTED_METHOD (2) with FIN, then the next request on the same session
    succeeds. Also: an undecodable payload for a known method is BAD_REQUEST (1)."""
    async with listening_node(services=(greeting,)) as (node, port):
        ymx, connection = await _attacker(port, node.events())
        probe = await RpcProbe.open(ymx, 1)
        await probe.handshake()
        await probe.send(_hello(1, method=999))
        reply = await probe.response()
        assert (reply.request_id, reply.status, reply.flags) == (1, 2, 1)
        await probe.send(RpcRequest(request_id=2, method=1, deadline=5, payload=b"\xff"))
        reply = await probe.response()
        assert (reply.request_id, reply.status) == (2, 1)
        await probe.send(_hello(3))
        reply = await probe.response()
        assert (reply.request_id, reply.status, reply.flags) == (3, 0, 1)
        await ymx.aclose()
        await connection.wait_closed()


@pytest.mark.parametrize("flags", [0x100, 0x04, 0xFFFFFFFF])
async def test_bad_request_flags_end_the_session(greeting: Greeting, flags: int) -> None:
    async with listening_node(services=(greeting,)) as (node, port):
        ymx, connection = await _attacker(port, node.events())
        probe = await RpcProbe.open(ymx, 1)
        await probe.handshake()
        await probe.send(_hello(1, flags=flags))
        await probe.wait_ended()
        assert probe._bodies()[1:] == []  # nothing answered
        await _session_still_works(ymx, 3)
        await ymx.aclose()
        await connection.wait_closed()


@pytest.mark.parametrize("length", [4 * 1024 * 1024 + 1, 0xFFFFFFFF])
async def test_oversize_request_header_is_refused_before_allocation(
    greeting: Greeting, length: int
) -> None:
    """R12: the 4-byte header alone ends the session; nothing near its size is allocated."""
    async with listening_node(services=(greeting,)) as (node, port):
        ymx, connection = await _attacker(port, node.events())
        probe = await RpcProbe.open(ymx, 1)
        await probe.handshake()
        with traced_peak() as peak:
            await ymx.send(frame(DATA, 0, 1, body=_LEN.pack(length)))
            await probe.wait_ended()
            assert peak() < 1024 * 1024
        await _session_still_works(ymx, 3)
        await ymx.aclose()
        await connection.wait_closed()


async def test_deadline_zero_and_huge(greeting: Greeting) -> None:
    """R14: deadline 0 (below the 1 s minimum) → BAD_REQUEST with FIN, the session goes on;
    deadline 2**64 - 1 is clamped (no OverflowError) and the call succeeds."""
    async with listening_node(services=(greeting,)) as (node, port):
        ymx, connection = await _attacker(port, node.events())
        probe = await RpcProbe.open(ymx, 1)
        await probe.handshake()
        await probe.send(_hello(1, deadline=0))
        reply = await probe.response()
        assert (reply.request_id, reply.status, reply.flags) == (1, 1, 1)
        await probe.send(_hello(2, deadline=2**64 - 1))
        reply = await probe.response()
        assert (reply.request_id, reply.status, reply.flags) == (2, 0, 1)
        await ymx.aclose()
        await connection.wait_closed()


async def test_request_while_streaming_ends_the_session(greeting: Greeting) -> None:
    """R18: a second request while the server streams is a violation: the session ends."""
    async with listening_node(services=(greeting,)) as (node, port):
        ymx, connection = await _attacker(port, node.events())
        probe = await RpcProbe.open(ymx, 1)
        await probe.handshake()
        slow = SlowStreamRequest(num_items=1000, item_size=10, delay_ms=50)
        await probe.send(RpcRequest(request_id=1, method=8, deadline=5,
                                    payload=slow.SerializeToString()))
        first = await probe.response()
        assert (first.request_id, first.flags) == (1, 0)
        await probe.send(_hello(2))
        await probe.wait_ended()
        await wait_until(lambda: node.num_active_sessions() == 0)
        assert connection.is_connected
        await ymx.aclose()
        await connection.wait_closed()


class Slow(Service, protocol=b"/adversarial/slow/1"):
    """Handlers that overrun their deadline, recording that their ``finally`` ran."""

    def __init__(self) -> None:
        self.finished: list[str] = []

    @rpc(method=1)
    async def sleepy(self, request: SayHelloRequest, ctx: RequestContext) -> SayHelloResponse:
        try:
            await anyio.sleep(30)
            return SayHelloResponse()
        finally:
            self.finished.append("unary")

    @rpc(method=2, streaming=True)
    async def trickle(
        self, request: SayHelloRequest, ctx: RequestContext
    ) -> AsyncIterator[SayHelloResponse]:
        try:
            yield SayHelloResponse(greeting="first")
            await anyio.sleep(30)
            yield SayHelloResponse(greeting="never")
        finally:
            self.finished.append("stream")


async def test_slow_handler_and_slow_stream_are_cancelled_at_their_deadline() -> None:
    """R15/R16: with a 1 s deadline the server cancels the handler (its ``finally`` runs, the
    slot is consistent) and sends nothing; the client times out at deadline + grace; a stream
    whose next item is late ends the same way. The session stays usable."""
    slow = Slow()
    client_config = RpcClientConfig(deadline=1, deadline_grace_period=0.5, handshake_timeout=5)
    async with listening_node(services=(slow,)) as (node, port), Node(
        NodeIdentity.generate()
    ) as peer:
        conn = await peer.dial(f"tcp://127.0.0.1:{port}", node.peer_id)
        client = await conn.connect_rpc(Slow.Client, config=client_config)
        started = anyio.current_time()
        with anyio.fail_after(5), pytest.raises(RpcDeadlineExceeded):
            await client.sleepy(SayHelloRequest())
        assert 1.4 <= anyio.current_time() - started
        await wait_until(lambda: "unary" in slow.finished)
        items = []
        with anyio.fail_after(5), pytest.raises(RpcDeadlineExceeded):
            async for item in client.trickle(SayHelloRequest()):
                items.append(item.greeting)
        assert items == ["first"]
        await wait_until(lambda: "stream" in slow.finished)
        assert node.num_active_sessions() == 1  # the session survives both
        await client.aclose()
        await wait_until(lambda: node.num_active_sessions() == 0)


async def test_server_enforces_its_deadlines_without_the_client() -> None:
    """R15/R16 on the server alone: the client waits far longer (grace 20 s) than the 1 s
    deadline, so no interrupt comes; the server still cancels the slow handler and the
    stream whose next item is late at its own deadline, while the other worker reads."""
    slow = Slow()
    client_config = RpcClientConfig(deadline=1, deadline_grace_period=20, handshake_timeout=5)
    async with listening_node(services=(slow,)) as (node, port), Node(
        NodeIdentity.generate()
    ) as peer:
        conn = await peer.dial(f"tcp://127.0.0.1:{port}", node.peer_id)
        client = await conn.connect_rpc(Slow.Client, config=client_config)
        async with anyio.create_task_group() as tg:
            started = anyio.current_time()
            tg.start_soon(client.sleepy, SayHelloRequest())
            with anyio.fail_after(5):
                await wait_until(lambda: "unary" in slow.finished)
            assert 0.9 <= anyio.current_time() - started
            tg.cancel_scope.cancel()  # the client gives up (and interrupts) only now
        second = await conn.connect_rpc(Slow.Client, config=client_config)
        items: list[str] = []

        async def consume() -> None:
            async for item in second.trickle(SayHelloRequest()):
                items.append(item.greeting)

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            with anyio.fail_after(5):
                await wait_until(lambda: "stream" in slow.finished)
            assert items == ["first"]
            tg.cancel_scope.cancel()
        await client.aclose()
        await second.aclose()


class Stubborn(Service, protocol=b"/adversarial/stubborn/1"):
    """A handler that swallows its cancellation and answers anyway, and a quick one."""

    def __init__(self) -> None:
        self.swallowed = 0

    @rpc(method=1)
    async def stubborn(self, request: SayHelloRequest, ctx: RequestContext) -> SayHelloResponse:
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            self.swallowed += 1  # wrong, but a server must survive it
        return SayHelloResponse(greeting="late")

    @rpc(method=2)
    async def quick(self, request: SayHelloRequest, ctx: RequestContext) -> SayHelloResponse:
        await anyio.lowlevel.checkpoint()
        return SayHelloResponse(greeting=request.name)

    @rpc(method=3)
    async def converts(self, request: SayHelloRequest, ctx: RequestContext) -> SayHelloResponse:
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            self.swallowed += 1
            raise RuntimeError("cancelled") from None  # wrong too: an error, not a cancel
        return SayHelloResponse(greeting="late")


async def test_cancelled_handlers_one_after_another_leave_the_session_working() -> None:
    """A server worker serves requests under one cancel scope until a handler is
    cancelled through it: after deadlines, a handler that swallows its cancellation or
    turns it into an error, and client interrupts, in a row, the next calls are still
    answered, in order, and nothing is sent for a cancelled request."""
    stubborn = Stubborn()
    client_config = RpcClientConfig(deadline=1, deadline_grace_period=0.3, handshake_timeout=5)
    async with listening_node(services=(stubborn,)) as (node, port), Node(
        NodeIdentity.generate()
    ) as peer:
        conn = await peer.dial(f"tcp://127.0.0.1:{port}", node.peer_id)
        client = await conn.connect_rpc(Stubborn.Client, config=client_config)
        with anyio.fail_after(20):
            for round_number in range(3):
                # the server's deadline cancels it (swallowed: the late reply is not sent)
                with pytest.raises(RpcDeadlineExceeded):
                    await client.stubborn(SayHelloRequest())
                names = [f"{round_number}-{i}" for i in range(5)]
                for name in names:
                    reply = await client.quick(SayHelloRequest(name=name))
                    assert reply.greeting == name
                # the client gives up first: its interrupt cancels the handler
                with anyio.move_on_after(0.1):
                    await client.stubborn(SayHelloRequest())
                assert (await client.quick(SayHelloRequest(name="after"))).greeting == "after"
            # a handler that turns its cancellation into an error: nothing is sent either
            with pytest.raises(RpcDeadlineExceeded):
                await client.converts(SayHelloRequest())
            assert (await client.quick(SayHelloRequest(name="last"))).greeting == "last"
            await wait_until(lambda: stubborn.swallowed == 7)
        assert node.num_active_sessions() == 1
        await client.aclose()
        await wait_until(lambda: node.num_active_sessions() == 0)


async def test_client_reset_mid_stream_frees_the_slot(greeting: Greeting) -> None:
    """R19: a client streaming 10k items resets its TCP connection; the server's handler is
    cancelled, the slot released, and another peer is unaffected."""
    async with listening_node(services=(greeting,)) as (node, port), bystander(
        node, port, rpc=True
    ) as honest:
        events = node.events()
        ymx, connection = await _attacker(port, events)
        probe = await RpcProbe.open(ymx, 1)
        await probe.handshake()
        many = SlowStreamRequest(num_items=10_000, item_size=100, delay_ms=0)
        await probe.send(RpcRequest(request_id=1, method=8, deadline=5,
                                    payload=many.SerializeToString()))
        await probe.response()  # streaming has begun
        assert node.num_active_sessions(ymx.attacker.key.public) == 1
        await reset(ymx.attacker.tcp)
        await connection.wait_closed()
        await wait_until(lambda: node.num_active_sessions() == 1)  # the bystander's
        await honest.check()
        assert node.statistics().handlers == 2  # the bystander's echo and RPC handlers


async def test_fake_server_with_wrong_request_ids() -> None:
    """R23: the node calls a service on a fake server that answers with the wrong request
    id: the client raises a protocol violation (server-caused) and the session is closed."""
    async with listening_node() as (node, port):
        events = node.events()
        ymx, connection = await _attacker(port, events)

        async def fake_server() -> None:
            await ymx.recv_until(lambda fs: any(f.stream_id == 2 and f.body for f in fs))
            proposal = ymx.data_of(2)
            await ymx.send(frame(WINDOW_UPDATE, 2, 2, 0) + frame(DATA, 0, 2, body=proposal))
            probe = RpcProbe(ymx, 2, GREETING_PROTOCOL)
            RpcSession.FromString(await probe.next_body())
            await ymx.send(frame(DATA, 0, 2, body=rpc_frame(RpcSessionReply(accepted_version=0))))
            RpcRequest.FromString(await probe.next_body())
            await ymx.send(frame(DATA, 0, 2, body=rpc_frame(
                RpcResponse(request_id=77, flags=1, payload=b"")) * 3))

        async with anyio.create_task_group() as tg:
            tg.start_soon(fake_server)
            client = await connection.connect_rpc(Greeting.Client, config=FAST, optimistic=False)
            with anyio.fail_after(5), pytest.raises(RpcProtocolViolation):
                await client.say_hello(SayHelloRequest(name="x"))
            with pytest.raises(SessionClosedError):
                await client.say_hello(SayHelloRequest(name="x"))
            await client.aclose()
        await ymx.aclose()
        await connection.wait_closed()


async def test_server_shutdown_ends_client_calls_promptly(greeting: Greeting) -> None:
    """R24: the serving node shuts down during a long stream; the client's call ends with a
    typed RPC error within the shutdown grace, and later calls fail at once."""
    config = NodeConfig(shutdown_timeout=1.0)
    async with Node(NodeIdentity.generate()) as peer:
        async with listening_node(config, services=(greeting,)) as (node, port):
            conn = await peer.dial(f"tcp://127.0.0.1:{port}", node.peer_id)
            client = await conn.connect_rpc(Greeting.Client, config=FAST)
            stream = client.slow_stream(SlowStreamRequest(num_items=1000, item_size=10,
                                                          delay_ms=20))
            first = await stream.__anext__()
            assert len(first.data) == 10
        started = anyio.current_time()  # the server node has shut down
        with anyio.fail_after(5), pytest.raises((RpcError, anyio.BrokenResourceError)):
            async for _ in stream:
                pass
        assert anyio.current_time() - started < 3
        with anyio.fail_after(5), pytest.raises((RpcError, anyio.BrokenResourceError)):
            await client.say_hello(SayHelloRequest(name="late"))
        await client.aclose()


# ---------------------------------------------------------------------------- Y13


async def test_rapid_reset_of_rpc_sessions(greeting: Greeting) -> None:
    """Y13: SYN + negotiation + RPC handshake + request, then RST, at line rate. The
    attacker's sessions never exceed its cap, a reset budget runs out and the connection
    ends, its counters return to 0, and a bystander's echo and RPC session on another
    connection are unaffected."""
    config = NodeConfig(
        yamux=YamuxConfig(rst_burst=200, rst_rate=1.0),
        rpc_server=RpcServerConfig(max_sessions=9, max_sessions_per_peer=8),
    )
    async with listening_node(config, services=(greeting,)) as (node, port), bystander(
        node, port, rpc=True
    ) as honest:
        events = node.events()
        ymx, connection = await _attacker(port, events)
        proposal = bytes([len(GREETING_PROTOCOL), 0]) + GREETING_PROTOCOL
        body = proposal + rpc_frame(HELLO) + rpc_frame(_hello(1))
        peak_sessions = 0
        for batch in range(10):
            burst = b"".join(
                frame(WINDOW_UPDATE, SYN, sid, 0) + frame(DATA, 0, sid, body=body)
                + frame(WINDOW_UPDATE, RST, sid, 0)
                for sid in range(1 + 100 * batch * 2, 1 + 100 * (batch + 1) * 2, 2))
            try:
                await ymx.send(burst)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                break
            sessions = node.num_active_sessions(ymx.attacker.key.public)
            peak_sessions = max(peak_sessions, sessions)
            assert sessions <= 8
        gone = await next_event(events, PeerDisconnected, timeout=10)
        assert gone.connection is connection
        assert isinstance(gone.error, MuxerFloodError), repr(gone.error)  # a reset budget
        await ymx.wait_eof()
        # the GO_AWAY may be lost behind replies the attacker never read (then TCP resets)
        assert set(ymx.go_away_codes()) <= {1, 2}
        await connection.wait_closed()
        await wait_until(lambda: node.num_active_sessions() == 1)  # the bystander's
        await honest.check()
        assert peak_sessions <= 8
        await ymx.aclose()

"""Fault injection and scale over the full stack (hardening.md §3.7), on 127.0.0.1.

Faults come from a proxy between two real nodes (tests/support/fault_proxy.py: RST both
ways, a black hole, re-chunking) or from a crafted peer (tests/support/adversary.py).

Case → test:

- F1 TCP RST mid-transfer on one of several connections → ``test_reset_mid_transfer``
- F2 half-open connection → ``test_half_open_connection_is_detected_by_keepalive``
- F3 connection-level slow reader → ``test_peer_that_stops_reading``
- F4 1..7-byte segments and delays → ``test_rechunked_connection_works``
- F5 many peers at once → ``test_200_peers_at_once_with_a_cap_of_100``; the per-IP cap →
  ``test_per_ip_connection_cap``
- F6 connect/close churn → ``test_churn_leaks_nothing`` (100 cycles; 10k under the stress
  marker: ``test_churn_leaks_nothing_10k``)
- F7 a blocking handler run in a thread → ``test_blocking_handler_in_a_thread_frees_the_slot``
- F8 cancelling a busy node → ``test_cancelling_a_busy_node``
- T11 an abrupt close during each handshake step: test_transport_node.py and test_noise.py
"""

from __future__ import annotations

import logging
import os
import resource
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from plait.errors import PlaitError
from plait.identity import NodeIdentity
from plait.muxer import KeepaliveTimeoutError, YamuxConfig
from plait.node import (
    ECHO_PROTOCOL_ID,
    ConnectionFailed,
    ConnectionLimitError,
    DisconnectReason,
    Node,
    NodeConfig,
    PeerConnected,
    PeerDisconnected,
)
from plait.rpc import RpcClientConfig, RpcDeadlineExceeded
from plait.rpc.greeting import Greeting
from plait.rpc.proto.greeting_pb2 import (
    GetGreetingsRequest,
    SayHelloRequest,
    SayHelloResponse,
    SlowStreamRequest,
)
from plait.rpc.proto.rpc_pb2 import RpcRequest
from plait.rpc.service import RequestContext, Service, rpc
from plait.transport import TooManyConnectionsFromHostError
from support.adversary import (
    NoiseAttacker,
    NoiseYamux,
    RpcProbe,
    assert_idle,
    bystander,
    listening_node,
    next_event,
    open_fds,
    rpc_frame,
    source_host,
    traced_peak,
    wait_until,
)
from support.fault_proxy import FaultProxy
from support.yamux_raw import DATA, WINDOW_UPDATE, frame

if TYPE_CHECKING:
    from anyio.abc import ByteStream

pytestmark = [pytest.mark.anyio, pytest.mark.network]

FAST = RpcClientConfig(deadline=5, deadline_grace_period=2, handshake_timeout=5)
_STREAM_ENDS = (anyio.BrokenResourceError, anyio.EndOfStream, anyio.ClosedResourceError)


def _caused_by(error: BaseException | None, kind: type[BaseException]) -> bool:
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, kind):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


async def _echo_pump(stream: ByteStream, outcome: list[BaseException]) -> None:
    """Echo 16 KiB blocks until the stream breaks; record how it broke."""
    try:
        while True:
            block = os.urandom(16384)
            await stream.send(block)
            echoed = b""
            while len(echoed) < len(block):
                echoed += await stream.receive()
            assert echoed == block
    except _STREAM_ENDS as exc:
        outcome.append(exc)


async def test_reset_mid_transfer() -> None:
    """F1: three echo streams run over one proxied connection; the proxy resets it. Every
    stream fails on its next operation, both nodes drop the connection as an error without
    a ban, and a bystander's direct connection is unaffected."""
    async with listening_node() as (server, port), bystander(server, port) as honest, \
            FaultProxy(port) as proxy, Node(NodeIdentity.generate()) as client:
        server_events, client_events = server.events(), client.events()
        conn = await client.dial(f"tcp://127.0.0.1:{proxy.port}", server.peer_id)
        await next_event(server_events, PeerConnected)
        streams = [await conn.open_substream(ECHO_PROTOCOL_ID) for _ in range(3)]
        outcome: list[BaseException] = []
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for stream in streams:
                    tg.start_soon(_echo_pump, stream, outcome)
                await wait_until(lambda: proxy.forwarded > 2 * 1024 * 1024)
                await proxy.reset_all()
        assert len(outcome) == 3
        assert all(isinstance(e, anyio.BrokenResourceError) for e in outcome), outcome
        # an RST is reported once, to whichever of the reader and the writer meets it first;
        # a reader that comes second sees a plain EOF, so the reason may read REMOTE
        ended = (DisconnectReason.ERROR, DisconnectReason.REMOTE)
        gone = await next_event(client_events, PeerDisconnected)
        assert gone.reason in ended
        gone = await next_event(server_events, PeerDisconnected)
        assert gone.reason in ended and gone.connection.public_key == client.public_key
        assert server.statistics().bans == client.statistics().bans == 0  # B0
        await wait_until(lambda: server.statistics().connections == 1)  # the bystander
        await wait_until(lambda: server.statistics().handlers == 1)
        await honest.check()


async def test_half_open_connection_is_detected_by_keepalive() -> None:
    """F2: the proxy stops forwarding both ways, no FIN, no RST. Keep-alive declares the
    connection dead on both sides and a blocked read returns with an error."""
    config = NodeConfig(yamux=YamuxConfig(keepalive_interval=0.3, keepalive_timeout=0.5))
    async with listening_node(config) as (server, port), FaultProxy(port) as proxy, \
            Node(NodeIdentity.generate(), config) as client:
        server_events, client_events = server.events(), client.events()
        conn = await client.dial(f"tcp://127.0.0.1:{proxy.port}", server.peer_id)
        stream = await conn.open_substream(ECHO_PROTOCOL_ID)
        await stream.send(b"before")
        assert await stream.receive() == b"before"
        proxy.blackhole()
        started = anyio.current_time()
        with anyio.fail_after(5), pytest.raises(anyio.BrokenResourceError):
            await stream.receive()  # blocked until the keep-alive gives up
        assert anyio.current_time() - started < 3
        for events in (client_events, server_events):
            gone = await next_event(events, PeerDisconnected)
            assert gone.reason is DisconnectReason.ERROR
            assert _caused_by(gone.error, KeepaliveTimeoutError), repr(gone.error)
        await wait_until(lambda: server.statistics().connections == 0)


async def test_peer_that_stops_reading() -> None:
    """F3: a SLOW peer grants a huge window, asks for 128 MiB of stream items and never
    reads. The node's queued bytes stay under the write-queue cap, a bystander is
    unaffected, and the unanswered keep-alive closes the connection."""
    yamux = YamuxConfig(keepalive_interval=0.5, keepalive_timeout=1.0)
    config = NodeConfig(yamux=yamux)
    async with listening_node(config, services=(Greeting(),)) as (node, port), \
            bystander(node, port, rpc=True) as honest:
        events = node.events()
        ymx = NoiseYamux(await NoiseAttacker.connect(port, rcvbuf=4096))
        connection = (await next_event(events, PeerConnected)).connection
        probe = await RpcProbe.open(ymx, 1)
        await probe.handshake()
        await ymx.send(frame(WINDOW_UPDATE, 0, 1, 0x7FFFFFFF))
        many = SlowStreamRequest(num_items=2048, item_size=65536, delay_ms=0)
        with traced_peak() as peak:
            await ymx.send(frame(DATA, 0, 1, body=probe_request(many)))
            await wait_until(lambda: connection.muxer.core.queued_data_size > 0)
            await honest.check()
            assert connection.muxer.core.queued_data_size <= yamux.max_write_queue_size + 65536
            gone = await next_event(events, PeerDisconnected, timeout=10)
            assert gone.connection is connection and gone.reason is DisconnectReason.ERROR
            assert _caused_by(gone.error, KeepaliveTimeoutError), repr(gone.error)
            assert peak() < 3 * yamux.max_write_queue_size + 16 * 1024 * 1024
        await wait_until(lambda: node.num_active_sessions() == 1)  # the bystander's
        await honest.check()
        await ymx.aclose()


def probe_request(request: SlowStreamRequest) -> bytes:
    return rpc_frame(RpcRequest(request_id=1, method=8, deadline=30,
                                payload=request.SerializeToString()))


async def test_rechunked_connection_works() -> None:
    """F4: every byte both ways travels in 1..7-byte writes with small random pauses; the
    upgrade, echo and RPC all work and no timeout trips."""
    async with listening_node(services=(Greeting(),)) as (server, port), \
            FaultProxy(port, rechunk=True) as proxy, Node(NodeIdentity.generate()) as client:
        conn = await client.dial(f"tcp://127.0.0.1:{proxy.port}", server.peer_id)
        stream = await conn.open_substream(ECHO_PROTOCOL_ID)
        payload = os.urandom(64 * 1024)
        echoed = bytearray()

        async def read() -> None:
            while len(echoed) < len(payload):
                echoed.extend(await stream.receive())

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                await stream.send(payload)
            assert bytes(echoed) == payload
            greeter = await conn.connect_rpc(Greeting.Client, config=FAST)
            reply = await greeter.say_hello(SayHelloRequest(name="bits", language=0))
            assert reply.greeting.endswith(" bits")
            items = [t.value async for t in greeter.get_greetings(GetGreetingsRequest(num=3))]
            assert len(items) == 3
            await greeter.aclose()
        assert proxy.forwarded > len(payload) * 2


def _fd_headroom(needed: int) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    fds = open_fds() or 0
    if soft - fds < needed:
        pytest.skip(f"needs {needed} free file descriptors, has {soft - fds}")


async def test_200_peers_at_once_with_a_cap_of_100() -> None:
    """F5: 200 authenticated peers from 200 source addresses connect at once. At most 100
    upgrade concurrently, exactly 100 are admitted and 100 refused with a typed error; once
    the first 100 leave, every refused peer is served."""
    _fd_headroom(700)
    config = NodeConfig(max_connections=100, max_upgrading=100)
    async with listening_node(config) as (node, port):
        events = node.events()
        attackers: list[NoiseAttacker | BaseException] = [ValueError()] * 200

        async def connect(i: int) -> None:
            try:
                attackers[i] = await NoiseAttacker.connect(port, source=source_host(2 + i))
            except (PlaitError, anyio.BrokenResourceError, anyio.EndOfStream, OSError) as exc:
                attackers[i] = exc  # refused after its upgrade: the node hung up

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for i in range(200):
                    tg.start_soon(connect, i)
        connected = refused = 0
        with anyio.fail_after(30):
            while connected + refused < 200:
                event = await next_event(events, object)
                if isinstance(event, PeerConnected):
                    connected += 1
                elif isinstance(event, ConnectionFailed):
                    assert isinstance(event.error, ConnectionLimitError), repr(event.error)
                    refused += 1
        assert (connected, refused) == (100, 100)
        assert node.statistics().connections == 100
        admitted = {c.public_key for c in node.connections}
        for attacker in attackers:
            if isinstance(attacker, NoiseAttacker):
                await attacker.aclose()
        await wait_until(lambda: node.statistics().connections == 0, timeout=10)
        # the refused peers come back and are all served now
        retry = [a for a in attackers if isinstance(a, NoiseAttacker)
                 and a.key.public not in admitted]
        again = [await NoiseAttacker.connect(port, key=a.key) for a in retry]
        await wait_until(lambda: node.statistics().connections == len(retry), timeout=10)
        assert len(retry) == 100
        for attacker in again:
            await attacker.aclose()
        await wait_until(lambda: _no_connection(node), timeout=10)
        assert_idle(node)


async def test_per_ip_connection_cap() -> None:
    """F5: six connections from one 127.0.0.x address against a per-IP cap of 4: two are
    refused at accept with a typed error and no ban, while another address still connects;
    a slot comes back when one of the four leaves."""
    config = NodeConfig(max_connections_per_ip=4)
    async with listening_node(config) as (node, port):
        events = node.events()
        attackers = [await NoiseAttacker.connect(port, source=source_host(9)) for _ in range(4)]
        try:
            await wait_until(lambda: node.statistics().connections == 4)
            for _ in range(2):
                with pytest.raises((PlaitError, anyio.EndOfStream, anyio.BrokenResourceError)):
                    await NoiseAttacker.connect(port, source=source_host(9))
                failed = await next_event(events, ConnectionFailed)
                assert isinstance(failed.error, TooManyConnectionsFromHostError)
            other = await NoiseAttacker.connect(port, source=source_host(10))
            attackers.append(other)
            await wait_until(lambda: node.statistics().connections == 5)
            assert not any(node.is_banned(a.key.public) for a in attackers)
            await attackers.pop(0).aclose()
            # the host's count drops when the connection's task has ended
            await wait_until(lambda: node._hosts.get(source_host(9)) == 3)
            attackers.append(await NoiseAttacker.connect(port, source=source_host(9)))
            await wait_until(lambda: node.statistics().connections == 5)
        finally:
            for attacker in attackers:
                await attacker.aclose()
        await wait_until(lambda: _no_connection(node))


def _no_connection(node: Node) -> bool:
    stats = node.statistics()
    return stats.connections == stats.closing == stats.handlers == 0


async def _churn(cycles: int) -> None:
    async with listening_node(services=(Greeting(),)) as (node, port):
        async with Node(NodeIdentity.generate()) as client:
            address = f"tcp://127.0.0.1:{port}"

            async def cycle() -> None:
                conn = await client.dial(address, node.peer_id)
                greeter = await conn.connect_rpc(Greeting.Client, config=FAST)
                reply = await greeter.say_hello(SayHelloRequest(name="c", language=0))
                assert reply.greeting.endswith(" c")
                await greeter.aclose()
                await conn.disconnect()
                await wait_until(lambda: _no_connection(node))

            for _ in range(20):  # warm up caches and lazily created state
                await cycle()
            fds = open_fds()
            tasks = node.statistics().tasks, client.statistics().tasks
            with traced_peak() as peak:
                for _ in range(cycles):
                    await cycle()
                assert peak() < 16 * 1024 * 1024
            assert open_fds() == fds
            assert (node.statistics().tasks, client.statistics().tasks) == tasks
        assert_idle(node)


async def test_churn_leaks_nothing() -> None:
    """F6: connect, RPC, close — 100 times; FDs, tasks and session counts return to their
    baseline and memory stays bounded."""
    with anyio.fail_after(100):
        await _churn(100)


@pytest.mark.stress
@pytest.mark.timeout(1800)  # 10 000 full connection cycles: minutes, not the default 120 s
async def test_churn_leaks_nothing_10k() -> None:
    """F6 at the catalogue's size (``make stress`` runs it)."""
    with anyio.fail_after(1500):
        await _churn(10_000)


class Blocking(Service, protocol=b"/adversarial/blocking/1"):
    """A handler that blocks in a worker thread, abandoned on cancellation."""

    def __init__(self) -> None:
        self.returned = anyio.Event()

    @rpc(method=1)
    async def block(self, request: SayHelloRequest, ctx: RequestContext) -> SayHelloResponse:
        try:
            await anyio.to_thread.run_sync(time.sleep, 3, abandon_on_cancel=True)
            return SayHelloResponse()
        finally:
            self.returned.set()


async def test_blocking_handler_in_a_thread_frees_the_slot() -> None:
    """F7: handlers must not block the event loop; a blocking call goes to a worker thread
    (``abandon_on_cancel=True``), so the 1 s deadline still cancels the handler, the client
    times out and the session and its slot are released normally."""
    service = Blocking()
    config = RpcClientConfig(deadline=1, deadline_grace_period=0.5, handshake_timeout=5)
    async with listening_node(services=(service,)) as (node, port), \
            Node(NodeIdentity.generate()) as client:
        conn = await client.dial(f"tcp://127.0.0.1:{port}", node.peer_id)
        blocker = await conn.connect_rpc(Blocking.Client, config=config)
        with anyio.fail_after(5), pytest.raises(RpcDeadlineExceeded):
            await blocker.block(SayHelloRequest())
        with anyio.fail_after(1):
            await service.returned.wait()  # cancelled at the deadline, not after 3 s
        await blocker.aclose()
        await wait_until(lambda: node.num_active_sessions() == 0)


async def test_cancelling_a_busy_node(caplog: pytest.LogCaptureFixture) -> None:
    """F8: the serving node's task is cancelled while it streams RPC items and echoes; its
    shutdown finishes within the grace period, its peer sees a clean GO_AWAY(0) (reason
    REMOTE), and no task error is left unretrieved."""
    caplog.set_level(logging.WARNING)
    config = NodeConfig(shutdown_timeout=1.0)
    ready: list[Any] = []
    async with Node(NodeIdentity.generate()) as client:
        client_events = client.events()
        async with anyio.create_task_group() as tg:

            async def serve(*, task_status: anyio.abc.TaskStatus[None]) -> None:
                async with listening_node(config, services=(Greeting(),)) as (node, port):
                    ready.append((node, port))
                    task_status.started()
                    await anyio.sleep_forever()

            await tg.start(serve)
            node, port = ready[0]
            conn = await client.dial(f"tcp://127.0.0.1:{port}", node.peer_id)
            greeter = await conn.connect_rpc(Greeting.Client, config=FAST)
            stream = greeter.slow_stream(SlowStreamRequest(num_items=10_000, item_size=1000,
                                                           delay_ms=1))
            await stream.__anext__()
            echo = await conn.open_substream(ECHO_PROTOCOL_ID)
            await echo.send(b"busy")
            assert await echo.receive() == b"busy"
            started = anyio.current_time()
            tg.cancel_scope.cancel()
        assert anyio.current_time() - started < 1.0 + 2.0  # shutdown_timeout + margin
        gone = await next_event(client_events, PeerDisconnected)
        assert gone.reason is DisconnectReason.REMOTE, (gone.reason, gone.error)
        with anyio.fail_after(5), pytest.raises(Exception):  # noqa: B017 - any typed end
            async for _ in stream:
                pass
        await greeter.aclose()
    assert not [r for r in caplog.records
                if "never retrieved" in r.getMessage() or r.levelno >= logging.ERROR]

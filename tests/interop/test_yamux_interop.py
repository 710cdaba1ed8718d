"""plait's Yamux against real peers: hashicorp/yamux (Debian's 2019 copy) and
@chainsafe/libp2p-yamux 8.0.1 (yamux.md §6), in both roles.

*plait dials*: plait's :class:`~plait.muxer.MuxedConnection` (client role, odd ids) connects
over TCP to the peer's echo server. *the peer dials*: the peer's client program connects to
a plait echo server (server role, even ids) and reports a ``RESULT`` line.

Covered per peer and role: byte-exact echo of 4 MiB on 1 stream and on 64 concurrent
streams; half-close (FIN after writing, the whole echo still arrives, then EOF; with the
peer dialing, node only: hashicorp's 2019 client cannot read after its own FIN); stream
resets in each direction while other streams continue; the peer's keep-alive pings answered
on an idle connection; and, plait dialing, 300 streams opened at once against a peer whose
stream limit is lower: refused streams fail alone with a reset error, the others and later
streams work. Every test runs on asyncio and trio.

Peer-side observations come from the peer's ``EVENT`` lines, keyed by plait's local TCP port
(``yamux_peers.py``). The hashicorp copy has no ``Stream.Reset``; its echo program writes
the RST frame itself between the library's frames (see ``hashicorp_echo/main.go``).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import pytest
from anyio.abc import SocketAttribute
from plait.muxer import MuxedConnection, MuxedStream, StreamResetError, YamuxConfig
from yamux_peers import PeerOptions

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from anyio.abc import ByteStream
    from yamux_peers import ClientResult, PeerServer, PeerTools

pytestmark = [pytest.mark.interop, pytest.mark.anyio]

KiB = 1024
MiB = 1024 * KiB
CHUNK = 64 * KiB
BIG = 4 * MiB
#: Errors a stream reset by the peer may surface as (StreamResetError is expected).
RESET_ERRORS = (StreamResetError, anyio.BrokenResourceError)

_STRIDE = 4099
_BASE = random.Random(20240611).randbytes(BIG + 64 * _STRIDE)


def payload_view(index: int, size: int) -> memoryview:
    """Distinct pseudo-random payload per stream index, a view into one shared buffer."""
    start = (index % 64) * _STRIDE
    return memoryview(_BASE)[start : start + size]


def digest(data: memoryview | bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass
class EchoOutcome:
    """What one stream of an echo exchange saw."""

    received: int = 0
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    eof: bool = False
    reset: BaseException | None = None

    def matches(self, expected: memoryview) -> bool:
        return (
            self.eof
            and self.reset is None
            and self.received == len(expected)
            and self.sha256.digest() == digest(expected)
        )


async def echo_exchange(stream: MuxedStream, data: memoryview) -> EchoOutcome:
    """Send ``data`` in 64 KiB chunks then FIN, while reading the echo until EOF."""
    out = EchoOutcome()

    async def writer() -> None:
        try:
            for off in range(0, len(data), CHUNK):
                await stream.send(bytes(data[off : off + CHUNK]))
            await stream.send_eof()
        except RESET_ERRORS as exc:
            out.reset = out.reset or exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        try:
            while True:
                try:
                    piece = await stream.receive()
                except anyio.EndOfStream:
                    out.eof = True
                    break
                out.sha256.update(piece)
                out.received += len(piece)
        except RESET_ERRORS as exc:
            out.reset = exc
    return out


@asynccontextmanager
async def plait_dial(
    port: int, config: YamuxConfig | None = None
) -> AsyncIterator[tuple[MuxedConnection, int]]:
    """plait in the client role over TCP to 127.0.0.1:port; yields (connection, local port)."""
    tcp = await anyio.connect_tcp("127.0.0.1", port)
    local_port = tcp.extra(SocketAttribute.local_port)
    async with tcp, MuxedConnection(tcp, is_client=True, config=config or YamuxConfig()) as conn:
        yield conn, local_port


async def check_new_stream_echoes(conn: MuxedConnection, size: int = 256 * KiB) -> None:
    stream = await conn.open_stream()
    out = await echo_exchange(stream, payload_view(63, size))
    await stream.aclose()
    assert out.matches(payload_view(63, size)), out


def stream_id(stream: MuxedStream) -> int | None:
    value = getattr(stream, "stream_id", None)
    return value if isinstance(value, int) else None


# --------------------------------------------------------------------------- plait server


@dataclass
class PlaitEchoServer:
    """plait in the server role: echoes every inbound stream until the peer's FIN.

    Every ``reset_every``-th accepted stream of a connection is reset by plait once
    ``reset_after`` bytes were echoed. With ``echo_after_eof`` nothing is sent back before
    the peer's FIN.
    """

    config: YamuxConfig = field(default_factory=YamuxConfig)
    echo_after_eof: bool = False
    reset_every: int = 0
    reset_after: int = 0
    echoed: int = 0
    resets_done: int = 0
    resets_seen: list[BaseException] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    done: anyio.Event = field(default_factory=anyio.Event)

    async def handle(self, tcp: ByteStream) -> None:
        try:
            async with tcp, MuxedConnection(tcp, is_client=False, config=self.config) as conn:
                async with anyio.create_task_group() as tg:
                    k = 0
                    while True:
                        try:
                            stream = await conn.accept_stream()
                        except (anyio.EndOfStream, anyio.ClosedResourceError,
                                anyio.BrokenResourceError):
                            break
                        k += 1
                        reset = self.reset_every > 0 and k % self.reset_every == 0
                        tg.start_soon(self._echo, stream, reset)
        except Exception as exc:  # reported by the test, not swallowed
            self.errors.append(exc)
        finally:
            self.done.set()

    async def _echo(self, stream: MuxedStream, reset: bool) -> None:
        total = 0
        try:
            if self.echo_after_eof:
                held = bytearray()
                while True:
                    try:
                        held += await stream.receive()
                    except anyio.EndOfStream:
                        break
                for off in range(0, len(held), CHUNK):
                    await stream.send(bytes(held[off : off + CHUNK]))
                await stream.send_eof()
                self.echoed += 1
                return
            while True:
                if reset and total >= self.reset_after:
                    await stream.reset()
                    self.resets_done += 1
                    return
                try:
                    data = await stream.receive()
                except anyio.EndOfStream:
                    break
                total += len(data)
                await stream.send(data)
            await stream.send_eof()
            self.echoed += 1
        except RESET_ERRORS as exc:
            self.resets_seen.append(exc)
        except Exception as exc:
            self.errors.append(exc)
        finally:
            await stream.aclose()


async def run_against_plait_server(
    tools: PeerTools, server: PlaitEchoServer, streams: int, size: int, options: PeerOptions,
    timeout: float = 60.0,
) -> ClientResult:
    """Run the peer's client against a plait echo server; returns once plait saw the
    connection end too."""
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, server.handle)
            result = await tools.run_client(port, streams, size, options, timeout=timeout)
            with anyio.fail_after(10):
                await server.done.wait()
            tg.cancel_scope.cancel()
    assert not server.errors, f"plait server errors: {server.errors!r}\n{result.describe()}"
    assert result.result, f"no RESULT line\n{result.describe()}"
    return result


# --------------------------------------------------------------------------- echo


@pytest.mark.parametrize("streams", [1, 64])
async def test_echo_plait_dials(peer_server: PeerServer, streams: int) -> None:
    """plait opens N concurrent streams to the peer's echo server, 4 MiB each, byte-exact."""
    outcomes: dict[int, EchoOutcome] = {}
    with anyio.fail_after(30):
        async with plait_dial(peer_server.port) as (conn, _):

            async def one(i: int) -> None:
                stream = await conn.open_stream()
                outcomes[i] = await echo_exchange(stream, payload_view(i, BIG))
                await stream.aclose()

            async with anyio.create_task_group() as tg:
                for i in range(streams):
                    tg.start_soon(one, i)
    bad = {i: o for i, o in outcomes.items() if not o.matches(payload_view(i, BIG))}
    assert len(outcomes) == streams and not bad, (bad, peer_server.describe())
    peer_server.assert_alive()


@pytest.mark.parametrize("streams", [1, 64])
async def test_echo_peer_dials(peer_tools: PeerTools, streams: int) -> None:
    """The peer's client opens N concurrent streams to a plait echo server, 4 MiB each."""
    server = PlaitEchoServer()
    run = await run_against_plait_server(peer_tools, server, streams, BIG, PeerOptions())
    assert run.returncode == 0 and run.result["ok"] == streams, run.describe()
    assert server.echoed == streams


# --------------------------------------------------------------------------- half-close


async def test_half_close_plait_dials(peer_server: PeerServer) -> None:
    """plait writes 200 KiB and FIN before reading anything; the full echo then EOF follow."""
    data = payload_view(5, 200 * KiB)  # fits the 256 KiB windows in both directions
    with anyio.fail_after(30):
        async with plait_dial(peer_server.port) as (conn, _):
            stream = await conn.open_stream()
            for off in range(0, len(data), CHUNK):
                await stream.send(bytes(data[off : off + CHUNK]))
            await stream.send_eof()
            received = bytearray()
            while True:
                try:
                    received += await stream.receive()
                except anyio.EndOfStream:
                    break
            assert bytes(received) == data
            with pytest.raises(anyio.EndOfStream):
                await stream.receive()
            await stream.aclose()
            await check_new_stream_echoes(conn)


async def test_half_close_peer_dials(node_tools: PeerTools) -> None:
    """The node client writes 200 KiB then FIN while reading; plait's server answers only
    after the FIN (it buffers until EOF), then sends everything back and its own FIN.
    Node only: Debian's hashicorp copy returns EOF from Read as soon as its buffer is empty
    after a local Close (yamux.md §6.1), so its client cannot read after half-closing."""
    server = PlaitEchoServer(echo_after_eof=True)
    run = await run_against_plait_server(node_tools, server, 4, 200 * KiB, PeerOptions())
    assert run.returncode == 0 and run.result["ok"] == 4, run.describe()
    assert server.echoed == 4


# --------------------------------------------------------------------------- resets


async def test_plait_resets_stream(peer_server: PeerServer) -> None:
    """plait resets one stream mid-echo: the peer reports the reset on that stream, and a
    concurrent stream keeps echoing to the end."""
    with anyio.fail_after(30):
        async with plait_dial(peer_server.port) as (conn, local_port):
            victim = await conn.open_stream()
            await victim.send(bytes(payload_view(1, CHUNK)))
            first = await victim.receive()  # the peer has the stream and echoes
            assert first and bytes(payload_view(1, CHUNK)).startswith(first)
            survivor = await conn.open_stream()
            async with anyio.create_task_group() as tg:
                outcome: list[EchoOutcome] = []

                async def run_survivor() -> None:
                    outcome.append(await echo_exchange(survivor, payload_view(2, BIG // 4)))

                tg.start_soon(run_survivor)
                await victim.reset()
            await survivor.aclose()
            assert outcome[0].matches(payload_view(2, BIG // 4)), outcome
            events = await peer_server.wait_events("reset", local_port)
            sid = stream_id(victim)
            if sid is not None:
                assert events[0].fields["stream"] == str(sid), events
            await check_new_stream_echoes(conn)
    peer_server.assert_alive()


async def test_peer_resets_stream(
    start_peer_server: Callable[[PeerOptions], PeerServer],
) -> None:
    """The peer resets every 2nd stream after echoing 64 KiB: those 2 of 4 streams fail
    with a reset error on plait's side, the other 2 echo 1 MiB byte-exactly."""
    server = start_peer_server(PeerOptions(reset_every=2, reset_after=CHUNK))
    outcomes: dict[int, EchoOutcome] = {}
    with anyio.fail_after(30):
        async with plait_dial(server.port) as (conn, local_port):

            async def one(i: int) -> None:
                stream = await conn.open_stream()
                outcomes[i] = await echo_exchange(stream, payload_view(i, 1 * MiB))
                await stream.aclose()

            async with anyio.create_task_group() as tg:
                for i in range(4):
                    tg.start_soon(one, i)
            await server.wait_events("did-reset", local_port, count=2)
            await check_new_stream_echoes(conn)
    reset = [o for o in outcomes.values() if o.reset is not None]
    ok = [i for i, o in outcomes.items() if o.matches(payload_view(i, 1 * MiB))]
    assert len(reset) == 2 and len(ok) == 2, (outcomes, server.describe())
    for o in reset:
        assert isinstance(o.reset, StreamResetError), repr(o.reset)
        assert not o.eof


async def test_peer_client_resets_stream(peer_tools: PeerTools) -> None:
    """The peer's client resets every 2nd stream after writing 64 KiB: plait's server sees
    a reset error on exactly those streams and echoes the others to the end."""
    server = PlaitEchoServer()
    options = PeerOptions(reset_every=2, reset_after=CHUNK)
    run = await run_against_plait_server(peer_tools, server, 4, 1 * MiB, options)
    assert run.returncode == 0, run.describe()
    assert run.result["ok"] == 2 and run.result["local_resets"] == 2, run.describe()
    assert len(server.resets_seen) == 2 and server.echoed == 2, server
    assert all(isinstance(e, StreamResetError) for e in server.resets_seen), server.resets_seen


async def test_plait_server_resets_stream(peer_tools: PeerTools) -> None:
    """plait's server resets every 2nd stream after echoing 64 KiB: the peer's client sees
    exactly those resets and the other streams echo to the end."""
    server = PlaitEchoServer(reset_every=2, reset_after=CHUNK)
    run = await run_against_plait_server(peer_tools, server, 4, 1 * MiB, PeerOptions())
    assert run.returncode == 0, run.describe()
    assert run.result["ok"] == 2 and run.result["remote_resets"] == 2, run.describe()
    assert server.resets_done == 2 and server.echoed == 2, server


# --------------------------------------------------------------------------- keep-alive

KEEPALIVE = 0.3
#: hashicorp's pong deadline (ConnectionWriteTimeout); the session dies past it.
PONG_DEADLINE = 0.6


def keepalive_options(kind: str, idle: float | None = None) -> PeerOptions:
    if kind == "hashicorp":
        return PeerOptions(keepalive=KEEPALIVE, write_timeout=PONG_DEADLINE, idle=idle)
    return PeerOptions(keepalive=KEEPALIVE, idle=idle)


async def test_keepalive_plait_dials(
    peer_kind: str, start_peer_server: Callable[[PeerOptions], PeerServer]
) -> None:
    """An idle plait connection answers the peer's pings (every 0.3 s; hashicorp drops the
    session when a pong is 0.6 s late): after 3 answered pings the connection still echoes."""
    server = start_peer_server(keepalive_options(peer_kind))
    with anyio.fail_after(20):
        async with plait_dial(server.port) as (conn, local_port):
            await server.wait_events("pong", local_port, count=3, timeout=10)
            await check_new_stream_echoes(conn)
            assert not server.events("closed", local_port), server.describe()


async def test_keepalive_peer_dials(peer_kind: str, peer_tools: PeerTools) -> None:
    """The peer's client idles 1.5 s (5 keep-alive intervals) on a plait server
    connection; its pings are answered and it then echoes normally."""
    server = PlaitEchoServer()
    options = keepalive_options(peer_kind, idle=1.5)
    run = await run_against_plait_server(peer_tools, server, 2, 64 * KiB, options)
    assert run.returncode == 0 and run.result["ok"] == 2, run.describe()
    assert run.result["pongs"] >= 3, run.describe()


# --------------------------------------------------------------------------- stream limits

LIMIT = 128
OPENED = 300


async def test_many_streams_against_peer_limit(
    peer_kind: str, start_peer_server: Callable[[PeerOptions], PeerServer]
) -> None:
    """plait opens 300 streams at once at a peer that admits 128 (node: maxInboundStreams;
    hashicorp: AcceptBacklog with accepting delayed 1 s). The refused streams fail one by
    one with a reset error, the admitted ones echo, the connection survives and a new
    stream works afterwards."""
    if peer_kind == "hashicorp":
        options = PeerOptions(stream_limit=LIMIT, accept_delay=1.0)
    else:
        options = PeerOptions(stream_limit=LIMIT)
    server = start_peer_server(options)
    phase: dict[int, str] = {}
    refused: list[BaseException] = []
    other: list[BaseException] = []
    all_tried = anyio.Event()

    def tried(i: int, outcome: str) -> None:
        phase[i] = outcome
        if sum(p in ("admitted", "refused", "error") for p in phase.values()) == OPENED:
            all_tried.set()

    async with plait_dial(server.port) as (conn, local_port):

        async def one(i: int) -> None:
            data = bytes(payload_view(i, 1 * KiB))
            phase[i] = "opening"
            stream = await conn.open_stream()
            try:
                phase[i] = "first echo"
                await stream.send(data)
                got = await stream.receive()
                # Keep every admitted stream open until all 300 were tried, so the
                # peer's limit counts them all at once.
                tried(i, "admitted")
                await all_tried.wait()
                await stream.send_eof()
                while len(got) < len(data):
                    got += await stream.receive()
                with pytest.raises(anyio.EndOfStream):
                    await stream.receive()
                phase[i] = "ok" if got == data else "echo mismatch"
            except RESET_ERRORS as exc:
                refused.append(exc)
                tried(i, "refused")
            except Exception as exc:
                other.append(exc)
                tried(i, "error")
            finally:
                await stream.aclose()

        with anyio.move_on_after(20) as scope:
            async with anyio.create_task_group() as tg:
                for i in range(OPENED):
                    tg.start_soon(one, i)
        counts = Counter(phase.values())
        assert not scope.cancelled_caught, f"stuck after 20 s: {dict(counts)}"
        assert not other, other[:3]
        assert counts["ok"] == LIMIT and counts["refused"] == OPENED - LIMIT, (
            dict(counts), server.describe())
        assert all(isinstance(e, StreamResetError) for e in refused), refused[:3]
        with anyio.fail_after(10):
            await check_new_stream_echoes(conn)
        assert not server.events("closed", local_port), server.describe()
    server.assert_alive()

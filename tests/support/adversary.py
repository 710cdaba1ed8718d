"""The shared harness of the adversarial catalogue (hardening.md §3.1).

Names follow the catalogue:

- **RAW**: :func:`raw_connect` opens a plain TCP connection to 127.0.0.1, optionally from a
  chosen source address (:func:`source_host`: 127.0.0.2 … 127.0.0.254, all loopback on
  Linux) so per-IP limits can be exercised; :func:`slow_connect` is the **SLOW** client
  (``SO_RCVBUF`` 4096, it never reads); :func:`reset` closes with ``SO_LINGER`` 0, so the
  kernel sends a TCP **RST** instead of a FIN.
- **NOISE**: :class:`NoiseAttacker` sends the wire byte, completes a real Noise XX handshake
  (the same :class:`~plait.noise.NoiseStream` the cacophony vectors check) and, unless told
  not to, the identity exchange; then ``send_plain`` encrypts arbitrary bytes and
  ``send_raw`` writes raw bytes (lengths, ciphertext) under the encryption.
- **YMX**: :class:`NoiseYamux` is the raw frame client of ``support.yamux_raw`` on top of
  NOISE: crafted Yamux frames go in, received frames are decoded (GO_AWAY codes, RSTs, data
  per stream); :func:`ymx_negotiate` opens a stream and negotiates a protocol on it.
- **RPC**: :func:`rpc_frame` builds ``u32 BE length ‖ protobuf`` on top of YMX.
- **BYSTANDER**: :class:`Bystander` is an honest node with an echo substream to the target;
  :meth:`Bystander.check` proves byte-exact echo still works.
- **BOUNDS**: :func:`open_fds`, :func:`traced_peak`, :func:`wait_until` and the node helpers
  :func:`assert_idle` / :func:`next_event`.
"""

from __future__ import annotations

import os
import socket
import struct
import tracemalloc
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from anyio.abc import SocketAttribute, SocketStream
from plait.identity import NodeIdentity
from plait.node import ECHO_PROTOCOL_ID, Node, NodeConfig, NodeEvents, echo_handler
from plait.noise import NoiseConfig, NoiseStream, StaticKeypair
from plait.rpc import RpcClientConfig
from plait.rpc.greeting import GREETING_PROTOCOL, Greeting
from plait.rpc.proto.greeting_pb2 import SayHelloRequest
from plait.rpc.proto.rpc_pb2 import RpcResponse, RpcSession, RpcSessionReply
from plait.transport import (
    DEFAULT_NETWORK_BYTE,
    IdentityFrameReader,
    PeerIdentity,
    encode_identity_frame,
)

from support.waiting import wait_until
from support.yamux_raw import DATA, FIN, RST, SYN, WINDOW_UPDATE, AsyncRawYamux, RawFrame, frame

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    from anyio.abc import ByteStream
    from google.protobuf.message import Message
    from plait.node import PeerConnection
    from plait.rpc import Service

E = TypeVar("E")

__all__ = (
    "HELLO",
    "Bystander",
    "NoiseAttacker",
    "NoiseYamux",
    "RpcProbe",
    "assert_idle",
    "listening_node",
    "negotiation_frame",
    "next_event",
    "open_fds",
    "raw_connect",
    "reset",
    "rpc_frame",
    "slow_connect",
    "source_host",
    "traced_peak",
    "wait_until",
    "ymx_negotiate",
)


# ------------------------------------------------------------------------------ RAW


def source_host(index: int) -> str:
    """A distinct loopback source address, ``127.0.0.{index}`` (2..254)."""
    if not 2 <= index <= 254:
        raise ValueError("source index must be within 2..254")
    return f"127.0.0.{index}"


async def raw_connect(port: int, *, source: str | None = None) -> SocketStream:
    """A plain TCP client to 127.0.0.1:``port``, from ``source`` when given."""
    return await anyio.connect_tcp("127.0.0.1", port, local_host=source)


async def slow_connect(port: int, *, rcvbuf: int = 4096) -> SocketStream:
    """The SLOW client: a tiny receive buffer set before connecting; the test never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    try:
        sock.connect(("127.0.0.1", port))
    except BlockingIOError:
        await anyio.wait_writable(sock)
    return await SocketStream.from_socket(sock)


def reset_on_close(stream: SocketStream) -> None:
    """Make the next ``aclose`` of ``stream`` send a TCP RST (SO_LINGER 0)."""
    sock = stream.extra(SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def reset(stream: SocketStream) -> None:
    """Abort ``stream`` with a TCP RST."""
    reset_on_close(stream)
    await stream.aclose()


# ------------------------------------------------------------------------------ NOISE


class NoiseAttacker:
    """A dialer that speaks the real upgrade, then sends whatever the test crafts.

    Build with :meth:`connect`. ``tcp`` is the socket underneath, ``noise`` the secured
    stream (its ``core`` seals messages the test may corrupt before ``send_raw``).
    """

    def __init__(self, tcp: SocketStream, noise: NoiseStream, key: StaticKeypair) -> None:
        self.tcp = tcp
        self.noise = noise
        self.key = key
        self.peer_identity: PeerIdentity | None = None

    @classmethod
    async def connect(
        cls,
        port: int,
        *,
        key: StaticKeypair | None = None,
        identity: PeerIdentity | None = None,
        exchange_identity: bool = True,
        source: str | None = None,
        rcvbuf: int | None = None,
    ) -> NoiseAttacker:
        """Wire byte, Noise XX as initiator and (by default) the identity exchange.

        :param rcvbuf: make this a SLOW client (``SO_RCVBUF`` set before connecting).
        """
        key = key if key is not None else StaticKeypair.generate()
        if rcvbuf is not None:
            tcp = await slow_connect(port, rcvbuf=rcvbuf)
        else:
            tcp = await raw_connect(port, source=source)
        await tcp.send(bytes([DEFAULT_NETWORK_BYTE]))
        noise = await NoiseStream.wrap(tcp, NoiseConfig(static_key=key), initiator=True)
        attacker = cls(tcp, noise, key)
        if exchange_identity:
            await noise.send(encode_identity_frame(identity or PeerIdentity()))
            attacker.peer_identity = await attacker.read_identity()
        return attacker

    async def read_identity(self) -> PeerIdentity:
        """Read the node's identity frame, exactly (nothing after it is consumed)."""
        reader = IdentityFrameReader()
        while True:
            size = reader.next_read_size
            result = reader.receive_data(await self.noise.receive(size))
            if result is not None:
                return result

    async def send_plain(self, data: bytes) -> None:
        """Encrypt ``data`` as transport messages and send them."""
        await self.noise.send(data)

    def seal(self, data: bytes) -> bytes:
        """The framed ciphertext of ``data`` (advances our nonce; send it with send_raw)."""
        return bytes(self.noise.core.seal(data))

    async def send_raw(self, data: bytes) -> None:
        """Write ``data`` to TCP as is, under the encryption."""
        await self.tcp.send(data)

    async def receive_plain(self, max_bytes: int = 65536) -> bytes:
        return await self.noise.receive(max_bytes)

    async def expect_closed(self, timeout: float = 5.0) -> BaseException:
        """Read until the node closes the connection; return how it ended."""
        with anyio.fail_after(timeout):
            while True:
                try:
                    await self.tcp.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError) as exc:
                    return exc

    async def reset(self) -> None:
        await reset(self.tcp)

    async def aclose(self) -> None:
        await anyio.aclose_forcefully(self.tcp)


class NoiseYamux(AsyncRawYamux):
    """YMX: raw Yamux frames inside a real Noise channel (the dialer's odd stream ids)."""

    def __init__(self, attacker: NoiseAttacker, *, answer_pings: bool = True) -> None:
        super().__init__(attacker.noise, answer_pings=answer_pings)  # type: ignore[arg-type]
        self.attacker = attacker

    @classmethod
    async def connect_to(cls, port: int, **kwargs: object) -> NoiseYamux:
        return cls(await NoiseAttacker.connect(port, **kwargs))  # type: ignore[arg-type]

    async def recv_until(
        self, predicate: Callable[[list[RawFrame]], bool], timeout: float = 5.0
    ) -> list[RawFrame]:
        """As in the base class; a pong that cannot be written any more also means EOF."""
        try:
            return await super().recv_until(predicate, timeout)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.eof = True
            return self.frames

    def data_of(self, stream_id: int) -> bytes:
        """Every DATA body received so far on ``stream_id``, joined."""
        return b"".join(f.body for f in self.frames if f.stream_id == stream_id and f.type == DATA)

    def was_reset(self, stream_id: int) -> bool:
        return any(f.stream_id == stream_id and f.flags & 8 for f in self.frames)

    async def wait_reset(self, stream_id: int, timeout: float = 5.0) -> bool:
        await self.recv_until(lambda _fs: self.was_reset(stream_id), timeout)
        return self.was_reset(stream_id)

    async def wait_data(self, stream_id: int, size: int, timeout: float = 5.0) -> bytes:
        await self.recv_until(lambda _fs: len(self.data_of(stream_id)) >= size, timeout)
        return self.data_of(stream_id)

    async def aclose(self) -> None:
        await self.attacker.aclose()


def negotiation_frame(protocol: bytes, flags: int = 0) -> bytes:
    """``u8 len ‖ u8 flags ‖ id`` (wire.md §2.1)."""
    return bytes([len(protocol), flags]) + protocol


async def ymx_negotiate(ymx: NoiseYamux, stream_id: int, protocol: bytes) -> None:
    """Open ``stream_id`` and negotiate ``protocol`` (normal mode); wait for the echo."""
    proposal = negotiation_frame(protocol)
    await ymx.send(frame(WINDOW_UPDATE, SYN, stream_id, 0) + frame(DATA, 0, stream_id, body=proposal))
    data = await ymx.wait_data(stream_id, len(proposal))
    assert data[: len(proposal)] == proposal, data


HELLO = RpcSession(supported_versions=[0])
"""The client's ``RpcSession`` offering version 0."""
_LEN = struct.Struct(">I")


def rpc_frame(message: Message | bytes) -> bytes:
    """``u32 BE length ‖ body`` (wire.md §3.1)."""
    body = message if isinstance(message, bytes) else message.SerializeToString()
    return struct.pack(">I", len(body)) + body


class RpcProbe:
    """RPC: one crafted session on a YMX stream (negotiation done), frames in and out."""

    def __init__(self, ymx: NoiseYamux, stream_id: int, protocol: bytes) -> None:
        self.ymx = ymx
        self.sid = stream_id
        self.offset = 2 + len(protocol)  # the negotiation echo precedes the RPC frames

    @classmethod
    async def open(
        cls, ymx: NoiseYamux, stream_id: int, protocol: bytes = GREETING_PROTOCOL
    ) -> RpcProbe:
        await ymx_negotiate(ymx, stream_id, protocol)
        return cls(ymx, stream_id, protocol)

    async def send(self, message: Message | bytes) -> None:
        await self.ymx.send(frame(DATA, 0, self.sid, body=rpc_frame(message)))

    async def handshake(self) -> RpcSessionReply:
        await self.send(HELLO)
        reply = RpcSessionReply.FromString(await self.next_body())
        assert reply.WhichOneof("session_result") == "accepted_version", reply
        return reply

    def _bodies(self) -> list[bytes]:
        data = self.ymx.data_of(self.sid)[self.offset :]
        bodies = []
        pos = 0
        while len(data) - pos >= 4:
            (length,) = _LEN.unpack_from(data, pos)
            if len(data) - pos - 4 < length:
                break
            bodies.append(data[pos + 4 : pos + 4 + length])
            pos += 4 + length
        return bodies

    async def next_body(self, timeout: float = 5.0) -> bytes:
        """The next complete RPC frame body the server sent."""
        taken = getattr(self, "_taken", 0)
        await self.ymx.recv_until(lambda _fs: len(self._bodies()) > taken, timeout)
        bodies = self._bodies()
        assert len(bodies) > taken, "no RPC frame arrived"
        self._taken = taken + 1
        return bodies[taken]

    async def response(self) -> RpcResponse:
        return RpcResponse.FromString(await self.next_body())

    def ended(self) -> bool:
        """The server closed (FIN) or reset the stream."""
        return any(f.stream_id == self.sid and f.flags & (FIN | RST) for f in self.ymx.frames)

    async def wait_ended(self, timeout: float = 5.0) -> None:
        await self.ymx.recv_until(lambda _fs: self.ended(), timeout)
        assert self.ended(), "the server did not end the stream"


# ------------------------------------------------------------------------------ nodes


@asynccontextmanager
async def listening_node(
    config: NodeConfig | None = None, *, services: tuple[Service, ...] = ()
) -> AsyncIterator[tuple[Node, int]]:
    """A node serving the echo protocol (and ``services``) on 127.0.0.1; yields it and its
    port."""
    async with Node(NodeIdentity.generate(), config) as node:
        node.add_protocol(ECHO_PROTOCOL_ID, echo_handler)
        for service in services:
            node.add_service(service)
        address = await node.listen("tcp://127.0.0.1:0")
        yield node, int(address.rsplit(":", 1)[1])


async def next_event(events: NodeEvents, kind: type[E], timeout: float = 5.0) -> E:
    """The next event of type ``kind`` (others are skipped)."""
    with anyio.fail_after(timeout):
        async for event in events:
            if isinstance(event, kind):
                return event
    raise AssertionError("the event stream ended")


def assert_idle(node: Node) -> None:
    """Nothing upgrading, connected or closing, no negotiation or handler, no task beyond
    the accept loop, no RPC session."""
    stats = node.statistics()
    assert (stats.upgrading, stats.connections, stats.closing) == (0, 0, 0), stats
    assert (stats.negotiating, stats.handlers) == (0, 0), stats
    assert stats.tasks == stats.listeners == 1, stats
    assert node.num_active_sessions() == 0




class Bystander:
    """An honest peer with a long-lived echo substream to the target node, and an RPC
    session when the target serves the Greeting service."""

    def __init__(
        self, node: Node, conn: PeerConnection, stream: ByteStream, greeter: Any = None
    ) -> None:
        self.node = node
        self.conn = conn
        self.stream = stream
        self.greeter = greeter
        self.rounds = 0

    async def check(self, size: int = 4096) -> None:
        """One byte-exact echo round trip, and one RPC call when there is a session (raises
        on loss, corruption, a dead stream or a failed call)."""
        payload = os.urandom(size)
        with anyio.fail_after(5):
            await self.stream.send(payload)
            echoed = b""
            while len(echoed) < size:
                echoed += await self.stream.receive()
            assert echoed == payload
            if self.greeter is not None:
                reply = await self.greeter.say_hello(SayHelloRequest(name="bystander"))
                assert reply.greeting.endswith(" bystander")
        self.rounds += 1


@asynccontextmanager
async def bystander(target: Node, port: int, *, rpc: bool = False) -> AsyncIterator[Bystander]:
    """BYSTANDER: a node that dials ``target`` and keeps an echo substream open, and with
    ``rpc`` a Greeting session too (it holds one of the target's RPC slots)."""
    async with Node(NodeIdentity.generate()) as node:
        conn = await node.dial(f"tcp://127.0.0.1:{port}", target.peer_id)
        stream = await conn.open_substream(ECHO_PROTOCOL_ID)
        greeter = None
        if rpc:
            greeter = await conn.connect_rpc(Greeting.Client, config=RpcClientConfig(
                deadline=5, deadline_grace_period=2, handshake_timeout=5))
        peer = Bystander(node, conn, stream, greeter)
        await peer.check()
        yield peer
        await peer.check()
        if greeter is not None:
            await greeter.aclose()
        await stream.aclose()


# ------------------------------------------------------------------------------ BOUNDS


def open_fds() -> int | None:
    """Open file descriptors of this process (None where /proc is missing)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except FileNotFoundError:  # not Linux
        return None


@contextmanager
def traced_peak() -> Iterator[Callable[[], int]]:
    """Trace allocations; the yielded function returns the peak (bytes) above the start."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    try:
        yield lambda: tracemalloc.get_traced_memory()[1] - base
    finally:
        if started:
            tracemalloc.stop()

"""``plait demo`` (``make demo``): two nodes in one process over real TCP, as a transcript.

Alice and Bob are full :class:`~plait.Node` objects on 127.0.0.1. Bob's TCP transport is the
real one wrapped in a tap that records every write on the raw socket, so the transcript can
show what the connection upgrade put on the wire (the network byte, the three Noise XX
messages of 32, 96 and 64 bytes, the encrypted identity exchange) before Yamux takes over.
Then: echo substreams negotiated optimistically and normally, Greeting RPC calls (unary and
streaming) and a session refused with ``NO_SERVER_SESSIONS_AVAILABLE`` because Bob's RPC
server allows one session at a time. It finishes in about a second.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import anyio
from anyio.abc import ByteStream

from .identity import NodeIdentity
from .node import ECHO_PROTOCOL_ID, Node, NodeConfig, echo_handler
from .noise._symmetric import TAG_SIZE
from .noise.config import DEFAULT_PROTOCOL_NAME
from .rpc import RejectReason, RpcClientConfig, RpcHandshakeRejected, RpcServerConfig
from .rpc.greeting import GREETING_PROTOCOL, Greeting
from .rpc.proto.greeting_pb2 import GetGreetingsRequest, SayHelloRequest
from .transport import Network, TcpTransport, Transport, TransportListener

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .transport import TransportAddress

__all__ = ("run_demo",)


NOISE_LENGTH_PREFIX = 2  # u16 BE before every Noise message (wire.md §1.3.2)


@dataclass(frozen=True, slots=True)
class _Write:
    side: str
    data: bytes


class _Tap(ByteStream):
    """Passes bytes through; records the first ``limit`` writes on the wire."""

    def __init__(self, inner: ByteStream, side: str, log: list[_Write], limit: int) -> None:
        self._inner = inner
        self._side = side
        self._log = log
        self._limit = limit

    async def send(self, item: bytes) -> None:
        if self._limit > 0:
            self._limit -= 1
            self._log.append(_Write(self._side, bytes(item)))
        await self._inner.send(item)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._inner.receive(max_bytes)

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        await self._inner.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._inner.extra_attributes


class _TapListener(TransportListener):
    def __init__(self, inner: TransportListener, side: str, log: list[_Write]) -> None:
        self._inner = inner
        self._side = side
        self._log = log

    @property
    def address(self) -> TransportAddress:
        return self._inner.address

    async def accept(self) -> ByteStream:
        return _Tap(await self._inner.accept(), self._side, self._log, limit=2)

    async def aclose(self) -> None:
        await self._inner.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._inner.extra_attributes


class _TapTransport(Transport):
    """TCP, with the first writes of each side of the upgrade recorded."""

    scheme = "tcp"

    def __init__(self, log: list[_Write]) -> None:
        self._inner = TcpTransport()
        self._log = log

    async def listen(self, address: str | TransportAddress) -> TransportListener:
        return _TapListener(await self._inner.listen(address), "bob", self._log)

    async def dial(self, address: str | TransportAddress) -> ByteStream:
        return _Tap(await self._inner.dial(address), "alice", self._log, limit=4)


def _describe_writes(log: list[_Write], network_byte: int) -> list[str]:
    """Name each recorded write: the dialer writes byte, msg 1, msg 3, identity; the
    listener msg 2, identity (wire.md §1.1)."""
    names = {
        ("alice", 0): "network byte",
        ("alice", 1): "Noise XX message 1 (-> e)",
        ("bob", 0): "Noise XX message 2 (<- e, ee, s, es)",
        ("alice", 2): "Noise XX message 3 (-> s, se)",
        ("alice", 3): "identity exchange, encrypted",
        ("bob", 1): "identity exchange, encrypted",
    }
    counts = {"alice": 0, "bob": 0}
    lines = []
    for write in log:
        index = counts[write.side]
        counts[write.side] += 1
        name = names.get((write.side, index), "data")
        arrow = "alice -> bob  " if write.side == "alice" else "bob   -> alice"
        size = len(write.data)
        if name == "network byte":
            try:
                label = f"network byte 0x{write.data[0]:02x}"
                label += f" ({Network(write.data[0]).name.lower()})"
            except ValueError:
                label += " (plait's own network)"
            detail = label
        elif name.startswith("Noise"):
            detail = f"{name}: {size - NOISE_LENGTH_PREFIX} B + 2 B length"
        else:
            plain = size - NOISE_LENGTH_PREFIX - TAG_SIZE
            detail = f"{name}: {plain} B of identity frame + 16 B tag + 2 B length"
        lines.append(f"  {arrow} {size:>4} B  {detail}")
    assert network_byte == log[0].data[0]
    return lines


async def _demo(out: TextIO) -> None:
    started = anyio.current_time()

    def say(text: str = "") -> None:
        print(text, file=out)

    log: list[_Write] = []
    alice_id, bob_id = NodeIdentity.generate(), NodeIdentity.generate()
    bob_config = NodeConfig(rpc_server=RpcServerConfig(max_sessions=1))
    say("plait demo: two nodes in one process over TCP on 127.0.0.1")
    say()
    say("[identities] a peer id is the hex of the node's X25519 static key (its Noise key)")
    say(f"  alice  peer id {alice_id.peer_id}")
    say(f"  bob    peer id {bob_id.peer_id}")
    async with (
        Node(bob_id, bob_config, tcp_transport=_TapTransport(log)) as bob,
        Node(alice_id, tcp_transport=_TapTransport(log)) as alice,
    ):
        bob.add_protocol(ECHO_PROTOCOL_ID, echo_handler)
        bob.add_service(Greeting())
        address = await bob.listen("tcp://127.0.0.1:0")
        say()
        say(f"[listen] bob listens on {address}")
        say(f"  serving the echo protocol {ECHO_PROTOCOL_ID.decode()} and the Greeting RPC "
            f"service {GREETING_PROTOCOL.decode()} (max_sessions=1)")

        conn = await alice.dial(address, bob.peer_id)
        say()
        say(f"[upgrade] alice dials bob: network byte, {DEFAULT_PROTOCOL_NAME}, "
            "identity exchange")
        for line in _describe_writes(log, bob.config.network_byte):
            say(line)
        inbound = bob.get_connection(alice.peer_id)
        assert inbound is not None
        assert conn.public_key == bob.public_key and inbound.public_key == alice.public_key
        say("  both sides authenticated the other's static key")
        say(f"  handshake hash (equal on both sides) {conn.handshake_hash.hex()[:32]}...")
        advertised = ", ".join(p.decode() for p in conn.identity.supported_protocols)
        say(f"  bob advertised: user agent {conn.identity.user_agent!r}, protocols {advertised}")
        say("  then Yamux over Noise: alice is the client (odd stream ids), bob the server")

        say()
        say("[substreams] each substream negotiates its protocol (u8 len, u8 flags, id)")
        message = b"hello from alice"
        stream = await conn.open_substream(ECHO_PROTOCOL_ID)
        await stream.send(message)
        echoed = await stream.receive()
        await stream.aclose()
        say(f"  echo, optimistic (bob advertised it: no round trip): sent {message.decode()!r},"
            f" got {echoed.decode()!r}")
        stream = await conn.open_substream(ECHO_PROTOCOL_ID, optimistic=False)
        await stream.send(b"and again")
        echoed = await stream.receive()
        await stream.aclose()
        say(f"  echo, normal (proposal, then bob's echo of the id): got {echoed.decode()!r}")
        stats = conn.statistics()
        say(f"  alice's substreams so far: {stats.optimistic_opens} optimistic, "
            f"{stats.normal_opens} normal")

        say()
        say(f"[rpc] alice opens an RPC session: a substream for {GREETING_PROTOCOL.decode()},")
        say("  then RpcSession{supported_versions: [0]} -> RpcSessionReply{accepted_version: 0}")
        config = RpcClientConfig(deadline=5, deadline_grace_period=5, handshake_timeout=5)
        async with await conn.connect_rpc(Greeting.Client, config=config) as client:
            reply = await client.say_hello(SayHelloRequest(name="Ada", language=3))
            say(f"  say_hello(name='Ada', language=3) -> {reply.greeting!r}")
            key = await client.get_public_key_hex()
            say(f"  get_public_key_hex() -> {key.value[:16]}... (alice's key, as bob's "
                "server saw the caller)")
            items = [t.value async for t in client.get_greetings(GetGreetingsRequest(num=4))]
            say(f"  get_greetings(num=4) streams {len(items)} items, then an empty FIN "
                "terminator:")
            say(f"    {', '.join(items)}")
            say(f"  bob's RPC server holds {bob.num_active_sessions(alice.peer_id)} session "
                "for alice")
            try:
                await conn.connect_rpc(Greeting.Client, config=config)
            except RpcHandshakeRejected as exc:
                assert exc.reason is RejectReason.NO_SERVER_SESSIONS_AVAILABLE
                say("  a second session while the first is open -> rejected with "
                    f"{exc.reason.name}")
                say("    (bob's max_sessions=1; the reply is sent before reading the request)")
            else:  # pragma: no cover - the cap is 1
                raise AssertionError("the second session was not rejected")
        say("  first session closed")
        await conn.disconnect()
        say()
        say("[close] alice disconnects: Yamux GO_AWAY, then the TCP connection closes")
    say(f"\ndone in {anyio.current_time() - started:.2f} s.")


def run_demo(out: TextIO | None = None, *, backend: str = "asyncio") -> int:
    """Run the demo, printing its transcript to ``out`` (default stdout).

    :param backend: the anyio backend, ``"asyncio"`` or ``"trio"``.
    :return: the exit code, 0.
    """
    anyio.run(_demo, out or sys.stdout, backend=backend)
    return 0

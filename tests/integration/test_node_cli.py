"""``plait node`` and ``plait call`` as subprocesses over real TCP on 127.0.0.1.

A node is started with ``--listen tcp://127.0.0.1:0``; the tests wait for its printed
``listening on:`` line (never a sleep), then reach it with a Node (echo, RPC) and with
``plait call``, and finally stop it with a signal.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from plait.identity import NodeIdentity
from plait.node import ECHO_PROTOCOL_ID, Node
from plait.rpc import RejectReason, RpcHandshakeRejected
from plait.rpc.greeting import GREETING_PROTOCOL, Greeting
from plait.rpc.proto.greeting_pb2 import SayHelloRequest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from anyio.abc import Process

pytestmark = [pytest.mark.anyio, pytest.mark.network]

PLAIT = [sys.executable, "-m", "plait"]


@dataclass
class RunningNode:
    process: Process
    peer_id: str
    address: str


@asynccontextmanager
async def plait_node(*extra: str) -> AsyncIterator[RunningNode]:
    """``plait node --listen tcp://127.0.0.1:0 EXTRA...``, ready once it printed its address."""
    command = [*PLAIT, "node", "--listen", "tcp://127.0.0.1:0", *extra]
    async with await anyio.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        try:
            assert process.stdout is not None
            out = BufferedByteReceiveStream(process.stdout)
            with anyio.fail_after(30):
                peer_line = (await out.receive_until(b"\n", 1000)).decode()
                listen_line = (await out.receive_until(b"\n", 1000)).decode()
            assert peer_line.startswith("peer id: ") and listen_line.startswith("listening on: ")
            peer_id = peer_line.removeprefix("peer id: ").strip()
            address = listen_line.removeprefix("listening on: ").strip()
            assert address.startswith("tcp://127.0.0.1:")
            yield RunningNode(process, peer_id, address)
        finally:
            if process.returncode is None:
                process.kill()


async def read_stderr(process: Process) -> str:
    assert process.stderr is not None
    chunks = []
    with anyio.fail_after(10):
        try:
            while True:
                chunks.append(await process.stderr.receive())
        except anyio.EndOfStream:
            pass
    return b"".join(chunks).decode()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_plait_node_serves_echo_and_greeting_until_a_signal(
    tmp_path: Path, signum: int
) -> None:
    identity_file = tmp_path / "node.json"
    async with plait_node("--identity", str(identity_file)) as running:
        # the missing identity file was generated and saved
        assert NodeIdentity.load(identity_file).peer_id == running.peer_id
        async with Node(NodeIdentity.generate()) as node:
            with anyio.fail_after(10):
                conn = await node.dial(running.address, running.peer_id)
                assert conn.identity.supported_protocols == (ECHO_PROTOCOL_ID, GREETING_PROTOCOL)
                stream = await conn.open_substream(ECHO_PROTOCOL_ID)
                await stream.send(b"hello plait node")
                assert await stream.receive() == b"hello plait node"
                await stream.aclose()

                client = await conn.connect_rpc(Greeting.Client)
                reply = await client.say_hello(SayHelloRequest(name="node", language=2))
                assert reply.greeting == "Bonjour node"
                assert (await client.get_public_key_hex()).value == node.peer_id

                running.process.send_signal(signum)
                assert await running.process.wait() == 0
                await conn.wait_closed()  # the node said GO_AWAY on its way out
        errors = await read_stderr(running.process)
        assert "connected to" in errors and "stopped" in errors


async def run_plait(*args: str) -> subprocess.CompletedProcess[bytes]:
    with anyio.fail_after(60):
        return await anyio.run_process([*PLAIT, *args], check=False)


async def test_plait_call_against_plait_node() -> None:
    async with plait_node() as running:
        done = await run_plait("call", running.address, "say_hello", "Ada", "--peer-id",
                               running.peer_id)
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode() == "Sawubona Ada\n"

        done = await run_plait("call", running.address, "say_hello", "Ada", "--language", "3",
                               "--json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["method"] == "say_hello"
        assert result["greeting"] == "Hello Ada"
        assert result["peer_id"] == running.peer_id
        assert result["latency_ms"] >= 0

        done = await run_plait("call", running.address, "get_greetings", "3")
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode().splitlines() == ["Sawubona", "Jambo", "Bonjour"]

        # errors: a status from the server, and a peer id that does not match
        done = await run_plait("call", running.address, "say_hello", "x", "--language", "99")
        assert done.returncode == 1
        assert b"BAD_REQUEST" in done.stderr and b"`99` is not a valid language" in done.stderr
        wrong = NodeIdentity.generate().peer_id
        done = await run_plait("call", running.address, "say_hello", "x", "--peer-id", wrong)
        assert done.returncode == 1
        assert done.stderr.startswith(b"plait call: ")
        running.process.send_signal(signal.SIGINT)
        assert await running.process.wait() == 0


async def test_plait_node_session_caps_reach_the_rpc_server() -> None:
    async with plait_node("--max-sessions", "0") as running:
        async with Node(NodeIdentity.generate()) as node:
            with anyio.fail_after(10):
                conn = await node.dial(running.address, running.peer_id)
                with pytest.raises(RpcHandshakeRejected) as info:
                    await conn.connect_rpc(Greeting.Client)
                assert info.value.reason is RejectReason.NO_SERVER_SESSIONS_AVAILABLE
        done = await run_plait("call", running.address, "say_hello", "x")
        assert done.returncode == 1
        assert b"NO_SERVER_SESSIONS_AVAILABLE" in done.stderr
        running.process.send_signal(signal.SIGINT)
        assert await running.process.wait() == 0

    async with plait_node("--max-sessions-per-peer", "1") as running:
        async with Node(NodeIdentity.generate()) as node:
            with anyio.fail_after(10):
                conn = await node.dial(running.address, running.peer_id)
                first = await conn.connect_rpc(Greeting.Client)
                with pytest.raises(RpcHandshakeRejected) as info:
                    await conn.connect_rpc(Greeting.Client)
                assert info.value.reason is RejectReason.NO_CLIENT_SESSIONS_AVAILABLE
                await first.aclose()
        running.process.send_signal(signal.SIGINT)
        assert await running.process.wait() == 0

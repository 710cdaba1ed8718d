"""``plait node`` and ``plait call`` as subprocesses over real TCP on 127.0.0.1.

A node is started with ``--listen tcp://127.0.0.1:0``; the tests wait for its printed
``listening on:`` line or its ``--json`` line (never a sleep), then reach it with a Node
(echo, RPC), with ``plait call`` and with a metrics scrape, and finally stop it with a
signal: exit status 0 and no traceback. Ctrl-C during ``plait call`` exits 130.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
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
        assert "Traceback" not in errors


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


async def test_plait_node_json_line_and_metrics_then_ctrl_c() -> None:
    command = [*PLAIT, "node", "--listen", "tcp://127.0.0.1:0", "--json",
               "--metrics", "127.0.0.1:0"]
    async with await anyio.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        try:
            assert process.stdout is not None
            out = BufferedByteReceiveStream(process.stdout)
            with anyio.fail_after(30):
                line = json.loads(await out.receive_until(b"\n", 10_000))
            assert set(line) == {"peer_id", "listen", "metrics"}
            assert len(line["listen"]) == 1 and line["listen"][0].startswith("tcp://127.0.0.1:")
            assert line["metrics"].startswith("http://127.0.0.1:")
            assert line["metrics"].endswith("/metrics")
            async with Node(NodeIdentity.generate()) as node:
                with anyio.fail_after(10):
                    conn = await node.dial(line["listen"][0], line["peer_id"])
                    client = await conn.connect_rpc(Greeting.Client)
                    reply = await client.say_hello(SayHelloRequest(name="m"))
                    assert reply.greeting == "Sawubona m"
                    text = await anyio.to_thread.run_sync(
                        lambda: urllib.request.urlopen(line["metrics"], timeout=10).read()
                    )
                    metrics = text.decode()
                    assert 'plait_connections{direction="inbound"} 1.0' in metrics
                    assert ('plait_rpc_server_sessions{protocol="/plait/greeting/1"} 1.0'
                            in metrics)
                    assert f'plait_peer_rpc_sessions{{peer_id="{node.peer_id}"}} 1.0' in metrics
                    assert f'peer_id="{line["peer_id"]}"' in metrics  # plait_node_info
                    process.send_signal(signal.SIGINT)
                    assert await process.wait() == 0
            with anyio.fail_after(10):
                assert await out.receive(1) == b""  # nothing after the JSON line
        except anyio.EndOfStream:
            pass
        finally:
            if process.returncode is None:
                process.kill()
        errors = await read_stderr(process)
        assert "received SIGINT, shutting down" in errors
        assert "Traceback" not in errors


async def test_plait_node_metrics_address_in_use_fails_cleanly() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = await run_plait("node", "--listen", "tcp://127.0.0.1:0", "--metrics",
                               f"127.0.0.1:{port}", "--json", "--log-level", "ERROR")
    assert done.returncode == 1
    assert done.stdout == b""  # no JSON line: the node never fully started
    assert done.stderr.decode() == (
        f"plait node: cannot serve metrics on 127.0.0.1:{port}: Address already in use\n"
    )


async def test_ctrl_c_during_plait_call_exits_130_without_a_traceback() -> None:
    # a TCP listener that accepts and stays silent: the call waits in the upgrade
    accepted = anyio.Event()

    async def hold(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            accepted.set()
            await anyio.sleep_forever()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, hold)
        command = [*PLAIT, "call", f"tcp://127.0.0.1:{port}", "say_hello", "x",
                   "--timeout", "60"]
        async with await anyio.open_process(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ) as process:
            try:
                with anyio.fail_after(30):
                    await accepted.wait()
                    process.send_signal(signal.SIGINT)
                    assert await process.wait() == 130
            finally:
                if process.returncode is None:
                    process.kill()
            errors = await read_stderr(process)
            assert "Traceback" not in errors and "KeyboardInterrupt" not in errors
        tg.cancel_scope.cancel()

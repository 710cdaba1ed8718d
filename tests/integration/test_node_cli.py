"""``plait node`` as a subprocess: a Node dials it, echoes over /plait/echo/1, then SIGINT."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from plait.identity import NodeIdentity
from plait.node import ECHO_PROTOCOL_ID, Node

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_plait_node_serves_echo_until_a_signal(tmp_path: Path, signum: int) -> None:
    identity_file = tmp_path / "node.json"
    command = [sys.executable, "-m", "plait", "node", "--listen", "tcp://127.0.0.1:0",
               "--identity", str(identity_file)]
    async with await anyio.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        try:
            assert process.stdout is not None and process.stderr is not None
            out = BufferedByteReceiveStream(process.stdout)
            with anyio.fail_after(30):
                peer_line = (await out.receive_until(b"\n", 1000)).decode()
                listen_line = (await out.receive_until(b"\n", 1000)).decode()
            assert peer_line.startswith("peer id: ") and listen_line.startswith("listening on: ")
            peer_id = peer_line.removeprefix("peer id: ").strip()
            address = listen_line.removeprefix("listening on: ").strip()
            assert address.startswith("tcp://127.0.0.1:")
            # the missing identity file was generated and saved
            assert NodeIdentity.load(identity_file).peer_id == peer_id

            async with Node(NodeIdentity.generate()) as node:
                with anyio.fail_after(10):
                    conn = await node.dial(address, peer_id)
                    assert conn.identity.supported_protocols == (ECHO_PROTOCOL_ID,)
                    stream = await conn.open_substream(ECHO_PROTOCOL_ID)
                    await stream.send(b"hello plait node")
                    assert await stream.receive() == b"hello plait node"
                    await stream.aclose()

                    process.send_signal(signum)
                    assert await process.wait() == 0
                    await conn.wait_closed()  # the node said GO_AWAY on its way out
            chunks = []
            with anyio.fail_after(10):
                try:
                    while True:
                        chunks.append(await process.stderr.receive())
                except anyio.EndOfStream:
                    pass
            errors = b"".join(chunks).decode()
            assert "connected to" in errors and "stopped" in errors
        finally:
            if process.returncode is None:
                process.kill()

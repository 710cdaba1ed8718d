"""``plait demo``: two endpoints in one process over real TCP, with a transcript.

Each layer that has landed is shown: the Noise XX handshake (the three messages as they
cross the wire), then encrypted application data echoed back.
"""

from __future__ import annotations

import sys
from typing import TextIO

import anyio
from anyio.abc import ByteStream, SocketAttribute, SocketListener

from .noise import NoiseConfig, NoiseStream, StaticKeypair

__all__ = ("run_demo",)


class _Tap(ByteStream):
    """Passes bytes through and prints what one side writes to the wire."""

    def __init__(self, inner: ByteStream, name: str, out: TextIO) -> None:
        self.inner = inner
        self.name = name
        self.out = out
        self.messages = 0

    async def send(self, item: bytes) -> None:
        self.messages += 1
        head = item[:2]
        body = item[2:]
        preview = body[:16].hex() + ("…" if len(body) > 16 else "")
        print(
            f"  {self.name:>9} → wire  {len(item):>5} bytes  len={head.hex()}  {preview}",
            file=self.out,
        )
        await self.inner.send(item)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.inner.receive(max_bytes)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _demo(out: TextIO) -> None:
    alice_key, bob_key = StaticKeypair.generate(), StaticKeypair.generate()
    print("plait demo: two endpoints, one process, TCP on 127.0.0.1", file=out)
    print(f"  alice static key {alice_key.public.hex()}", file=out)
    print(f"  bob   static key {bob_key.public.hex()}", file=out)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    print(f"\n[tcp] bob listens on 127.0.0.1:{port}; alice dials", file=out)
    async with listener:
        alice_tcp = await anyio.connect_tcp("127.0.0.1", port)
        inner = listener.listeners[0]
        assert isinstance(inner, SocketListener)
        bob_tcp = await inner.accept()
    config = NoiseConfig(static_key=alice_key)
    print(f"\n[noise] {config.protocol_name}, prologue {config.prologue.decode()}", file=out)
    streams: dict[str, NoiseStream] = {}

    async def bob_side() -> None:
        streams["bob"] = await NoiseStream.wrap(
            _Tap(bob_tcp, "bob", out), NoiseConfig(static_key=bob_key), initiator=False
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(bob_side)
        streams["alice"] = await NoiseStream.wrap(
            _Tap(alice_tcp, "alice", out),
            config,
            initiator=True,
            expected_key=bob_key.public,
        )
    alice, bob = streams["alice"], streams["bob"]
    assert alice.remote_static_key == bob_key.public and bob.remote_static_key == alice_key.public
    print("  both sides authenticated the other's static key", file=out)
    print(f"  handshake hash (equal on both sides) {alice.handshake_hash.hex()[:32]}…", file=out)
    print("\n[transport] alice sends a message; bob echoes it", file=out)
    message = b"hello from alice"
    await alice.send(message)
    got = await bob.receive()
    await bob.send(got)
    echoed = await alice.receive()
    print(f"  alice received the echo: {echoed.decode()!r}", file=out)
    print("  (16 B plaintext + 16 B tag + 2 B length = 34 B on the wire)", file=out)
    await alice.aclose()
    await bob.aclose()
    print("\ndone.", file=out)


def run_demo(out: TextIO | None = None) -> int:
    """Run the demo, printing its transcript; return an exit code."""
    anyio.run(_demo, out or sys.stdout)
    return 0

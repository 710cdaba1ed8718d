"""Send a file to another plait node over a raw negotiated substream, with a progress display.

The receiver registers its own protocol, ``/plait-example/file/1``, with ``node.add_protocol``;
the sender dials it, opens a substream negotiated for that protocol and writes a small header
and the file's bytes. Yamux flow control paces the sender to what the receiver writes to disk.
Once everything has arrived the receiver answers with the SHA-256 of what it stored, which the
sender compares with its own.

Receive in one terminal (files land in the output folder; Ctrl-C to stop)::

    python examples/file_transfer.py receive --listen tcp://127.0.0.1:7200 --output-dir received

send from another::

    python examples/file_transfer.py send --peer tcp://127.0.0.1:7200 some/file.iso

The protocol on the substream: the sender writes ``u16 BE name length ‖ UTF-8 name ‖ u64 BE
size ‖ size bytes`` and half-closes; the receiver replies with the 32-byte SHA-256 digest.
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import struct
import sys
import time
from typing import TYPE_CHECKING, TextIO

import anyio
from plait.errors import PlaitError
from plait.identity import NodeIdentity
from plait.node import Node, PeerConnection

if TYPE_CHECKING:
    from anyio.abc import ByteStream

PROTOCOL = "/plait-example/file/1"
CHUNK_SIZE = 256 * 1024
MAX_NAME_LENGTH = 255  # bytes of UTF-8
NAME_HEADER = struct.Struct(">H")
SIZE_HEADER = struct.Struct(">Q")
DIGEST_SIZE = 32


class TransferError(Exception):
    """The other side broke the protocol or the transfer failed."""


class Progress:
    """A progress display on ``out``: one redrawn line on a terminal, else a line per 10 %."""

    def __init__(self, label: str, total: int, out: TextIO = sys.stderr) -> None:
        self.label = label
        self.total = total
        self.out = out
        self.done = 0
        self.started = time.perf_counter()
        self.interactive = out.isatty()
        self.last_step = -1

    def advance(self, count: int) -> None:
        self.done += count
        fraction = self.done / self.total if self.total else 1.0
        if self.interactive:
            bar = "#" * int(fraction * 30)
            self.out.write(f"\r{self.label} [{bar:<30}] {fraction:6.1%} {self.rate()}")
            self.out.flush()
        elif int(fraction * 10) > self.last_step:
            self.last_step = int(fraction * 10)
            print(f"{self.label}: {fraction:.0%} of {self.total} bytes {self.rate()}",
                  file=self.out, flush=True)

    def finish(self) -> float:
        if self.interactive:
            self.out.write("\n")
            self.out.flush()
        return time.perf_counter() - self.started

    def rate(self) -> str:
        elapsed = time.perf_counter() - self.started
        return f"{self.done / elapsed / 1e6:.1f} MB/s" if elapsed > 0 else ""


async def receive_exactly(stream: ByteStream, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        try:
            data += await stream.receive(count - len(data))
        except anyio.EndOfStream:
            raise TransferError(f"the stream ended after {len(data)} of {count} bytes") from None
    return bytes(data)


# --------------------------------------------------------------------------- receiving


def safe_name(raw: bytes) -> str:
    """The file name to store under: a plain name, never a path."""
    name = raw.decode("utf-8", errors="strict")
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise TransferError(f"refusing the file name {name!r}")
    return name


async def receive(args: argparse.Namespace) -> int:
    output = anyio.Path(args.output_dir)
    await output.mkdir(parents=True, exist_ok=True)
    finished = anyio.Event()
    received = 0

    async def handle(conn: PeerConnection, stream: ByteStream) -> None:
        nonlocal received
        try:
            (length,) = NAME_HEADER.unpack(await receive_exactly(stream, NAME_HEADER.size))
            if length > MAX_NAME_LENGTH:
                raise TransferError(f"a name of {length} bytes is too long")
            name = safe_name(await receive_exactly(stream, length))
            (size,) = SIZE_HEADER.unpack(await receive_exactly(stream, SIZE_HEADER.size))
            if size > args.max_size:
                raise TransferError(f"{size} bytes is above the limit of {args.max_size}")
            print(f"receiving {name} ({size} bytes) from {conn.node_id.short}", flush=True)
            target = output / name
            partial = output / (name + ".part")
            digest = hashlib.sha256()
            progress = Progress(f"receiving {name}", size)
            async with await anyio.open_file(partial, "wb") as file:
                left = size
                while left:
                    try:
                        chunk = await stream.receive(min(left, CHUNK_SIZE))
                    except anyio.EndOfStream:
                        raise TransferError(f"the sender stopped {left} bytes short") from None
                    await file.write(chunk)
                    digest.update(chunk)
                    left -= len(chunk)
                    progress.advance(len(chunk))
            progress.finish()
            await partial.replace(target)
            await stream.send(digest.digest())
            print(f"saved {target} ({size} bytes, sha256 {digest.hexdigest()})", flush=True)
        except (TransferError, UnicodeDecodeError) as exc:
            print(f"transfer from {conn.node_id.short} failed: {exc}", flush=True)
            return
        received += 1
        if args.count and received >= args.count:
            finished.set()

    identity = NodeIdentity.load(args.identity) if args.identity else NodeIdentity.generate()
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with Node(identity) as node, anyio.create_task_group() as task_group:
            node.add_protocol(PROTOCOL, handle)
            try:
                address = await node.listen(args.listen)
            except (PlaitError, OSError, ValueError) as exc:
                print(f"error: {exc}", file=sys.stderr, flush=True)
                task_group.cancel_scope.cancel()
                return 1
            print(f"receiving files on {address} as {node.peer_id}", flush=True)

            async def stop_on_signal() -> None:
                async for _ in signals:
                    finished.set()

            task_group.start_soon(stop_on_signal)
            await finished.wait()
            task_group.cancel_scope.cancel()
    return 0


# --------------------------------------------------------------------------- sending


async def send(args: argparse.Namespace) -> int:
    path = anyio.Path(args.file)
    name = path.name.encode()
    if len(name) > MAX_NAME_LENGTH:
        print(f"error: the file name is longer than {MAX_NAME_LENGTH} bytes", file=sys.stderr)
        return 1
    size = (await path.stat()).st_size
    async with Node(NodeIdentity.generate()) as node:
        try:
            conn = await node.dial(args.peer, peer_id=args.peer_id)
            stream = await conn.open_substream(PROTOCOL)
            await stream.send(NAME_HEADER.pack(len(name)) + name + SIZE_HEADER.pack(size))
            digest = hashlib.sha256()
            progress = Progress(f"sending {path.name}", size)
            async with await anyio.open_file(path, "rb") as file:
                while chunk := await file.read(CHUNK_SIZE):
                    await stream.send(chunk)  # waits while the receiver's window is full
                    digest.update(chunk)
                    progress.advance(len(chunk))
            await stream.send_eof()
            with anyio.fail_after(args.timeout):
                remote = await receive_exactly(stream, DIGEST_SIZE)
            elapsed = progress.finish()
        except (PlaitError, OSError, TransferError, TimeoutError) as exc:
            print(f"error: {exc!r}", file=sys.stderr, flush=True)
            return 1
    if remote != digest.digest():
        print(f"error: the receiver stored different bytes (sha256 {remote.hex()})", flush=True)
        return 1
    rate = size / elapsed / 1e6 if elapsed > 0 else 0.0
    print(f"sent {path.name}: {size} bytes in {elapsed:.2f} s ({rate:.1f} MB/s), sha256 ok",
          flush=True)
    return 0


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio",
                        help="the event loop to run on (default asyncio)")
    commands = parser.add_subparsers(dest="command", required=True)
    recv = commands.add_parser("receive", help="accept files until Ctrl-C")
    recv.add_argument("--listen", default="tcp://127.0.0.1:7200",
                      help="address to listen on (port 0 picks one; default %(default)s)")
    recv.add_argument("--output-dir", default=".", help="where files are saved (default: here)")
    recv.add_argument("--max-size", type=int, default=1 << 40,
                      help="largest file accepted, bytes (default 1 TiB)")
    recv.add_argument("--count", type=int, default=0,
                      help="exit after this many files (default 0: run until Ctrl-C)")
    recv.add_argument("--identity", help="an identity file (as written by NodeIdentity.save)")
    snd = commands.add_parser("send", help="send one file")
    snd.add_argument("file")
    snd.add_argument("--peer", required=True, help="the receiver's address, tcp://HOST:PORT")
    snd.add_argument("--peer-id", help="the receiver's peer id (hex), checked by the handshake")
    snd.add_argument("--timeout", type=float, default=30.0,
                     help="seconds to wait for the receiver's digest (default %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return anyio.run(receive if args.command == "receive" else send, args,
                         backend=args.backend)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

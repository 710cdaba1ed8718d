"""A key-value store served over plait RPC, defined from our own .proto file, with a typed client.

The messages live in ``kvstore.proto`` beside this file; ``kvstore_pb2.py`` and its type stub
``kvstore_pb2.pyi`` were generated from it with the pinned protoc (examples/README.md). The
service has two unary methods (``put``, ``get``) and one server-streaming method (``scan``).

Run a server in one terminal::

    python examples/kv_service.py serve --listen tcp://127.0.0.1:7100

and call it from others (``--peer`` is the address the server printed)::

    python examples/kv_service.py put  --peer tcp://127.0.0.1:7100 colour blue
    python examples/kv_service.py get  --peer tcp://127.0.0.1:7100 colour
    python examples/kv_service.py scan --peer tcp://127.0.0.1:7100 col
    python examples/kv_service.py fill --peer tcp://127.0.0.1:7100 --count 1000 --sessions 4

``get`` of a missing key exits with status 1 (the server answers NOT_FOUND); ``fill`` stores
many keys concurrently through a pool of RPC sessions. Add ``--peer-id HEX`` to insist on the
server's identity (the dial fails if another key answers).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import TYPE_CHECKING, ClassVar

import anyio
from kvstore_pb2 import Entry, GetRequest, ListRequest, PutRequest, PutResponse
from plait.errors import PlaitError
from plait.identity import NodeIdentity
from plait.node import Node, NodeConfig, PeerConnection
from plait.rpc import (
    RequestContext,
    RpcClientConfig,
    RpcServerConfig,
    RpcStatusError,
    Service,
    ServiceClient,
    StatusCode,
    rpc,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from plait.rpc import ResponseStream

PROTOCOL = "/plait-example/kvstore/1"
MAX_KEYS = 100_000
MAX_VALUE_SIZE = 64 * 1024


class KeyValueClient(ServiceClient):
    """The typed client: one method per RPC method, with the message types spelled out."""

    async def put(self, request: PutRequest) -> PutResponse:
        return await self._unary(1, request, PutResponse)

    async def get(self, request: GetRequest) -> Entry:
        return await self._unary(2, request, Entry)

    def scan(self, request: ListRequest) -> ResponseStream[Entry]:
        return self._server_streaming(3, request, Entry)


class KeyValueStore(Service, protocol=PROTOCOL):
    """An in-memory store. Method numbers are part of the protocol: never reuse one."""

    Client: ClassVar[type[KeyValueClient]] = KeyValueClient

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    @rpc(method=1)
    async def put(self, request: PutRequest, ctx: RequestContext) -> PutResponse:
        if not request.key:
            raise RpcStatusError(StatusCode.BAD_REQUEST, "the key is empty")
        if len(request.value) > MAX_VALUE_SIZE:
            raise RpcStatusError(StatusCode.BAD_REQUEST, f"values are at most {MAX_VALUE_SIZE} B")
        old = self.entries.get(request.key)
        if old is None and len(self.entries) >= MAX_KEYS:
            raise RpcStatusError(StatusCode.FORBIDDEN, "the store is full")
        version = 1 if old is None else old.version + 1
        self.entries[request.key] = Entry(key=request.key, value=request.value, version=version)
        return PutResponse(created=old is None, version=version)

    @rpc(method=2)
    async def get(self, request: GetRequest, ctx: RequestContext) -> Entry:
        entry = self.entries.get(request.key)
        if entry is None:
            raise RpcStatusError(StatusCode.NOT_FOUND, f"no key {request.key!r}")
        return entry

    @rpc(method=3, streaming=True)
    async def scan(self, request: ListRequest, ctx: RequestContext) -> AsyncIterator[Entry]:
        keys = sorted(key for key in self.entries if key.startswith(request.prefix))
        if request.limit:
            keys = keys[: request.limit]
        for key in keys:
            entry = self.entries.get(key)
            if entry is not None:  # it may have gone while we were streaming
                yield entry


# --------------------------------------------------------------------------- server


async def serve(args: argparse.Namespace) -> int:
    identity = NodeIdentity.load(args.identity) if args.identity else NodeIdentity.generate()
    limits = RpcServerConfig(max_sessions_per_peer=args.max_sessions_per_peer)
    config = NodeConfig(rpc_server=limits)
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with Node(identity, config) as node:
            store = KeyValueStore()
            node.add_service(store)
            try:
                address = await node.listen(args.listen)
            except (PlaitError, OSError, ValueError) as exc:
                print(f"error: {exc}", file=sys.stderr, flush=True)
                return 1
            print(f"kvstore serving {PROTOCOL} on {address}", flush=True)
            print(f"peer id: {node.peer_id}", flush=True)
            async for _ in signals:
                break
    print(f"stopped with {len(store.entries)} key(s)", flush=True)
    return 0


# --------------------------------------------------------------------------- clients


async def call(args: argparse.Namespace) -> int:
    client_config = RpcClientConfig(deadline=args.timeout, handshake_timeout=args.timeout)
    async with Node(NodeIdentity.generate()) as node:
        try:
            with anyio.fail_after(args.timeout):
                conn = await node.dial(args.peer, peer_id=args.peer_id)
                if args.command == "fill":
                    return await fill(conn, args, client_config)
                async with await conn.connect_rpc(KeyValueStore.Client,
                                                  config=client_config) as kv:
                    return await run_command(kv, args)
        except RpcStatusError as exc:
            print(f"error: {exc.code.name}: {exc.details}", flush=True)
            return 1
        except (PlaitError, OSError, TimeoutError) as exc:
            print(f"error: {exc!r}", file=sys.stderr, flush=True)
            return 2


async def run_command(kv: KeyValueClient, args: argparse.Namespace) -> int:
    if args.command == "put":
        reply = await kv.put(PutRequest(key=args.key, value=args.value.encode()))
        print(f"{'created' if reply.created else 'updated'} {args.key} (version {reply.version})",
              flush=True)
    elif args.command == "get":
        entry = await kv.get(GetRequest(key=args.key))
        print(f"{entry.key} = {entry.value.decode(errors='replace')} (version {entry.version})",
              flush=True)
    else:
        count = 0
        async with kv.scan(ListRequest(prefix=args.prefix, limit=args.limit)) as entries:
            async for entry in entries:
                print(f"{entry.key} = {entry.value.decode(errors='replace')}", flush=True)
                count += 1
        print(f"{count} key(s)", flush=True)
    return 0


async def fill(conn: PeerConnection, args: argparse.Namespace, config: RpcClientConfig) -> int:
    pool = conn.rpc_pool(KeyValueStore.Client, size=args.sessions, config=config)
    started = time.perf_counter()
    limiter = anyio.CapacityLimiter(args.sessions * 4)

    async def put_one(index: int) -> None:
        async with limiter, pool.lease() as kv:
            await kv.put(PutRequest(key=f"{args.prefix}{index:06d}", value=b"%d" % index))

    try:
        async with anyio.create_task_group() as task_group:
            for index in range(args.count):
                task_group.start_soon(put_one, index)
        sessions = pool.statistics().open_sessions
    finally:
        await pool.aclose()
    elapsed = time.perf_counter() - started
    print(f"stored {args.count} key(s) over {sessions} session(s) in {elapsed:.2f} s", flush=True)
    return 0


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio",
                        help="the event loop to run on (default asyncio)")
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("serve", help="serve the key-value store until Ctrl-C")
    server.add_argument("--listen", default="tcp://127.0.0.1:7100",
                        help="address to listen on (port 0 picks one; default %(default)s)")
    server.add_argument("--identity", help="an identity file (as written by NodeIdentity.save)")
    server.add_argument("--max-sessions-per-peer", type=int, default=10,
                        help="RPC sessions one client may hold at once (default %(default)s)")

    def client_parser(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--peer", required=True, help="the server's address, tcp://HOST:PORT")
        sub.add_argument("--peer-id", help="the server's peer id (hex), checked by the handshake")
        sub.add_argument("--timeout", type=float, default=10.0,
                         help="seconds for the whole command (default %(default)s)")
        return sub

    put = client_parser("put", "store a value")
    put.add_argument("key")
    put.add_argument("value")
    get = client_parser("get", "print a value (exit status 1 if the key is missing)")
    get.add_argument("key")
    scan = client_parser("scan", "stream every key with a prefix")
    scan.add_argument("prefix", nargs="?", default="")
    scan.add_argument("--limit", type=int, default=0, help="at most this many (0: all)")
    fill_parser = client_parser("fill", "store COUNT keys concurrently over a session pool")
    fill_parser.add_argument("--count", type=int, default=1000)
    fill_parser.add_argument("--sessions", type=int, default=4,
                             help="RPC sessions in the pool (default %(default)s)")
    fill_parser.add_argument("--prefix", default="key-", help="key prefix (default %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runner = serve if args.command == "serve" else call
    try:
        return anyio.run(runner, args, backend=args.backend)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

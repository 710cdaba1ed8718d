"""The ``plait`` command line (api.md "Command line").

Subcommands, each with ``--help``:

``plait demo``
    two nodes in one process over real TCP, printed as a short transcript (:mod:`plait.demo`);
``plait node``
    a node serving the echo protocol ``/plait/echo/1`` and the Greeting RPC service
    ``/plait/greeting/1`` until SIGINT or SIGTERM, with the RPC server's session caps as flags;
``plait call ADDRESS METHOD ARG``
    one Greeting RPC against a running node, the reply on stdout (``--json`` for scripts);
``plait bench ...``
    the throughput benchmark, :func:`plait.bench.main` with the remaining arguments.

Exit status: 0 on success, 1 when the operation failed (a typed error, printed on stderr),
2 on a usage error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from . import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .identity import NodeIdentity
    from .node import Node
    from .rpc import RpcServerConfig

__all__ = ("DEFAULT_CALL_TIMEOUT", "DEFAULT_LISTEN_ADDRESS", "main")

DEFAULT_LISTEN_ADDRESS = "tcp://127.0.0.1:7000"
DEFAULT_CALL_TIMEOUT = 30.0  # seconds for the whole of `plait call`: dial, session, reply
CALL_METHODS = ("say_hello", "get_greetings", "get_public_key_hex")


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plait", description="plait peer-to-peer transport stack"
    )
    parser.add_argument("--version", action="version", version=f"plait {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="two nodes in one process over TCP: handshake, substreams, echo, RPC",
        description="Run two nodes in one process over TCP on 127.0.0.1 and print a "
        "transcript: identities, the connection upgrade (network byte, Noise XX, identity "
        "exchange), negotiated echo substreams, RPC calls, a stream and a "
        "NO_SERVER_SESSIONS_AVAILABLE rejection.",
    )
    demo.add_argument("--backend", default="asyncio", choices=("asyncio", "trio"),
                      help="the anyio backend to run on (default asyncio)")
    node = sub.add_parser(
        "node",
        help="run a node serving /plait/echo/1 and the Greeting RPC service until Ctrl-C",
        description="Run a plait node that serves the echo protocol /plait/echo/1 and the "
        "Greeting RPC service /plait/greeting/1 until SIGINT or SIGTERM, then shut down "
        "gracefully. Prints 'peer id: HEX' and one 'listening on: ADDRESS' line per "
        "listener on stdout; logs go to stderr.",
    )
    node.add_argument(
        "--listen", action="append", metavar="ADDRESS",
        help="address to listen on, e.g. tcp://127.0.0.1:7000 (port 0: any free port); "
        f"repeatable; default {DEFAULT_LISTEN_ADDRESS}",
    )
    node.add_argument(
        "--identity", metavar="FILE",
        help="identity file; created with a fresh key if it does not exist "
        "(default: a fresh key, not saved)",
    )
    node.add_argument(
        "--max-sessions", type=_non_negative, metavar="N",
        help="RPC sessions alive at once over all peers; 0 refuses every session "
        "(default 100)",
    )
    node.add_argument(
        "--max-sessions-per-peer", type=_non_negative, metavar="N",
        help="RPC sessions alive at once per peer; 0 means unlimited (default 10)",
    )
    node.add_argument(
        "--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="logging level (default INFO)",
    )
    call = sub.add_parser(
        "call",
        help="make one Greeting RPC against a running node",
        description="Dial a node, open one session of the Greeting RPC service "
        "/plait/greeting/1, make one call and print the reply. Methods: say_hello NAME "
        "(prints the greeting), get_greetings N (a stream: one greeting per line), "
        "get_public_key_hex (our own key as the server saw it).",
    )
    call.add_argument("address", metavar="ADDRESS", help="the node, e.g. tcp://127.0.0.1:7000")
    call.add_argument("method", metavar="METHOD", choices=CALL_METHODS,
                      help=f"one of {', '.join(CALL_METHODS)}")
    call.add_argument("argument", metavar="ARG", nargs="?", default="",
                      help="NAME for say_hello, N for get_greetings")
    call.add_argument("--peer-id", metavar="HEX",
                      help="the node's expected peer id; the call fails if its key differs")
    call.add_argument("--language", type=_non_negative, default=0, metavar="N",
                      help="say_hello's language index (default 0)")
    call.add_argument("--timeout", type=_positive_float, default=DEFAULT_CALL_TIMEOUT,
                      metavar="SECONDS",
                      help=f"limit for the whole call (default {DEFAULT_CALL_TIMEOUT:g})")
    call.add_argument("--json", action="store_true",
                      help="print one JSON object (method, peer_id, reply) instead of text")
    sub.add_parser(
        "bench",
        add_help=False,
        help="the throughput benchmark (plait bench --help for its options)",
        description="The same run as benchmarks/throughput.py; see plait bench --help.",
    )
    return parser


# --------------------------------------------------------------------------- node


def _node_identity(path: str | None) -> NodeIdentity:
    from pathlib import Path

    from .identity import NodeIdentity

    if path is None:
        return NodeIdentity.generate()
    if Path(path).exists():
        return NodeIdentity.load(path)
    identity = NodeIdentity.generate()
    identity.save(path)
    logging.getLogger("plait.cli").info("saved a new identity to %s", path)
    return identity


async def _serve_node(
    identity: NodeIdentity, addresses: Sequence[str], rpc_config: RpcServerConfig
) -> BaseException | None:
    import signal

    import anyio

    from .errors import PlaitError
    from .node import ECHO_PROTOCOL_ID, Node, NodeConfig, echo_handler
    from .rpc.greeting import Greeting

    logger = logging.getLogger("plait.cli")
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with Node(identity, NodeConfig(rpc_server=rpc_config)) as node:
            node.add_protocol(ECHO_PROTOCOL_ID, echo_handler)
            node.add_service(Greeting())
            print(f"peer id: {node.peer_id}", flush=True)
            try:
                for address in addresses:
                    bound = await node.listen(address)
                    print(f"listening on: {bound}", flush=True)
            except (PlaitError, OSError, ValueError) as exc:
                return exc  # raised outside the node's task group: not wrapped in a group
            async for signum in signals:
                logger.info("received %s, shutting down", signal.Signals(signum).name)
                break
    return None


def _rpc_server_config(args: argparse.Namespace) -> RpcServerConfig:
    from .rpc import RpcServerConfig

    defaults = RpcServerConfig()
    return RpcServerConfig(
        max_sessions=defaults.max_sessions if args.max_sessions is None else args.max_sessions,
        max_sessions_per_peer=(
            defaults.max_sessions_per_peer
            if args.max_sessions_per_peer is None
            else args.max_sessions_per_peer
        ),
    )


def _run_node(args: argparse.Namespace) -> int:
    import anyio

    from .errors import PlaitError

    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        identity = _node_identity(args.identity)
        error = anyio.run(
            _serve_node,
            identity,
            args.listen or [DEFAULT_LISTEN_ADDRESS],
            _rpc_server_config(args),
        )
        if error is not None:
            raise error
    except (PlaitError, OSError, ValueError) as exc:
        print(f"plait node: {exc}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- call


async def _call(args: argparse.Namespace) -> dict[str, object] | BaseException:
    """Make the call; return its result, or the error that ended it. Errors are caught
    inside the node's ``async with`` so they are not wrapped in an exception group."""
    import anyio

    from .errors import PlaitError
    from .identity import NodeIdentity
    from .node import Node

    async with Node(NodeIdentity.generate()) as node:
        try:
            with anyio.fail_after(args.timeout):
                return await _call_on(node, args)
        except (PlaitError, OSError, ValueError, TimeoutError) as exc:
            return exc


async def _call_on(node: Node, args: argparse.Namespace) -> dict[str, object]:
    from .rpc import RpcClientConfig
    from .rpc.greeting import Greeting
    from .rpc.proto.greeting_pb2 import GetGreetingsRequest, SayHelloRequest

    timeout = args.timeout
    config = RpcClientConfig(
        deadline=max(1.0, timeout), deadline_grace_period=0.0, handshake_timeout=timeout
    )
    conn = await node.dial(args.address, args.peer_id)
    async with await conn.connect_rpc(Greeting.Client, config=config) as client:
        result: dict[str, object] = {"method": args.method, "peer_id": conn.peer_id}
        if args.method == "say_hello":
            reply = await client.say_hello(
                SayHelloRequest(name=args.argument, language=args.language)
            )
            result["greeting"] = reply.greeting
        elif args.method == "get_greetings":
            request = GetGreetingsRequest(num=int(args.argument or 0))
            result["greetings"] = [t.value async for t in client.get_greetings(request)]
        else:
            result["public_key_hex"] = (await client.get_public_key_hex()).value
        result["latency_ms"] = round((client.last_request_latency or 0.0) * 1000, 3)
    await conn.disconnect()
    return result


def _run_call(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import json

    import anyio

    from .errors import PlaitError
    from .rpc import RpcStatusError

    if args.method == "get_greetings":
        try:
            if int(args.argument) < 0:
                raise ValueError(args.argument)
        except ValueError:
            parser.error("get_greetings needs a count N >= 0")
    result = anyio.run(_call, args)
    if isinstance(result, BaseException):
        if isinstance(result, RpcStatusError):
            message = f"the server answered {result.code.name}: {result.details}"
        elif isinstance(result, TimeoutError) and not isinstance(result, PlaitError):
            message = f"no reply within {args.timeout:g} s"
        else:
            message = str(result) or type(result).__name__
        print(f"plait call: {message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    elif args.method == "get_greetings":
        greetings = result["greetings"]
        assert isinstance(greetings, list)
        for greeting in greetings:
            print(greeting)
    else:
        print(result["greeting" if args.method == "say_hello" else "public_key_hex"])
    return 0


# --------------------------------------------------------------------------- bench


def _run_bench(argv: Sequence[str]) -> int:
    try:
        from . import bench
    except ImportError as exc:
        print(f"plait bench: the benchmark package is not available ({exc})", file=sys.stderr)
        return 2
    bench_main = getattr(bench, "main", None)
    if bench_main is None:
        print("plait bench: plait.bench has no main(argv); the benchmark is not available",
              file=sys.stderr)
        return 2
    return int(bench_main(list(argv)))


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] == "bench":
        return _run_bench(arguments[1:])
    parser = _build_parser()
    args = parser.parse_args(arguments)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(backend=args.backend)
    if args.command == "node":
        return _run_node(args)
    if args.command == "call":
        return _run_call(args, parser)
    parser.print_help(sys.stderr)
    return 2

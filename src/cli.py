"""The ``plait`` command line (api.md "Command line").

Subcommands, each with ``--help``:

``plait demo``
    two nodes in one process over real TCP, printed as a short transcript (:mod:`plait.demo`);
``plait node``
    a node serving the echo protocol ``/plait/echo/1`` and the Greeting RPC service
    ``/plait/greeting/1`` until SIGINT or SIGTERM, with the RPC server's session caps as flags,
    ``--json`` (its peer id and addresses as one JSON line) and ``--metrics HOST:PORT`` (a
    Prometheus exporter, :mod:`plait.metrics`);
``plait call ADDRESS METHOD ARG``
    one Greeting RPC against a running node, the reply on stdout (``--json`` for scripts);
``plait bench ...``
    the throughput benchmark, :func:`plait.bench.main` with the remaining arguments.

Exit status (:data:`EXIT_STATUS`, printed by ``plait --help``): 0 on success, and for ``plait
node`` after its graceful stop on SIGINT or SIGTERM (its normal way to end); 1 when the
operation failed (one line ``plait COMMAND: message`` on stderr, no traceback); 2 on a usage
error; 130 when Ctrl-C (SIGINT) interrupted any other command. Ctrl-C never prints a
traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from . import __version__
from .rpc.config import DEFAULT_MAX_SESSIONS, DEFAULT_MAX_SESSIONS_PER_PEER
from .transport import InvalidAddressError, TcpAddress, parse_address

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .identity import NodeIdentity
    from .node import Node
    from .rpc import RpcServerConfig

__all__ = (
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_LISTEN_ADDRESS",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_STATUS",
    "EXIT_USAGE",
    "main",
)

DEFAULT_LISTEN_ADDRESS = "tcp://127.0.0.1:7000"
DEFAULT_CALL_TIMEOUT = 30.0  # seconds for the whole of `plait call`: dial, session, reply
CALL_METHODS = ("say_hello", "get_greetings", "get_public_key_hex")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # argparse's own
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_STATUS = f"""\
exit status:
  {EXIT_OK:<4} success; plait node also after a graceful stop on SIGINT or SIGTERM
  {EXIT_FAILURE:<4} the operation failed: one line "plait COMMAND: message" on stderr
  {EXIT_USAGE:<4} usage error: bad arguments (argparse's message on stderr)
  {EXIT_INTERRUPTED:<4} interrupted by Ctrl-C (SIGINT) before it finished (no traceback)
"""


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


def _host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464`` for IPv6; port 0 picks a free one), parsed as the TCP
    addresses of ``--listen`` are."""
    try:
        address = parse_address(f"tcp://{text}")
    except InvalidAddressError as exc:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}") from exc
    assert isinstance(address, TcpAddress)
    return address.host, address.port


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plait",
        description="plait peer-to-peer transport stack. Every command has --help.",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        "gracefully (exit status 0). Prints 'peer id: HEX', one 'listening on: ADDRESS' line "
        "per listener and, with --metrics, 'metrics on: URL' on stdout, or with --json one "
        'JSON line {"peer_id": HEX, "listen": [ADDRESS, ...], "metrics": URL or null} once '
        "everything listens; logs go to stderr.",
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
        "--max-sessions", type=_non_negative, metavar="N", default=DEFAULT_MAX_SESSIONS,
        help="RPC sessions alive at once over all peers; 0 refuses every session "
        "(default %(default)s)",
    )
    node.add_argument(
        "--max-sessions-per-peer", type=_non_negative, metavar="N",
        default=DEFAULT_MAX_SESSIONS_PER_PEER,
        help="RPC sessions alive at once per peer; 0 means unlimited (default %(default)s)",
    )
    node.add_argument(
        "--metrics", type=_host_port, metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (port 0: any free port); "
        "needs prometheus-client: pip install 'plait[metrics]'",
    )
    node.add_argument(
        "--json", action="store_true",
        help="print the peer id, listen addresses and metrics URL as one JSON line",
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
                      help="print one JSON object (method, peer_id, the reply, latency_ms) "
                      "instead of text")
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
    identity: NodeIdentity,
    addresses: Sequence[str],
    rpc_config: RpcServerConfig,
    metrics: tuple[str, int] | None,
    as_json: bool,
) -> BaseException | None:
    import json
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
            if not as_json:
                print(f"peer id: {node.peer_id}", flush=True)
            async with anyio.create_task_group() as task_group:
                # errors are returned from inside the node and the task group, so they are
                # not wrapped in an exception group
                try:
                    bound: list[str] = []
                    for address in addresses:
                        bound.append(await node.listen(address))
                        if not as_json:
                            print(f"listening on: {bound[-1]}", flush=True)
                    metrics_url = None
                    if metrics is not None:
                        from .metrics import serve_metrics

                        try:
                            endpoint = await task_group.start(serve_metrics, node, *metrics)
                        except OSError as exc:
                            host, port = metrics
                            raise OSError(f"cannot serve metrics on {host}:{port}: "
                                          f"{exc.strerror or exc}") from exc
                        metrics_url = endpoint.url
                        if not as_json:
                            print(f"metrics on: {metrics_url}", flush=True)
                except (PlaitError, OSError, ValueError) as exc:
                    task_group.cancel_scope.cancel()
                    return exc
                if as_json:
                    line = {"peer_id": node.peer_id, "listen": bound, "metrics": metrics_url}
                    print(json.dumps(line), flush=True)
                async for signum in signals:
                    logger.info("received %s, shutting down", signal.Signals(signum).name)
                    break
                task_group.cancel_scope.cancel()
    return None


def _rpc_server_config(args: argparse.Namespace) -> RpcServerConfig:
    from .rpc import RpcServerConfig

    return RpcServerConfig(
        max_sessions=args.max_sessions, max_sessions_per_peer=args.max_sessions_per_peer
    )


def _run_node(args: argparse.Namespace) -> int:
    import anyio

    from .errors import PlaitError

    if args.metrics is not None:
        try:
            from . import metrics  # noqa: F401 - fail before the node starts
        except ImportError as exc:
            print(f"plait node: --metrics: {exc}", file=sys.stderr)
            return EXIT_FAILURE
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
            args.metrics,
            args.json,
        )
        if error is not None:
            raise error
    except (PlaitError, OSError, ValueError) as exc:
        print(f"plait node: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


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
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    elif args.method == "get_greetings":
        greetings = result["greetings"]
        assert isinstance(greetings, list)
        for greeting in greetings:
            print(greeting)
    else:
        print(result["greeting" if args.method == "say_hello" else "public_key_hex"])
    return EXIT_OK


# --------------------------------------------------------------------------- bench


def _run_bench(argv: Sequence[str]) -> int:
    from .bench import main as bench_main

    return int(bench_main(list(argv)))


# --------------------------------------------------------------------------- entry point


def _interrupted(error: BaseException) -> bool:
    """Whether ``error`` is Ctrl-C: a KeyboardInterrupt, or a group holding only those."""
    if isinstance(error, KeyboardInterrupt):
        return True
    if isinstance(error, BaseExceptionGroup):
        return all(_interrupted(inner) for inner in error.exceptions)
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code (see :data:`EXIT_STATUS`)."""
    try:
        status = _main(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()  # a closed pipe fails here, not in the interpreter's exit
        return status
    except BrokenPipeError:
        # stdout's reader left (``plait call ... | head -1``): stop quietly; point stdout at
        # /dev/null so the interpreter's final flush does not fail again
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_FAILURE
    except BaseException as exc:
        if not _interrupted(exc):
            raise
        print(file=sys.stderr)  # end the line the terminal echoed ^C on
        return EXIT_INTERRUPTED


def _main(arguments: list[str]) -> int:
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
    return EXIT_USAGE

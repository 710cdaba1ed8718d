"""The ``plait`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

from . import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .identity import NodeIdentity

__all__ = ("main",)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plait", description="plait peer-to-peer transport stack")
    parser.add_argument("--version", action="version", version=f"plait {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser(
        "demo",
        help="two endpoints in one process over real TCP, with a transcript of the wire",
        description="Run two in-process endpoints over TCP on 127.0.0.1 "
        "and print what crosses the wire.",
    )
    node = sub.add_parser(
        "node",
        help="run a node serving the echo protocol /plait/echo/1 until Ctrl-C",
        description="Run a plait node that serves the echo protocol /plait/echo/1 until "
        "SIGINT or SIGTERM, then shut down gracefully. Prints 'peer id: HEX' and one "
        "'listening on: ADDRESS' line per listener on stdout; logs go to stderr.",
    )
    node.add_argument(
        "--listen", action="append", metavar="ADDRESS",
        help="address to listen on, e.g. tcp://127.0.0.1:7000 (port 0: any free port); "
        "repeatable; default tcp://127.0.0.1:7000",
    )
    node.add_argument(
        "--identity", metavar="FILE",
        help="identity file; created with a fresh key if it does not exist "
        "(default: a fresh key, not saved)",
    )
    node.add_argument(
        "--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="logging level (default INFO)",
    )
    return parser


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


async def _serve_node(identity: NodeIdentity, addresses: Sequence[str]) -> None:
    import signal

    import anyio

    from .node import ECHO_PROTOCOL_ID, Node, echo_handler

    logger = logging.getLogger("plait.cli")
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with Node(identity) as node:
            node.add_protocol(ECHO_PROTOCOL_ID, echo_handler)
            print(f"peer id: {node.peer_id}", flush=True)
            for address in addresses:
                bound = await node.listen(address)
                print(f"listening on: {bound}", flush=True)
            async for signum in signals:
                logger.info("received %s, shutting down", signal.Signals(signum).name)
                break


def _run_node(args: argparse.Namespace) -> int:
    import anyio

    from .errors import PlaitError

    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        identity = _node_identity(args.identity)
        anyio.run(_serve_node, identity, args.listen or ["tcp://127.0.0.1:7000"])
    except (PlaitError, OSError) as exc:
        print(f"plait node: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo()
    if args.command == "node":
        return _run_node(args)
    parser.print_help(sys.stderr)
    return 2

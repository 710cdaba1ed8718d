"""A terminal chat between plait nodes, over the messaging protocol.

Each line you type is sent as one message to every connected peer; every message received is
printed with its sender's name and short id. Start the first node in one terminal::

    python examples/chat.py --name alice --listen tcp://127.0.0.1:7001

and others in more terminals, each naming at least one node to join::

    python examples/chat.py --name bob --listen tcp://127.0.0.1:7002 --peer tcp://127.0.0.1:7001
    python examples/chat.py --name carol --peer tcp://127.0.0.1:7001 --peer tcp://127.0.0.1:7002

Messages go only to nodes you are connected to (those you named with ``--peer`` and those that
named you). If a peer drops and you type again, the message redials its last known address.
The body of each message is an ``EnvelopeBody`` with two parts, the sender's chosen name and
the text. End with Ctrl-D (end of input) or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

import anyio
from plait.errors import PlaitError
from plait.identity import NodeIdentity
from plait.messaging import (
    EnvelopeBody,
    EnvelopeDecodeError,
    Messaging,
    MessagingError,
    PeerUnreachableError,
)
from plait.node import Node, PeerConnected, PeerDisconnected

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectSendStream

MAX_LINE = 4096  # bytes of text per message


def say(text: str) -> None:
    print(text, flush=True)


async def pump_stdin(lines: MemoryObjectSendStream[str]) -> None:
    """Send each line of standard input to ``lines``, reading without blocking the event loop
    (Unix); close ``lines`` at the end of input."""
    async with lines:
        pending = b""
        fd = sys.stdin.fileno()
        while True:
            await anyio.wait_readable(fd)
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                await lines.send(line.decode(errors="replace"))
        if pending:
            await lines.send(pending.decode(errors="replace"))


async def chat(args: argparse.Namespace) -> int:
    identity = NodeIdentity.load(args.identity) if args.identity else NodeIdentity.generate()
    async with Node(identity) as node, Messaging(node) as messaging, \
            anyio.create_task_group() as task_group:
        events = node.events()
        try:
            if args.listen:
                say(f"* listening on {await node.listen(args.listen)} as {node.peer_id}")
            for address in args.peer:
                conn = await node.dial(address)
                messaging.add_address(conn.peer_id, address)  # to redial it later
        except (PlaitError, OSError, ValueError) as exc:
            say(f"* error: {exc}")
            task_group.cancel_scope.cancel()
            return 1
        peers: set[str] = {conn.peer_id for conn in node.connections}

        async def show_events() -> None:
            async for event in events:
                if isinstance(event, PeerConnected):
                    peers.add(event.connection.peer_id)
                    say(f"* connected {event.connection.node_id.short}")
                elif isinstance(event, PeerDisconnected):
                    say(f"* disconnected {event.connection.node_id.short}")

        async def show_messages() -> None:
            async for message in messaging.messages():
                try:
                    name, text = EnvelopeBody.decode(message.body).parts
                except (EnvelopeDecodeError, ValueError):
                    say(f"* unreadable message from {message.node_id.short}")
                    continue
                who = name.decode(errors="replace")[:32]
                say(f"<{who} {message.node_id.short}> {text.decode(errors='replace')}")

        task_group.start_soon(show_events)
        task_group.start_soon(show_messages)
        send_lines, lines = anyio.create_memory_object_stream[str](16)
        task_group.start_soon(pump_stdin, send_lines)
        async for line in lines:
            body = EnvelopeBody((args.name.encode(), line.encode()[:MAX_LINE])).encode()
            if not peers:
                say("* nobody to talk to yet")
            for peer_id in sorted(peers):
                try:
                    await messaging.send_message(peer_id, body)
                except PeerUnreachableError:  # gone, and no address to redial
                    peers.discard(peer_id)
                except MessagingError as exc:
                    say(f"* not sent to {peer_id[:16]}: {exc}")
        await messaging.flush()  # end of input: hand over what was typed, then leave
        say("* bye")
        task_group.cancel_scope.cancel()
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default=os.environ.get("USER", "anonymous"),
                        help="the name shown to others (default: $USER)")
    parser.add_argument("--listen", metavar="ADDRESS",
                        help="accept peers on ADDRESS, e.g. tcp://127.0.0.1:7001 (port 0: any)")
    parser.add_argument("--peer", action="append", default=[], metavar="ADDRESS",
                        help="connect to the node at ADDRESS (repeatable)")
    parser.add_argument("--identity", help="an identity file (as written by NodeIdentity.save)")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio",
                        help="the event loop to run on (default asyncio)")
    args = parser.parse_args(argv)
    if not args.listen and not args.peer:
        parser.error("give --listen, --peer, or both")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return anyio.run(chat, args, backend=args.backend)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Nodes, teardown checks and measurements shared by the stress scenarios.

Nodes are real :class:`plait.node.Node` objects talking over TCP on 127.0.0.1, used through
the public API: the server node serves the services with :meth:`Node.add_service` (its
:attr:`Node.rpc_server` applies ``NodeConfig.rpc_server``) and raw protocols with
:meth:`Node.add_protocol`; clients use :meth:`PeerConnection.connect_rpc`,
:meth:`PeerConnection.rpc_pool` and :meth:`PeerConnection.open_substream`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import resource
import sys
import time
from collections import Counter
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
from plait.identity import NodeIdentity
from plait.muxer import YamuxConfig
from plait.muxer.config import DEFAULT_CREDIT
from plait.node import Node, NodeConfig, PeerConnected, PeerConnection

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Mapping

    from plait.node import ProtocolHandler
    from plait.rpc import RejectReason, RpcServer, RpcServerConfig, Service

__all__ = (
    "MEASUREMENTS",
    "MIB",
    "Measurement",
    "StressNodes",
    "measured",
    "node_config",
    "set_full_variant",
    "stress_nodes",
    "wait_until",
)

MIB = 1024 * 1024
TEARDOWN_TIMEOUT = 10.0
"""Seconds the sessions and substreams of a finished scenario get to wind down."""


def node_config(max_streams: int = 512) -> NodeConfig:
    """A node configuration admitting ``max_streams`` live substreams per connection.

    The defaults (512 streams, 128 negotiating, an accept backlog of 256) are right for a
    peer on the network; the 1000-session scenarios open more than that on one connection
    at once, so they raise the stream cap, the accept backlog, the negotiation cap and the
    connection's window budget (``initial_window`` per stream plus 256 MiB of growth) together.
    """
    yamux = YamuxConfig(
        max_streams=max_streams,
        accept_backlog=max(256, max_streams),
        max_connection_window=max_streams * DEFAULT_CREDIT + 256 * MIB,
    )
    return NodeConfig(yamux=yamux, max_negotiating_streams=max(128, max_streams))


@dataclass
class StressNodes:
    """One server node with an RPC server and client nodes connected to it."""

    server_node: Node
    rpc_server: RpcServer
    clients: list[Node]
    outbound: list[PeerConnection]
    """The clients' connections to the server, in client order."""
    inbound: list[PeerConnection] = field(default_factory=list)
    """The server's connections from the clients, in client order."""

    def streams_open(self) -> int:
        """Live Yamux streams on every connection, both ends."""
        return sum(c.muxer.statistics().streams for c in (*self.outbound, *self.inbound))

    def refused(self, protocol: bytes) -> Counter[RejectReason]:
        """Sessions of ``protocol`` the server refused so far, by reason; checked against
        what the clients were told (fewer when a client gave up on a handshake, e.g. was
        cancelled, before it read the refusal)."""
        stats = self.server_node.stats().rpc.get(protocol)
        served: Counter[RejectReason] = Counter()
        if stats is not None:
            served.update(stats.server.rejected_total)
        told: Counter[RejectReason] = Counter()
        for client in self.clients:
            client_stats = client.stats().rpc.get(protocol)
            if client_stats is not None:
                told.update(client_stats.client.rejected_total)
        assert told <= served, (served, told)
        return served

    def idle(self) -> bool:
        stats = self.server_node.statistics()
        return (
            self.rpc_server.num_active_sessions == 0
            and stats.handlers == 0
            and stats.negotiating == 0
            and self.streams_open() == 0
        )

    async def wait_idle(self, timeout: float = TEARDOWN_TIMEOUT) -> None:
        """Wait until no session, handler or substream is left on either end."""

        def describe() -> str:
            stats = self.server_node.statistics()
            return (
                f"sessions={self.rpc_server.num_active_sessions} handlers={stats.handlers} "
                f"negotiating={stats.negotiating} streams="
                f"{[c.muxer.statistics().streams for c in (*self.outbound, *self.inbound)]}"
            )

        await wait_until(self.idle, timeout, describe)


@asynccontextmanager
async def stress_nodes(
    *services: Service,
    server_config: RpcServerConfig,
    clients: int = 1,
    max_streams: int = 512,
    protocols: Mapping[bytes, ProtocolHandler] | None = None,
) -> AsyncIterator[StressNodes]:
    """A server node serving ``services`` (and the raw ``protocols``) and ``clients`` client
    nodes dialled to it, over TCP on 127.0.0.1. On exit every node shuts down."""
    config = node_config(max_streams)
    async with AsyncExitStack() as stack:
        server_node = await stack.enter_async_context(
            Node(NodeIdentity.generate(), replace(config, rpc_server=server_config))
        )
        for service in services:
            server_node.add_service(service)
        for protocol, handler in (protocols or {}).items():
            server_node.add_protocol(protocol, handler)
        address = await server_node.listen("tcp://127.0.0.1:0")
        events = await stack.enter_async_context(server_node.events())
        nodes = StressNodes(server_node, server_node.rpc_server, [], [])
        for _ in range(clients):
            client = await stack.enter_async_context(Node(NodeIdentity.generate(), config))
            nodes.clients.append(client)
            nodes.outbound.append(await client.dial(address, server_node.peer_id))
            with anyio.fail_after(10):
                async for event in events:
                    if isinstance(event, PeerConnected):
                        nodes.inbound.append(event.connection)
                        break
        for conn, inbound in zip(nodes.outbound, nodes.inbound, strict=True):
            assert inbound.public_key != conn.public_key  # each end names the other
        yield nodes


async def wait_until(
    predicate: Callable[[], bool], timeout: float, describe: Callable[[], str] | None = None
) -> None:
    """Re-check ``predicate`` at every scheduling checkpoint until it holds; fail after
    ``timeout`` seconds with ``describe()`` in the message."""
    try:
        with anyio.fail_after(timeout):
            while not predicate():
                await anyio.lowlevel.checkpoint()
    except TimeoutError:
        detail = f": {describe()}" if describe is not None else ""
        raise AssertionError(f"not reached within {timeout} s{detail}") from None


# --------------------------------------------------------------------------- measurements


def current_rss() -> int:
    """Resident set size now, in bytes (Linux ``/proc``; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss()


def peak_rss() -> int:
    """The process's peak resident set size, in bytes (``getrusage``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def trim_heap() -> None:
    """Give freed heap memory back to the system (glibc ``malloc_trim``), so that memory an
    earlier scenario freed does not hide the next one's growth; a no-op elsewhere."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS (Linux >= 4.0, ``/proc/self/clear_refs`` mode 5)
    so that :func:`peak_rss` covers one scenario; ``False`` when that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


@dataclass
class Measurement:
    """Elapsed time and memory of one scenario run."""

    name: str
    full: bool = False
    """Measured by a test marked ``stress`` (a full-size variant)."""
    start_rss: int = 0
    peak_rss: int = 0
    elapsed: float = 0.0
    scenario_peak: bool = True
    """``False`` when the peak could not be reset: ``peak_rss`` is then the process's."""
    notes: list[str] = field(default_factory=list)

    @property
    def peak_growth(self) -> int:
        """Bytes the peak RSS rose above the RSS at the start."""
        return self.peak_rss - self.start_rss

    def line(self) -> str:
        scope = "" if self.scenario_peak else " (process peak)"
        extra = "".join(f", {note}" for note in self.notes)
        return (
            f"[stress] {self.name}: {self.elapsed:.2f} s, peak RSS {self.peak_rss / MIB:.0f} MiB"
            f"{scope} ({self.peak_growth / MIB:+.0f} MiB over {self.start_rss / MIB:.0f} MiB)"
            f"{extra}"
        )


MEASUREMENTS: list[Measurement] = []
"""Every measurement of this run, in order (the conftest prints the full-size ones)."""
_context = {"full": False}


def set_full_variant(full: bool) -> None:
    """Tag the following measurements as full-size (the conftest calls it per test)."""
    _context["full"] = full


@contextmanager
def measured(name: str) -> Iterator[Measurement]:
    """Time the block and record its peak RSS; print the figures afterwards (``pytest -s``)."""
    gc.collect()
    trim_heap()
    measurement = Measurement(name, full=_context["full"], start_rss=current_rss())
    MEASUREMENTS.append(measurement)
    measurement.scenario_peak = reset_peak_rss()
    started = time.perf_counter()
    try:
        yield measurement
    finally:
        measurement.elapsed = time.perf_counter() - started
        measurement.peak_rss = peak_rss()
        print(f"\n{measurement.line()}", flush=True)

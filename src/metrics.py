"""plait.metrics: :meth:`Node.stats() <plait.node.Node.stats>` as Prometheus metrics.

Optional: it needs ``prometheus-client``, installed by the ``metrics`` extra::

    pip install 'plait[metrics]'

Serve a node's metrics over HTTP next to the node, in its event loop::

    async with Node(identity) as node, anyio.create_task_group() as tg:
        endpoint = await tg.start(serve_metrics, node, "127.0.0.1", 9464)
        print("scrape", endpoint.url)          # http://127.0.0.1:9464/metrics
        ...

or add the collector to a registry of your own (``prometheus_client.REGISTRY`` included)::

    registry.register(NodeCollector(node))

Theory of operation. :class:`NodeCollector` is a ``prometheus_client`` custom collector:
every ``collect()`` (one per scrape) takes one :class:`~plait.node.NodeStats` snapshot and
turns it into metric families named ``plait_*`` (the table below); nothing is stored
between scrapes. ``Node.stats()`` must run in the node's event loop: called from that loop's
thread (as :meth:`PrometheusExporter.serve` does) the collector calls it directly; called
from another thread (``prometheus_client.start_http_server``, ``anyio.to_thread``) it runs
it in the loop with :func:`anyio.from_thread.run_sync`, which needs the collector to have
been created inside the loop.

:meth:`PrometheusExporter.serve` is a deliberately small HTTP/1.1 server on an anyio TCP
listener: one request per connection (``Connection: close``), ``GET`` or ``HEAD`` of
``/metrics`` (or ``/``), the request head limited to :data:`MAX_REQUEST_BYTES` and
:data:`REQUEST_TIMEOUT` seconds, at most :data:`MAX_CLIENTS` connections at once (more are
closed unanswered). The format follows the scraper's ``Accept`` header (Prometheus text or
OpenMetrics), as ``prometheus_client`` chooses it.

Metrics (``*_total`` are counters, the rest gauges; labels in braces):

======================================================  ===================================
``plait_node_info{peer_id,version}``                    always 1
``plait_uptime_seconds``                                seconds since the node started
``plait_listeners``                                     listeners accepting connections
``plait_connections{direction}``                        admitted connections now
``plait_connections_upgrading``                         connections in the upgrade now
``plait_connections_closing``                           connections finishing now
``plait_connections_opened_total{direction}``           connections admitted
``plait_connections_closed_total{reason}``              connections ended, by reason
``plait_connections_failed_total{direction}``           failed inbound upgrades, failed dials
``plait_banned_peers``                                  peers banned now
``plait_bans_total``                                    bans imposed
``plait_substreams``                                    substreams open now
``plait_substreams_negotiating``                        inbound substreams negotiating now
``plait_protocol_handlers``                             protocol handlers running now
``plait_substreams_opened_total{direction}``            substreams negotiated
``plait_substreams_refused_total``                      inbound substreams reset unread
``plait_substream_negotiations_failed_total``           negotiations that failed
``plait_rpc_server_sessions{protocol}``                 inbound RPC sessions now
``plait_rpc_server_sessions_admitted_total{protocol}``  inbound sessions admitted
``plait_rpc_server_sessions_rejected_total{protocol,reason}``  inbound sessions refused
``plait_rpc_server_protocol_violations_total{protocol}``  sessions ended by a violation
``plait_rpc_client_sessions{protocol}``                 outbound RPC sessions now
``plait_rpc_client_sessions_opened_total{protocol}``    outbound sessions opened
``plait_rpc_client_sessions_rejected_total{protocol,reason}``  outbound sessions refused
``plait_rpc_client_sessions_failed_total{protocol}``    outbound sessions failed otherwise
``plait_bytes_received_total``, ``plait_bytes_sent_total``  bytes over all connections
``plait_bytes_received_per_second``, ``plait_bytes_sent_per_second``  rates over the
                                                        node's rate window (prefer PromQL
                                                        ``rate()`` of the counters)
``plait_tasks``                                         tasks the node runs
``plait_peer_connected_seconds{peer_id,direction}``     per peer (``per_peer=True``)
``plait_peer_rtt_seconds{peer_id}``                     per peer, once measured
``plait_peer_substreams{peer_id}``                      per peer
``plait_peer_rpc_sessions{peer_id}``                    per peer, inbound
``plait_peer_bytes_received_total{peer_id}``            per peer
``plait_peer_bytes_sent_total{peer_id}``                per peer
======================================================  ===================================

Reasons are lower-case names (``no_server_sessions_available``, ``local``, ``remote``...);
every disconnect reason and every reject reason a server sends appears from the first
scrape, at 0. Per-peer series are bounded by ``NodeConfig.max_connections``; pass
``per_peer=False`` to leave them out.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, NamedTuple

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.abc import SocketAttribute
from anyio.streams.buffered import BufferedByteReceiveStream

try:
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import CollectorRegistry
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "plait.metrics needs prometheus-client, which the 'metrics' extra installs: "
        "pip install 'plait[metrics]'",
        name=exc.name,
    ) from exc

from . import __version__
from .node import ConnectionDirection, DisconnectReason
from .rpc import RejectReason

if TYPE_CHECKING:
    from collections.abc import Mapping

    from anyio.abc import SocketStream, TaskStatus
    from prometheus_client.metrics_core import Metric

    from .node import Node, NodeStats

__all__ = (
    "DEFAULT_METRICS_HOST",
    "DEFAULT_METRICS_PORT",
    "MAX_CLIENTS",
    "MAX_REQUEST_BYTES",
    "METRICS_PATH",
    "REQUEST_TIMEOUT",
    "MetricsEndpoint",
    "NodeCollector",
    "PrometheusExporter",
    "serve_metrics",
)

logger = logging.getLogger(__name__)

DEFAULT_METRICS_HOST = "127.0.0.1"  # loopback: exposing metrics wider is a deliberate choice
DEFAULT_METRICS_PORT = 9464  # the port OpenTelemetry's Prometheus exporter uses
METRICS_PATH = "/metrics"
MAX_REQUEST_BYTES = 8192  # request line and headers at most; a longer head gets 431
REQUEST_TIMEOUT = 10.0  # seconds a client has to send its request head and read the reply
MAX_CLIENTS = 16  # HTTP connections served at once; more are closed unanswered

_SERVER_REASONS = (
    RejectReason.UNSUPPORTED_VERSION,
    RejectReason.NO_SERVER_SESSIONS_AVAILABLE,
    RejectReason.NO_CLIENT_SESSIONS_AVAILABLE,
    RejectReason.PROTOCOL_NOT_SUPPORTED,
)
_DIRECTIONS = tuple(ConnectionDirection)


def _protocol_label(protocol: bytes) -> str:
    return protocol.decode("utf-8", "backslashreplace")


def _reasons(seen: Mapping[RejectReason, int]) -> list[tuple[str, int]]:
    counts = dict(seen)
    for reason in _SERVER_REASONS:
        counts.setdefault(reason, 0)
    return [(reason.name.lower(), count) for reason, count in sorted(counts.items())]


class NodeCollector:
    """A ``prometheus_client`` collector: one :meth:`Node.stats` snapshot per ``collect()``.

    :param node: the node to export.
    :param namespace: prefix of every metric name.
    :param per_peer: include the ``*_peer_*`` series (one per connected peer).
    """

    def __init__(self, node: Node, *, namespace: str = "plait", per_peer: bool = True) -> None:
        self.node = node
        self.namespace = namespace
        self.per_peer = per_peer
        self._thread = threading.get_ident()
        try:
            self._token: anyio.lowlevel.EventLoopToken | None = anyio.lowlevel.current_token()
        except RuntimeError:
            self._token = None

    def __repr__(self) -> str:
        return f"<NodeCollector {self.namespace} node={self.node.peer_id[:16]}>"

    def describe(self) -> list[Metric]:
        """The metric families without samples (the registry's name-clash check)."""
        return self._families(None)

    def collect(self) -> list[Metric]:
        """Take a snapshot and return it as metric families."""
        if threading.get_ident() == self._thread or self._token is None:
            stats = self.node.stats()
        else:
            stats = anyio.from_thread.run_sync(self.node.stats, token=self._token)
        return self._families(stats)

    def _families(self, stats: NodeStats | None) -> list[Metric]:
        ns = self.namespace
        families: list[Metric] = []

        def gauge(name: str, doc: str, labels: tuple[str, ...] = (),
                  samples: list[tuple[tuple[str, ...], float]] | None = None) -> None:
            family = GaugeMetricFamily(f"{ns}_{name}", doc, labels=list(labels))
            for label_values, value in samples or ():
                family.add_metric(list(label_values), value)
            families.append(family)

        def counter(name: str, doc: str, labels: tuple[str, ...] = (),
                    samples: list[tuple[tuple[str, ...], float]] | None = None) -> None:
            family = CounterMetricFamily(f"{ns}_{name}", doc, labels=list(labels))
            for label_values, value in samples or ():
                family.add_metric(list(label_values), value)
            families.append(family)

        s = stats
        c = s.connections if s is not None else None
        st = s.streams if s is not None else None
        rpc = sorted(s.rpc.values(), key=lambda r: r.protocol) if s is not None else []
        peers = sorted(s.peers.values(), key=lambda p: p.peer_id) if s is not None else []

        def one(value: float) -> list[tuple[tuple[str, ...], float]] | None:
            return None if s is None else [((), value)]

        gauge("node_info", "The node: its peer id and plait version; always 1.",
              ("peer_id", "version"),
              None if s is None else [((s.peer_id, __version__), 1.0)])
        gauge("uptime_seconds", "Seconds since the node started.",
              samples=one(s.uptime if s else 0))
        gauge("listeners", "Listeners accepting connections.",
              samples=one(s.listeners if s else 0))
        gauge("connections", "Admitted connections (one per peer).", ("direction",),
              None if c is None else [(("inbound",), c.inbound), (("outbound",), c.outbound)])
        gauge("connections_upgrading", "Connections in the upgrade (wire byte, Noise, identity).",
              samples=one(c.upgrading if c else 0))
        gauge("connections_closing", "Connections no longer admitted, still finishing.",
              samples=one(c.closing if c else 0))
        counter("connections_opened", "Connections admitted.", ("direction",),
                None if c is None else [(("inbound",), c.opened_inbound_total),
                                        (("outbound",), c.opened_outbound_total)])
        counter("connections_closed", "Connections ended, by reason.", ("reason",),
                None if c is None else [((reason.value,), c.closed_total.get(reason, 0))
                                        for reason in DisconnectReason])
        counter("connections_failed", "Inbound connections failed before admission; dials "
                "that failed.", ("direction",),
                None if c is None else [(("inbound",), c.failed_inbound_total),
                                        (("outbound",), c.failed_outbound_total)])
        gauge("banned_peers", "Peers banned now.", samples=one(c.banned_peers if c else 0))
        counter("bans", "Bans imposed.", samples=one(c.bans_total if c else 0))
        gauge("substreams", "Yamux substreams open now, both directions.",
              samples=one(st.open if st else 0))
        gauge("substreams_negotiating", "Inbound substreams negotiating their protocol now.",
              samples=one(st.negotiating if st else 0))
        gauge("protocol_handlers", "Protocol handlers running now.",
              samples=one(st.handlers if st else 0))
        counter("substreams_opened", "Substreams negotiated.", ("direction",),
                None if st is None else [(("inbound",), st.inbound_total),
                                         (("outbound",), st.outbound_total)])
        counter("substreams_refused", "Inbound substreams reset unread (negotiation cap, no "
                "protocol).", samples=one(st.refused_total if st else 0))
        counter("substream_negotiations_failed", "Protocol negotiations that failed.",
                samples=one(st.failed_total if st else 0))
        proto = ("protocol",)
        gauge("rpc_server_sessions", "Inbound RPC sessions holding a server slot now.", proto,
              None if s is None else [((_protocol_label(r.protocol),), r.server.active)
                                      for r in rpc])
        counter("rpc_server_sessions_admitted", "Inbound RPC sessions admitted.", proto,
                None if s is None else [((_protocol_label(r.protocol),), r.server.admitted_total)
                                        for r in rpc])
        counter("rpc_server_sessions_rejected", "Inbound RPC sessions refused, by reason.",
                ("protocol", "reason"),
                None if s is None else [((_protocol_label(r.protocol), reason), count)
                                        for r in rpc
                                        for reason, count in _reasons(r.server.rejected_total)])
        counter("rpc_server_protocol_violations", "Inbound RPC sessions ended by a client's "
                "protocol violation.", proto,
                None if s is None else [((_protocol_label(r.protocol),), r.server.violations_total)
                                        for r in rpc])
        gauge("rpc_client_sessions", "Outbound RPC sessions open now.", proto,
              None if s is None else [((_protocol_label(r.protocol),), r.client.active)
                                      for r in rpc])
        counter("rpc_client_sessions_opened", "Outbound RPC sessions opened.", proto,
                None if s is None else [((_protocol_label(r.protocol),), r.client.opened_total)
                                        for r in rpc])
        counter("rpc_client_sessions_rejected", "Outbound RPC sessions the server refused, by "
                "reason.", ("protocol", "reason"),
                None if s is None else [((_protocol_label(r.protocol), reason), count)
                                        for r in rpc
                                        for reason, count in _reasons(r.client.rejected_total)])
        counter("rpc_client_sessions_failed", "Outbound RPC session attempts that failed "
                "otherwise.", proto,
                None if s is None else [((_protocol_label(r.protocol),), r.client.failed_total)
                                        for r in rpc])
        traffic = s.traffic if s is not None else None
        counter("bytes_received", "Bytes received over all connections (Yamux frames).",
                samples=one(traffic.bytes_in if traffic else 0))
        counter("bytes_sent", "Bytes sent over all connections (Yamux frames).",
                samples=one(traffic.bytes_out if traffic else 0))
        gauge("bytes_received_per_second", "Receive rate over the node's rate window.",
              samples=one(traffic.bytes_in_rate if traffic else 0))
        gauge("bytes_sent_per_second", "Send rate over the node's rate window.",
              samples=one(traffic.bytes_out_rate if traffic else 0))
        gauge("tasks", "Tasks the node runs.", samples=one(s.tasks if s else 0))
        if not self.per_peer:
            return families
        peer = ("peer_id",)
        gauge("peer_connected_seconds", "Seconds since the peer's connection was admitted.",
              ("peer_id", "direction"),
              None if s is None else [((p.peer_id, p.direction.value), p.connected_for)
                                      for p in peers])
        gauge("peer_rtt_seconds", "Latest Yamux ping round trip to the peer.", peer,
              None if s is None else [((p.peer_id,), p.rtt) for p in peers
                                      if p.rtt is not None])
        gauge("peer_substreams", "Substreams open to the peer.", peer,
              None if s is None else [((p.peer_id,), p.streams) for p in peers])
        gauge("peer_rpc_sessions", "Inbound RPC sessions of the peer now.", peer,
              None if s is None else [((p.peer_id,), p.rpc_sessions) for p in peers])
        counter("peer_bytes_received", "Bytes received from the peer on this connection.", peer,
                None if s is None else [((p.peer_id,), p.traffic.bytes_in) for p in peers])
        counter("peer_bytes_sent", "Bytes sent to the peer on this connection.", peer,
                None if s is None else [((p.peer_id,), p.traffic.bytes_out) for p in peers])
        return families


class MetricsEndpoint(NamedTuple):
    """Where :meth:`PrometheusExporter.serve` listens."""

    host: str
    """The bound IP address."""
    port: int
    """The bound port (the real one when 0 was asked for)."""

    @property
    def url(self) -> str:
        """``http://HOST:PORT/metrics`` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{METRICS_PATH}"


class PrometheusExporter:
    """A node's metrics in a registry, and a small HTTP server for scrapers.

    Create it inside the node's event loop.

    :param node: the node to export.
    :param registry: where to register the :class:`NodeCollector`; default a new
        ``CollectorRegistry`` holding only it.
    :param namespace: prefix of every metric name.
    :param per_peer: include the per-peer series.
    """

    def __init__(
        self,
        node: Node,
        *,
        registry: CollectorRegistry | None = None,
        namespace: str = "plait",
        per_peer: bool = True,
    ) -> None:
        self.node = node
        self.registry = registry if registry is not None else CollectorRegistry()
        """The registry scraped by :meth:`serve` and :meth:`render`."""
        self.collector = NodeCollector(node, namespace=namespace, per_peer=per_peer)
        """The collector reading ``node.stats()``."""
        self.registry.register(self.collector)
        self._clients = anyio.Semaphore(MAX_CLIENTS)

    def __repr__(self) -> str:
        return f"<PrometheusExporter node={self.node.peer_id[:16]}>"

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The registry in the format ``accept`` asks for (Prometheus text by default).
        Call it from the event loop or from a thread it started.

        :return: the body and its ``Content-Type``.
        """
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    async def serve(
        self,
        host: str = DEFAULT_METRICS_HOST,
        port: int = DEFAULT_METRICS_PORT,
        *,
        task_status: TaskStatus[MetricsEndpoint] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve ``GET /metrics`` on ``host:port`` until cancelled.

        Start it with ``endpoint = await task_group.start(exporter.serve, host, port)`` to
        learn the bound port (``port=0`` picks a free one).

        :raises OSError: the address cannot be bound.
        """
        listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        async with listener:
            first = listener.listeners[0]
            endpoint = MetricsEndpoint(
                str(first.extra(SocketAttribute.local_address)[0]),
                first.extra(SocketAttribute.local_port),
            )
            logger.info("serving metrics on %s", endpoint.url)
            task_status.started(endpoint)
            await listener.serve(self._serve_client)

    async def _serve_client(self, client: SocketStream) -> None:
        async with client:
            try:
                self._clients.acquire_nowait()
            except anyio.WouldBlock:
                return
            try:
                with anyio.move_on_after(REQUEST_TIMEOUT):
                    await self._answer(client)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream,
                    anyio.IncompleteRead, OSError) as exc:
                logger.debug("metrics client went away: %r", exc)
            finally:
                self._clients.release()

    async def _answer(self, client: SocketStream) -> None:
        reader = BufferedByteReceiveStream(client)
        try:
            head = await reader.receive_until(b"\r\n\r\n", MAX_REQUEST_BYTES)
        except anyio.DelimiterNotFound:
            head = None
        if head is None or len(head) > MAX_REQUEST_BYTES:  # (receive_until checks per chunk)
            await _respond(client, 431, "Request Header Fields Too Large")
            return
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await _respond(client, 400, "Bad Request")
            return
        method, target = parts[0], parts[1]
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            await _respond(client, 405, "Method Not Allowed", extra="Allow: GET, HEAD\r\n")
            return
        if path not in (METRICS_PATH, "/"):
            await _respond(client, 404, "Not Found")
            return
        accept = ""
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "accept":
                accept = value.strip()
        try:
            body, content_type = self.render(accept)
        except Exception:
            logger.exception("collecting the node's metrics failed")
            await _respond(client, 500, "Internal Server Error")
            return
        await _respond(client, 200, "OK", body, content_type, head_only=method == "HEAD")


async def _respond(
    client: SocketStream,
    status: int,
    phrase: str,
    body: bytes | None = None,
    content_type: str = "text/plain; charset=utf-8",
    *,
    extra: str = "",
    head_only: bool = False,
) -> None:
    if body is None:
        body = f"{status} {phrase}\n".encode()
    head = (f"HTTP/1.1 {status} {phrase}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n").encode("latin-1")
    await client.send(head if head_only else head + body)


async def serve_metrics(
    node: Node,
    host: str = DEFAULT_METRICS_HOST,
    port: int = DEFAULT_METRICS_PORT,
    *,
    task_status: TaskStatus[MetricsEndpoint] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``node``'s metrics at ``http://host:port/metrics`` until cancelled:
    :meth:`PrometheusExporter.serve` of a new :class:`PrometheusExporter`.

    ``endpoint = await task_group.start(serve_metrics, node, "127.0.0.1", 0)`` returns the
    :class:`MetricsEndpoint` once it listens.

    :raises OSError: the address cannot be bound.
    """
    exporter = PrometheusExporter(node)
    await exporter.serve(host, port, task_status=task_status)

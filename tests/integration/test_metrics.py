"""plait.metrics over real HTTP on 127.0.0.1, on both anyio backends: the exporter serves a
node's stats as Prometheus metrics whose names and values follow the node; HTTP errors,
content negotiation, a scrape from another thread, and the ImportError without
prometheus-client."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import pytest
from plait import Node, NodeIdentity
from plait.metrics import (
    MAX_REQUEST_BYTES,
    MetricsEndpoint,
    NodeCollector,
    PrometheusExporter,
    serve_metrics,
)
from plait.node import ECHO_PROTOCOL_ID, PeerConnected, PeerDisconnected, echo_handler
from plait.rpc.greeting import GREETING_PROTOCOL, Greeting
from plait.rpc.proto.greeting_pb2 import SayHelloRequest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from plait.node import NodeEvent, NodeEvents

pytestmark = [pytest.mark.anyio, pytest.mark.network]

PAYLOAD = b"m" * 50_000
GREETING = GREETING_PROTOCOL.decode()


async def next_event(events: NodeEvents, kind: type[NodeEvent]) -> NodeEvent:
    with anyio.fail_after(10):
        async for event in events:
            if isinstance(event, kind):
                return event
    raise AssertionError(f"no {kind.__name__}")


async def http(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send a raw request to 127.0.0.1:port; return status, headers and body (read to EOF)."""
    with anyio.fail_after(10):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(request)
            chunks = []
            try:
                while True:
                    chunks.append(await stream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ")[1]), headers, body


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition: (name, labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    return found[name, frozenset(labels.items())]


@asynccontextmanager
async def served_node() -> AsyncIterator[tuple[Node, MetricsEndpoint]]:
    with anyio.fail_after(30):
        async with Node(NodeIdentity.generate()) as node, anyio.create_task_group() as tg:
            node.add_protocol(ECHO_PROTOCOL_ID, echo_handler)
            node.add_service(Greeting())
            endpoint = await tg.start(serve_metrics, node, "127.0.0.1", 0)
            yield node, endpoint
            tg.cancel_scope.cancel()


async def test_exporter_serves_the_node_stats() -> None:
    async with served_node() as (server, endpoint), Node(NodeIdentity.generate()) as client:
        assert endpoint.host == "127.0.0.1" and endpoint.port > 0
        assert endpoint.url == f"http://127.0.0.1:{endpoint.port}/metrics"
        address = await server.listen("tcp://127.0.0.1:0")
        status, headers, body = await http(endpoint.port, b"GET /metrics HTTP/1.1\r\n"
                                           b"Host: x\r\n\r\n")
        assert status == 200
        assert headers["content-type"].startswith("text/plain; version=0.0.4")
        assert int(headers["content-length"]) == len(body)
        idle = samples(body.decode())
        assert value(idle, "plait_node_info", peer_id=server.peer_id,
                     version=__import__("plait").__version__) == 1.0
        assert value(idle, "plait_connections", direction="inbound") == 0
        assert value(idle, "plait_rpc_server_sessions", protocol=GREETING) == 0
        assert value(idle, "plait_rpc_server_sessions_rejected_total", protocol=GREETING,
                     reason="no_server_sessions_available") == 0
        assert value(idle, "plait_connections_closed_total", reason="remote") == 0
        assert value(idle, "plait_bytes_received_total") == 0

        # traffic: a connection, an echo substream, an open RPC session, a ping
        async with server.events() as events:
            conn = await client.dial(address, server.peer_id)
            await next_event(events, PeerConnected)
        stream = await conn.open_substream(ECHO_PROTOCOL_ID)
        await stream.send(PAYLOAD)
        received = b""
        while len(received) < len(PAYLOAD):
            received += await stream.receive()
        session = await conn.connect_rpc(Greeting.Client)
        assert (await session.say_hello(SayHelloRequest(name="m"))).greeting == "Sawubona m"
        await server.get_connection(client.peer_id).muxer.ping()  # type: ignore[union-attr]

        before = server.stats()
        # the scrape through urllib in a worker thread: a real HTTP client
        text = await anyio.to_thread.run_sync(
            lambda: urllib.request.urlopen(endpoint.url, timeout=10).read().decode()
        )
        after = server.stats()
        busy = samples(text)
        assert value(busy, "plait_connections", direction="inbound") == 1
        assert value(busy, "plait_connections", direction="outbound") == 0
        assert value(busy, "plait_connections_opened_total", direction="inbound") == 1
        assert value(busy, "plait_substreams_opened_total", direction="inbound") == 2
        assert value(busy, "plait_substreams") == 2  # echo (still open) and the RPC session
        assert value(busy, "plait_protocol_handlers") == 2
        assert value(busy, "plait_rpc_server_sessions", protocol=GREETING) == 1
        assert value(busy, "plait_rpc_server_sessions_admitted_total", protocol=GREETING) == 1
        received_total = value(busy, "plait_bytes_received_total")
        assert (before.traffic.bytes_in <= received_total <= after.traffic.bytes_in)
        assert received_total > len(PAYLOAD)
        assert value(busy, "plait_peer_bytes_received_total", peer_id=client.peer_id) == (
            received_total)
        assert value(busy, "plait_peer_substreams", peer_id=client.peer_id) == 2
        assert value(busy, "plait_peer_rpc_sessions", peer_id=client.peer_id) == 1
        rtt = before.peers[client.peer_id].rtt
        assert rtt is not None
        assert value(busy, "plait_peer_rtt_seconds", peer_id=client.peer_id) == rtt
        assert value(busy, "plait_peer_connected_seconds", peer_id=client.peer_id,
                     direction="inbound") > 0
        assert value(busy, "plait_uptime_seconds") > 0

        # the client leaves: gauges drop, counters stay, the peer's series go
        async with server.events() as events:
            await conn.disconnect()
            await next_event(events, PeerDisconnected)
        _, _, body = await http(endpoint.port, b"GET / HTTP/1.0\r\n\r\n")
        gone = samples(body.decode())
        assert value(gone, "plait_connections", direction="inbound") == 0
        assert value(gone, "plait_connections_closed_total", reason="remote") == 1
        assert value(gone, "plait_bytes_received_total") >= received_total
        assert not any(name.startswith("plait_peer_") for name, _ in gone)


async def test_http_errors_head_and_openmetrics() -> None:
    async with served_node() as (_, endpoint):
        port = endpoint.port
        assert (await http(port, b"GET /nope HTTP/1.1\r\n\r\n"))[0] == 404
        status, headers, _ = await http(port, b"POST /metrics HTTP/1.1\r\n\r\n")
        assert status == 405 and headers["allow"] == "GET, HEAD"
        assert (await http(port, b"garbage\r\n\r\n"))[0] == 400
        too_long = b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * MAX_REQUEST_BYTES + b"\r\n\r\n"
        assert (await http(port, too_long))[0] == 431
        status, headers, body = await http(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
        assert status == 200 and body == b"" and int(headers["content-length"]) > 0
        status, headers, body = await http(
            port, b"GET /metrics?x=1 HTTP/1.1\r\n"
            b"Accept: application/openmetrics-text; version=1.0.0\r\n\r\n"
        )
        assert status == 200
        assert headers["content-type"].startswith("application/openmetrics-text")
        assert body.endswith(b"# EOF\n")
        assert b"plait_connections_opened_total" in body


async def test_collector_serves_other_threads_and_guards_names() -> None:
    async with Node(NodeIdentity.generate()) as node:
        exporter = PrometheusExporter(node, per_peer=False)
        body, content_type = await anyio.to_thread.run_sync(exporter.render)  # thread hop
        assert content_type.startswith("text/plain")
        found = samples(body.decode())
        assert value(found, "plait_connections", direction="inbound") == 0
        assert not any(name.startswith("plait_peer_") for name, _ in found)
        registry = CollectorRegistry()
        registry.register(NodeCollector(node))
        with pytest.raises(ValueError, match="Duplicated timeseries"):
            registry.register(NodeCollector(node))
        registry.register(NodeCollector(node, namespace="other"))  # another prefix is fine


def test_missing_prometheus_client_is_a_clear_import_error() -> None:
    code = "import sys; sys.modules['prometheus_client'] = None; import plait.metrics"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1
    assert "ImportError: plait.metrics needs prometheus-client" in done.stderr
    assert "pip install 'plait[metrics]'" in done.stderr

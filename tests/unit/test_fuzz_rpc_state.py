"""Stateful fuzzing of RPC framing and sessions (hardening.md §4): a client and a server
session core joined by a generated channel, each direction re-chunked at random.

Hypothesis interleaves calls (unary and streaming), pings, interrupts, server replies of
every kind (reply, items, terminator, error status, oversize payload, abandon), clock
ticks past deadlines, partial deliveries, EOF and injected garbage. Invariants after every
step: only :class:`~plait.rpc.RpcError` subclasses escape; request ids stay in 1..65535;
while nothing foreign was injected, every response the client accepts for a request
carries the payloads the server sent for that request, in order, and nothing else (stale
frames after interrupts and timeouts are skipped, never misattributed); the decoders never
hold more than one frame.

Deterministic in CI: the ``ci`` hypothesis profile (tests/conftest.py) derandomizes.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from plait.rpc import (
    ClientSessionState,
    InterruptReceived,
    RequestReceived,
    ResponseReceived,
    RpcClientConfig,
    RpcError,
    RpcServerConfig,
    RpcStatus,
    ServerSessionState,
    StatusCode,
)

MAX_FRAME = 2048
CLIENT = RpcClientConfig(max_frame_size=MAX_FRAME, deadline=10, deadline_grace_period=1,
                         handshake_timeout=5, max_stale_responses=4)
SERVER = RpcServerConfig(max_frame_size=MAX_FRAME)
PAYLOADS = st.binary(max_size=64)


class RpcPair(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.now = 0.0
        self.client = ClientSessionState(CLIENT)
        self.server = ServerSessionState(SERVER)
        self.to_server = bytearray()
        self.to_client = bytearray()
        self.interfered = False
        self.sent: dict[int, list[bytes]] = {}
        """Payloads the server sent per request id (OK status only)."""
        self.received: dict[int, list[bytes]] = {}
        self.active: int | None = None
        """The request the server is handling, as it knows it."""
        self.client.initiate(self.now)
        self._pump_client()
        self.deliver_to_server(1 << 16)  # the session handshake
        self.deliver_to_client(1 << 16)

    # -- plumbing -------------------------------------------------------------------------

    def _pump_client(self) -> None:
        if not self.client.is_closed:
            self.to_server += self.client.data_to_send()

    def _pump_server(self) -> None:
        if not self.server.is_closed:
            self.to_client += self.server.data_to_send()

    def _server_events(self, data: bytes) -> None:
        try:
            events = self.server.receive_data(data)
        except RpcError:
            assert self.server.is_closed
            self.active = None
            return
        for event in events:
            if isinstance(event, RequestReceived):
                assert 1 <= event.request_id <= 0xFFFF or self.interfered
                self.active = event.request_id
                self.sent.setdefault(event.request_id, [])
            elif isinstance(event, InterruptReceived):
                self.active = None
        self._pump_server()

    def _client_events(self, data: bytes) -> None:
        try:
            events = self.client.receive_data(data, now=self.now)
        except RpcError:
            assert self.client.is_closed
            return
        for event in events:
            if isinstance(event, ResponseReceived) and event.status is StatusCode.OK:
                self.received.setdefault(event.request_id, []).append(event.payload)
        self._pump_client()

    # -- client rules ---------------------------------------------------------------------

    @precondition(lambda self: self.client.is_idle)
    @rule(payload=PAYLOADS, streaming=st.booleans())
    def call(self, payload: bytes, streaming: bool) -> None:
        request_id = self.client.send_request(1, payload, streaming=streaming, now=self.now)
        assert 1 <= request_id <= 0xFFFF
        self._pump_client()

    @precondition(lambda self: self.client.is_idle)
    @rule()
    def ping(self) -> None:
        self.client.ping(now=self.now)
        self._pump_client()

    @rule()
    def interrupt(self) -> None:
        self.client.interrupt()
        self._pump_client()

    @rule(seconds=st.sampled_from([0.5, 5.0, 12.0]))
    def tick(self, seconds: float) -> None:
        self.now += seconds
        self.client.handle_timer(self.now)
        self._pump_client()

    # -- server rules ---------------------------------------------------------------------

    @precondition(lambda self: self.active is not None and not self.server.is_closed)
    @rule(kind=st.sampled_from(["reply", "item", "end", "error", "oversize", "abandon"]),
          payload=PAYLOADS)
    def respond(self, kind: str, payload: bytes) -> None:
        request_id = self.active
        if request_id is None or self.server.is_closed:  # reached from round_trip
            return
        if kind == "reply":
            try:
                if self.server.send_response(request_id, payload):
                    self.sent[request_id].append(payload)
                    self.active = None
            except RpcError:  # a unary reply after stream items is local misuse
                return
        elif kind == "item":
            if self.server.send_item(request_id, payload):
                self.sent[request_id].append(payload)
        elif kind == "end":  # an empty FIN: the terminator, or an empty unary reply
            if self.server.end_stream(request_id):
                self.sent[request_id].append(b"")
            self.active = None
        elif kind == "error":
            self.server.send_error(request_id, RpcStatus(StatusCode.NOT_FOUND, "no"))
            self.active = None
        elif kind == "oversize":
            self.server.send_item(request_id, bytes(MAX_FRAME))  # MALFORMED_RESPONSE
            self.active = None
        else:
            self.server.abandon_request(request_id)
            self.active = None
        self._pump_server()

    @precondition(lambda self: self.client.is_idle)
    @rule(items=st.lists(PAYLOADS, max_size=4), streaming=st.booleans(),
          chunk=st.integers(1, 64))
    def round_trip(self, items: list[bytes], streaming: bool, chunk: int) -> None:
        """A whole call at once (progress), each direction cut into ``chunk``-byte reads."""
        self.call(b"req", streaming)
        while self.to_server:
            self.deliver_to_server(chunk)
        if self.active is None:
            return
        if streaming:
            for item in items:
                self.respond("item", item)
            self.respond("end", b"")
        else:
            self.respond("reply", items[0] if items else b"")
        while self.to_client:
            self.deliver_to_client(chunk)

    # -- the channel ----------------------------------------------------------------------

    @rule(n=st.integers(1, 600))
    def deliver_to_server(self, n: int) -> None:
        chunk = bytes(self.to_server[:n])
        del self.to_server[:n]
        if chunk:
            self._server_events(chunk)

    @rule(n=st.integers(1, 600))
    def deliver_to_client(self, n: int) -> None:
        chunk = bytes(self.to_client[:n])
        del self.to_client[:n]
        if chunk:
            self._client_events(chunk)

    # interference is drawn rarely (1 in 8), so most runs reach deep into a session

    @rule(data=st.binary(min_size=1, max_size=16), to_server=st.booleans(), go=st.integers(0, 7))
    def inject_garbage(self, data: bytes, to_server: bool, go: int) -> None:
        if go:
            return
        self.interfered = True
        (self.to_server if to_server else self.to_client).extend(data)

    @rule(to_server=st.booleans(), go=st.integers(0, 7))
    def eof(self, to_server: bool, go: int) -> None:
        if go:
            return
        self.interfered = True
        if to_server:
            self._server_events(b"")
        else:
            self._client_events(b"")

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def responses_belong_to_their_request(self) -> None:
        if self.interfered:
            return
        for request_id, payloads in self.received.items():
            sent = self.sent.get(request_id, [])
            assert payloads == sent[: len(payloads)], (request_id, payloads, sent)

    @invariant()
    def in_flight_id_is_valid(self) -> None:
        in_flight = self.client.request_in_flight
        assert in_flight is None or 0 <= in_flight <= 0xFFFF


TestRpcPair = RpcPair.TestCase
TestRpcPair.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)

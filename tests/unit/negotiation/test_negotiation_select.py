"""negotiate_outbound / negotiate_inbound over real streams: TCP on loopback and memory."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from anyio.abc import ByteStream
from plait.negotiation import (
    InvalidFlagError,
    NegotiationClosedError,
    NegotiationConfig,
    NegotiationTerminatedError,
    NegotiationTimeoutError,
    PrefixedStream,
    ProtocolNotSupportedError,
    negotiate_inbound,
    negotiate_outbound,
)
from plait.transport import MemoryNetwork, TcpTransport, Transport

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

pytestmark = pytest.mark.anyio



@asynccontextmanager
async def stream_pair(kind: str) -> AsyncIterator[tuple[ByteStream, ByteStream]]:
    """A connected (dialer, listener) pair over the named transport."""
    transport: Transport
    if kind == "tcp":
        transport = TcpTransport()
        address = "tcp://127.0.0.1:0"
    else:
        transport = MemoryNetwork()
        address = "memory://negotiation"
    listener = await transport.listen(address)
    async with listener:
        dialer = await transport.dial(listener.address)
        accepted = await listener.accept()
        async with dialer, accepted:
            yield dialer, accepted


KINDS = [pytest.param("tcp", marks=pytest.mark.network), "memory"]


@pytest.mark.parametrize("kind", KINDS)
async def test_normal_negotiation_then_protocol_bytes(kind: str) -> None:
    async with stream_pair(kind) as (dialer, listener):
        results: dict[str, tuple[bytes, ByteStream]] = {}

        async def inbound() -> None:
            results["in"] = await negotiate_inbound(listener, {b"/b", "/plait/echo/1"})

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(inbound)
                results["out"] = await negotiate_outbound(dialer, [b"/a", "/plait/echo/1"])
            (out_proto, out_stream), (in_proto, in_stream) = results["out"], results["in"]
            assert out_proto == in_proto == b"/plait/echo/1"
            assert out_stream is dialer and in_stream is listener  # nothing over-read
            await out_stream.send(b"after negotiation")
            assert await in_stream.receive() == b"after negotiation"


@pytest.mark.parametrize("kind", KINDS)
async def test_optimistic_with_data_in_the_same_write(kind: str) -> None:
    async with stream_pair(kind) as (dialer, listener):
        with anyio.fail_after(5):
            protocol, stream = await negotiate_outbound(
                dialer, ["t/greeting/1"], optimistic=True
            )
            assert (protocol, stream) == (b"t/greeting/1", dialer)
            await stream.send(b"payload")  # the responder has not answered: it never will
            in_proto, in_stream = await negotiate_inbound(listener, [b"t/greeting/1"])
            assert in_proto == b"t/greeting/1"
            received = b""
            while len(received) < len(b"payload"):
                received += await in_stream.receive()
            assert received == b"payload"


@pytest.mark.parametrize("kind", KINDS)
async def test_no_common_protocol(kind: str) -> None:
    async with stream_pair(kind) as (dialer, listener):
        errors: dict[str, BaseException] = {}

        async def run(name: str, coro: Callable[[], Any]) -> None:
            try:
                await coro()
            except Exception as exc:
                errors[name] = exc

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run, "in", lambda: negotiate_inbound(listener, [b"A", b"B"]))
                tg.start_soon(run, "out", lambda: negotiate_outbound(dialer, [b"C", b"D", b"E"]))
        assert isinstance(errors["out"], ProtocolNotSupportedError)
        assert isinstance(errors["in"], NegotiationTerminatedError)


@pytest.mark.parametrize("kind", KINDS)
async def test_six_unsupported_proposals(kind: str) -> None:
    async with stream_pair(kind) as (dialer, listener):
        errors: dict[str, BaseException] = {}

        async def run(name: str, coro: Callable[[], Any]) -> None:
            try:
                await coro()
            except Exception as exc:
                errors[name] = exc

        candidates = [b"C", b"D", b"E", b"F", b"G", b"A"]
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run, "in", lambda: negotiate_inbound(listener, [b"A", b"B"]))
                tg.start_soon(run, "out", lambda: negotiate_outbound(dialer, candidates))
        assert isinstance(errors["in"], ProtocolNotSupportedError)
        assert errors["in"].protocols == (b"C", b"D", b"E", b"F", b"G")
        assert isinstance(errors["out"], NegotiationTerminatedError)


async def test_optimistic_unsupported_sends_nothing() -> None:
    async with stream_pair("memory") as (dialer, listener):
        with anyio.fail_after(5):
            await negotiate_outbound(dialer, [b"nope"], optimistic=True)
            await dialer.send(b"data that must be dropped")
            with pytest.raises(ProtocolNotSupportedError):
                await negotiate_inbound(listener, [b"yes"])
            await listener.send_eof()
            with pytest.raises(anyio.EndOfStream):
                await dialer.receive()  # no reply frame was written


async def test_invalid_flag_from_a_raw_peer() -> None:
    """hardening.md P1: ``03 f0 'abc'``."""
    async with stream_pair("memory") as (dialer, listener):
        await dialer.send(b"\x03\xf0abc")
        with anyio.fail_after(5), pytest.raises(InvalidFlagError):
            await negotiate_inbound(listener, [b"abc"])


async def test_timeout_when_the_peer_stalls() -> None:
    async with stream_pair("memory") as (dialer, _listener):
        with anyio.fail_after(5), pytest.raises(NegotiationTimeoutError) as info:
            await negotiate_outbound(dialer, [b"/a"], config=NegotiationConfig(timeout=0.05))
        assert isinstance(info.value, TimeoutError)


async def test_peer_closes_mid_negotiation() -> None:
    async with stream_pair("memory") as (dialer, listener):
        await dialer.send(b"\x05\x00ab")
        await dialer.send_eof()
        with anyio.fail_after(5), pytest.raises(NegotiationClosedError):
            await negotiate_inbound(listener, [b"abcde"])


class GreedyStream(ByteStream):
    """A stream that ignores ``max_bytes`` (a contract breach) to exercise PrefixedStream."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.sent = bytearray()

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self.data:
            raise anyio.EndOfStream
        data, self.data = self.data, b""
        return data

    async def send(self, item: bytes) -> None:
        self.sent += item

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


async def test_over_read_bytes_are_replayed_by_a_prefixed_stream() -> None:
    raw = GreedyStream(b"\x02\x03/pFIRST")
    protocol, stream = await negotiate_inbound(raw, [b"/p"])
    assert protocol == b"/p"
    assert isinstance(stream, PrefixedStream) and stream.transport_stream is raw
    assert await stream.receive(3) == b"FIR"
    assert await stream.receive() == b"ST"
    with pytest.raises(anyio.EndOfStream):
        await stream.receive()
    await stream.send(b"x")
    assert raw.sent == b"x"


async def test_prefixed_stream_delegates() -> None:
    async with stream_pair("memory") as (dialer, listener):
        wrapped = PrefixedStream(listener, b"pre")
        await dialer.send(b"fix")
        assert await wrapped.receive() == b"pre"
        assert await wrapped.receive() == b"fix"
        await wrapped.send(b"back")
        assert await dialer.receive() == b"back"
        assert wrapped.extra_attributes == listener.extra_attributes
        await wrapped.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await wrapped.receive()

"""The TCP transport on loopback, IPv4 and IPv6."""

from __future__ import annotations

import socket

import anyio
import pytest
from anyio.abc import SocketAttribute
from plait.transport import (
    DialError,
    InvalidAddressError,
    ListenError,
    TcpAddress,
    TcpConfig,
    TcpTransport,
    Transport,
)

pytestmark = [pytest.mark.anyio, pytest.mark.network]


def _ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


HOSTS = [
    pytest.param("127.0.0.1", id="ipv4"),
    pytest.param(
        "::1",
        id="ipv6",
        marks=pytest.mark.skipif(not _ipv6_loopback_available(), reason="no IPv6 loopback (::1)"),
    ),
]


@pytest.mark.parametrize("host", HOSTS)
async def test_dial_listen_echo(host: str) -> None:
    transport = TcpTransport()
    assert isinstance(transport, Transport)
    bracketed = f"[{host}]" if ":" in host else host
    listener = await transport.listen(f"tcp://{bracketed}:0")
    address = listener.address
    assert isinstance(address, TcpAddress)
    assert address.host == host and address.port != 0
    with anyio.fail_after(10):
        async with listener, anyio.create_task_group() as tg:

            async def echo() -> None:
                stream = await listener.accept()
                assert stream.extra(SocketAttribute.raw_socket).getsockopt(
                    socket.IPPROTO_TCP, socket.TCP_NODELAY
                )
                async with stream:
                    while True:
                        try:
                            await stream.send(await stream.receive())
                        except anyio.EndOfStream:
                            return

            tg.start_soon(echo)
            client = await transport.dial(str(address))
            async with client:
                assert client.extra(SocketAttribute.raw_socket).getsockopt(
                    socket.IPPROTO_TCP, socket.TCP_NODELAY
                )
                assert client.extra(SocketAttribute.remote_address)[1] == address.port
                payload = b"plait" * 50_000
                received = bytearray()
                async with anyio.create_task_group() as inner:

                    async def reader() -> None:
                        while len(received) < len(payload):
                            received.extend(await client.receive())

                    inner.start_soon(reader)
                    await client.send(payload)
                assert bytes(received) == payload
                await client.send_eof()
                with pytest.raises(anyio.EndOfStream):
                    await client.receive()


async def test_serve_with_handler() -> None:
    transport = TcpTransport()
    listener = await transport.listen("tcp://127.0.0.1:0")
    got = anyio.Event()

    async def handler(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            assert await stream.receive() == b"hi"
            got.set()

    with anyio.fail_after(10):
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handler)
            async with await transport.dial(listener.address) as stream:
                await stream.send(b"hi")
                await got.wait()
            tg.cancel_scope.cancel()


async def test_dial_refused_is_a_dial_error() -> None:
    transport = TcpTransport()
    listener = await transport.listen("tcp://127.0.0.1:0")
    port = listener.address.port
    await listener.aclose()
    with anyio.fail_after(10), pytest.raises(DialError) as info:
        await transport.dial(f"tcp://127.0.0.1:{port}")
    assert isinstance(info.value, OSError)
    assert isinstance(info.value.__cause__, OSError)


async def test_listen_on_a_port_in_use_is_a_listen_error() -> None:
    transport = TcpTransport()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ListenError):
            await transport.listen(f"tcp://127.0.0.1:{port}")


async def test_invalid_targets() -> None:
    transport = TcpTransport()
    with pytest.raises(InvalidAddressError):
        await transport.dial("tcp://127.0.0.1:0")
    with pytest.raises(InvalidAddressError):
        await transport.dial("memory://x")


async def test_accept_after_close_raises() -> None:
    listener = await TcpTransport().listen("tcp://127.0.0.1:0")
    await listener.aclose()
    with pytest.raises((anyio.ClosedResourceError, OSError)):
        await listener.accept()


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        TcpConfig(connect_timeout=0)
    with pytest.raises(ValueError):
        TcpConfig(backlog=0)

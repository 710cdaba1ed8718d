"""The built-in layers: every measurement and the checks against its same-run ceilings.

Figures (one process, both ends on one event loop, TCP on 127.0.0.1; performance.md §5):

========================  ==========================================================
tcp-bulk                  anyio TCP, 256 KiB sends, 4 × ``--size`` bytes (MB/s)
tcp-bulk-64k / -1k        anyio TCP in 64 KiB / 1 KiB sends (the Noise write sizes)
tcp-pingpong              100-byte request, 100-byte reply, one connection (round trips/s)
*-pingpong                the same over NoiseStream / one open Yamux substream
crypto                    ChaCha20-Poly1305 encrypt+decrypt of 65 519-byte blocks (MB/s)
serial-ceiling            1 / (1/tcp-bulk + 1/crypto): one process pays for both
noise-64k / noise-1k      NoiseStream bulk in 64 KiB / 1 KiB writes (MB/s)
yamux-bulk-1 / -n         Yamux over plaintext TCP: 1 stream × size, N streams × size/N
yamux-streams             sequential stream open + 1-byte echo + close (/s)
stack-bulk-1 / -n         Yamux over Noise over TCP, as above
stack-streams             the same over the full stack (/s)
noise-handshake           bare Noise XX handshakes over fresh TCP connections (/s)
connect                   full setups: TCP + network byte + Noise XX + identity + Yamux (/s)
rpc-*                     in :mod:`plait.bench.rpc`
========================  ==========================================================
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, cast

import anyio
from anyio.abc import SocketAttribute
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ..noise import NoiseConfig, NoiseStream, StaticKeypair
from ..transport import PeerIdentity
from ..transport.upgrade import Upgrader
from ._net import (
    HOST,
    RECEIVE_SIZE,
    bulk_transfer,
    mux_pair,
    noise_pair,
    receive_exactly,
    tcp_pair,
)
from .model import Check, Derived, Layer, LayerParts, Settings, Variant, format_size
from .rpc import rpc_layer

if TYPE_CHECKING:
    from collections.abc import Mapping

    from anyio.abc import ByteStream, SocketListener

    from ..muxer import MuxedStream

__all__ = ("BUILTIN_LAYERS", "PINGPONG_SIZE")

PINGPONG_SIZE = 100
"""Bytes each way per raw TCP round trip."""
CRYPTO_BLOCK = 65519
"""Largest Noise plaintext: the crypto ceiling's block."""


# -- tcp ---------------------------------------------------------------------------------


async def tcp_bulk(write: int, total: int) -> float:
    async with tcp_pair() as (client, server):
        return await bulk_transfer(client, server, total, write)


async def pingpong(client: ByteStream, server: ByteStream, count: int) -> float:
    """100-byte ping-pong round trips per second: ``client`` sends, ``server`` echoes."""
    message = os.urandom(PINGPONG_SIZE)

    async def echo() -> None:
        while True:
            await server.send(await receive_exactly(server, PINGPONG_SIZE))

    async with anyio.create_task_group() as tg:
        tg.start_soon(echo)
        for _ in range(10):  # warm the path
            await client.send(message)
            await receive_exactly(client, PINGPONG_SIZE)
        start = time.perf_counter()
        for _ in range(count):
            await client.send(message)
            if await receive_exactly(client, PINGPONG_SIZE) != message:
                raise RuntimeError("bad echo")
        elapsed = time.perf_counter() - start
        tg.cancel_scope.cancel()
    return count / elapsed


async def tcp_pingpong(settings: Settings) -> float:
    """100-byte ping-pong round trips per second on one raw TCP connection."""
    async with tcp_pair() as (client, server):
        return await pingpong(client, server, settings.pick(10000, 500))


def tcp_layer(settings: Settings) -> LayerParts:
    big = 4 * settings.size
    small = max(settings.size // 8, 64 * 1024)
    return LayerParts(
        variants=[
            Variant(
                name="tcp-bulk", layer="tcp", unit="MB/s",
                note=f"anyio TCP, 256 KiB sends, {format_size(big)}",
                run=lambda s: tcp_bulk(256 * 1024, big),
            ),
            Variant(
                name="tcp-bulk-64k", layer="tcp", unit="MB/s",
                note=f"anyio TCP, 64 KiB sends, {format_size(settings.size)}",
                run=lambda s: tcp_bulk(65536, s.size),
            ),
            Variant(
                name="tcp-bulk-1k", layer="tcp", unit="MB/s",
                note=f"anyio TCP, 1 KiB sends, {format_size(small)}",
                run=lambda s: tcp_bulk(1024, small),
            ),
            Variant(
                name="tcp-pingpong", layer="tcp", unit="/s",
                note=f"{PINGPONG_SIZE}-byte ping-pong round trips, one connection",
                run=tcp_pingpong,
            ),
        ]
    )


# -- crypto ------------------------------------------------------------------------------


async def crypto_ceiling(settings: Settings) -> float:
    """ChaCha20-Poly1305 encrypt then decrypt of 65519-byte blocks, MB/s of plaintext."""
    aead = ChaCha20Poly1305(os.urandom(32))
    block = os.urandom(CRYPTO_BLOCK)
    count = max(1, 4 * settings.size // CRYPTO_BLOCK)
    encrypt, decrypt = aead.encrypt, aead.decrypt
    start = time.perf_counter()
    for n in range(count):
        nonce = n.to_bytes(12, "little")
        decrypt(nonce, encrypt(nonce, block, None), None)
    elapsed = time.perf_counter() - start
    await anyio.lowlevel.checkpoint()
    return count * CRYPTO_BLOCK / elapsed / 1e6


def _serial(values: Mapping[str, float]) -> float:
    return 1 / (1 / values["tcp-bulk"] + 1 / values["crypto"])


SERIAL_CEILING = Derived(
    name="serial-ceiling", layer="crypto", unit="MB/s",
    note="1/(1/tcp-bulk + 1/crypto): one process pays for both",
    inputs=("tcp-bulk", "crypto"), compute=_serial,
)


def crypto_layer(settings: Settings) -> LayerParts:
    return LayerParts(
        variants=[
            Variant(
                name="crypto", layer="crypto", unit="MB/s",
                note=f"ChaCha20-Poly1305 enc+dec, {CRYPTO_BLOCK}-byte blocks, one core",
                run=crypto_ceiling,
            )
        ],
        derived=[SERIAL_CEILING],
    )


# -- noise -------------------------------------------------------------------------------


async def noise_bulk(write: int, total: int) -> float:
    async with noise_pair() as (client, server):
        return await bulk_transfer(client, server, total, write)


async def noise_pingpong(settings: Settings) -> float:
    async with noise_pair() as (client, server):
        return await pingpong(client, server, settings.pick(5000, 300))


def noise_layer(settings: Settings) -> LayerParts:
    small = max(settings.size // 8, 64 * 1024)
    return LayerParts(
        variants=[
            Variant(
                name="noise-64k", layer="noise", unit="MB/s",
                note=f"NoiseStream, {format_size(settings.size)} in 64 KiB writes",
                run=lambda s: noise_bulk(65536, s.size),
            ),
            Variant(
                name="noise-1k", layer="noise", unit="MB/s",
                note=f"NoiseStream, {format_size(small)} in 1 KiB writes",
                run=lambda s: noise_bulk(1024, small),
            ),
            Variant(
                name="noise-pingpong", layer="noise", unit="/s",
                note=f"{PINGPONG_SIZE}-byte ping-pong round trips over NoiseStream",
                run=noise_pingpong,
            ),
        ],
        checks=[
            Check(layer="noise", numerator="noise-64k", denominator="serial-ceiling", target=0.75),
            Check(layer="noise", numerator="noise-64k", denominator="tcp-bulk-64k"),
            Check(layer="noise", numerator="noise-1k", denominator="tcp-bulk-1k"),
            Check(layer="noise", numerator="noise-pingpong", denominator="tcp-pingpong"),
        ],
    )


# -- yamux and the full stack ------------------------------------------------------------


async def mux_bulk(secure: bool, streams: int, total: int) -> float:
    """Aggregate MB/s of ``streams`` concurrent streams each sending ``total // streams``."""
    per_stream = total // streams
    payload = os.urandom(256 * 1024)
    async with mux_pair(secure) as pair:

        async def serve(stream: MuxedStream) -> None:
            got = 0
            try:
                while True:
                    got += len(await stream.receive(RECEIVE_SIZE))
            except anyio.EndOfStream:
                pass
            if got != per_stream:
                raise RuntimeError(f"stream received {got} bytes, expected {per_stream}")
            await stream.send(b"k")
            await stream.aclose()

        async def accept_all() -> None:
            async with anyio.create_task_group() as tg:
                for _ in range(streams):
                    tg.start_soon(serve, await pair.server.accept_stream())

        async def send_one() -> None:
            stream = await pair.client.open_stream()
            sent = 0
            while sent < per_stream:
                n = min(len(payload), per_stream - sent)
                await stream.send(payload if n == len(payload) else payload[:n])
                sent += n
            await stream.send_eof()
            if await stream.receive(1) != b"k":
                raise RuntimeError("bad acknowledgement")
            await stream.aclose()

        async with anyio.create_task_group() as tg:
            tg.start_soon(accept_all)
            start = time.perf_counter()
            async with anyio.create_task_group() as senders:
                for _ in range(streams):
                    senders.start_soon(send_one)
            elapsed = time.perf_counter() - start
    return per_stream * streams / elapsed / 1e6


async def mux_stream_rate(secure: bool, count: int) -> float:
    """Sequential stream open + 1-byte echo + close, per second."""
    async with mux_pair(secure) as pair:

        async def echo(stream: MuxedStream) -> None:
            await stream.send(await stream.receive())
            await stream.aclose()

        async def one() -> None:
            stream = await pair.client.open_stream()
            await stream.send(b"x")
            if await stream.receive() != b"x":
                raise RuntimeError("bad echo")
            await stream.aclose()

        async with anyio.create_task_group() as tg:

            async def acceptor() -> None:
                while True:
                    tg.start_soon(echo, await pair.server.accept_stream())

            tg.start_soon(acceptor)
            for _ in range(10):
                await one()
            start = time.perf_counter()
            for _ in range(count):
                await one()
            elapsed = time.perf_counter() - start
            tg.cancel_scope.cancel()
    return count / elapsed


async def mux_pingpong(secure: bool, count: int) -> float:
    """100-byte ping-pong round trips per second on one open substream."""
    async with mux_pair(secure) as pair:
        client = await pair.client.open_stream()
        await client.send(b"!")
        server = await pair.server.accept_stream()
        await receive_exactly(server, 1)
        return await pingpong(client, server, count)


def _mux_layer(settings: Settings, *, secure: bool) -> LayerParts:
    layer = "stack" if secure else "yamux"
    what = "Yamux/Noise/TCP" if secure else "Yamux/plain TCP"
    n = settings.streams
    variants = [
        Variant(
            name=f"{layer}-bulk-1", layer=layer, unit="MB/s",
            note=f"{what}, 1 stream × {format_size(settings.size)}",
            run=lambda s: mux_bulk(secure, 1, s.size),
        ),
        Variant(
            name=f"{layer}-bulk-n", layer=layer, unit="MB/s",
            note=f"{what}, {n} streams × {format_size(settings.size // n)}",
            run=lambda s: mux_bulk(secure, s.streams, s.size),
        ),
        Variant(
            name=f"{layer}-streams", layer=layer, unit="/s",
            note=f"{what}, stream open + 1-byte echo + close",
            run=lambda s: mux_stream_rate(secure, s.pick(3000, 200)),
        ),
        Variant(
            name=f"{layer}-pingpong", layer=layer, unit="/s",
            note=f"{what}, {PINGPONG_SIZE}-byte ping-pong on one open substream",
            run=lambda s: mux_pingpong(secure, s.pick(5000, 300)),
        ),
    ]
    if secure:
        checks = [
            Check(layer=layer, numerator="stack-bulk-1", denominator="serial-ceiling",
                  target=0.60),
            Check(layer=layer, numerator="stack-bulk-n", denominator="stack-bulk-1", target=0.90),
            Check(layer=layer, numerator="stack-streams", target=5000.0),
            Check(layer=layer, numerator="stack-streams", denominator="tcp-pingpong"),
            Check(layer=layer, numerator="stack-pingpong", denominator="tcp-pingpong"),
            Check(layer=layer, numerator="stack-bulk-1", denominator="tcp-bulk"),
        ]
        return LayerParts(variants=variants, checks=checks)
    checks = [
        Check(layer=layer, numerator="yamux-bulk-1", denominator="tcp-bulk"),
        Check(layer=layer, numerator="yamux-bulk-n", denominator="yamux-bulk-1"),
        Check(layer=layer, numerator="yamux-streams", denominator="tcp-pingpong"),
        Check(layer=layer, numerator="yamux-pingpong", denominator="tcp-pingpong"),
    ]
    return LayerParts(variants=variants, checks=checks)


# -- connection setup --------------------------------------------------------------------


async def noise_handshakes(settings: Settings) -> float:
    """Bare Noise XX handshakes over fresh TCP connections per second (both ends closed)."""
    count = settings.pick(300, 20)
    cfg_i = NoiseConfig()
    cfg_r = NoiseConfig()
    listener = await anyio.create_tcp_listener(local_host=HOST, local_port=0)
    async with listener:
        port = listener.extra(SocketAttribute.local_port)
        accept = cast("SocketListener", listener.listeners[0]).accept

        async def one() -> None:
            client = await anyio.connect_tcp(HOST, port)
            server = await accept()
            secured: list[NoiseStream] = []

            async def respond() -> None:
                secured.append(await NoiseStream.wrap(server, cfg_r, initiator=False))

            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(respond)
                    secured.append(await NoiseStream.wrap(client, cfg_i, initiator=True))
            finally:
                await client.aclose()
                await server.aclose()

        await one()
        start = time.perf_counter()
        for _ in range(count):
            await one()
        elapsed = time.perf_counter() - start
    return count / elapsed


async def connection_setups(settings: Settings) -> float:
    """Full setups per second: TCP + network byte + Noise XX + identity exchange + Yamux.

    Both ends run :class:`~plait.transport.upgrade.Upgrader` (the dialer checks the
    listener's key, as a dial to a known peer does), enter their Yamux session and close it
    (GO_AWAY, flushed).
    """
    count = settings.pick(300, 20)
    listener_key = StaticKeypair.generate()
    protocols = (b"/plait/echo/1", b"/plait/greeting/1", b"/plait/bench/1")
    dialer = Upgrader(
        StaticKeypair.generate(),
        PeerIdentity(supported_protocols=protocols, user_agent="plait-bench/dialer"),
    )
    acceptor = Upgrader(
        listener_key,
        PeerIdentity(supported_protocols=protocols, user_agent="plait-bench/listener"),
    )
    listener = await anyio.create_tcp_listener(local_host=HOST, local_port=0)
    async with listener:
        port = listener.extra(SocketAttribute.local_port)
        accept = cast("SocketListener", listener.listeners[0]).accept

        async def inbound(stream: ByteStream) -> None:
            upgraded = await acceptor.upgrade_inbound(stream)
            async with upgraded.muxer():
                pass

        async def one() -> None:
            client = await anyio.connect_tcp(HOST, port)
            server = await accept()
            async with anyio.create_task_group() as tg:
                tg.start_soon(inbound, server)
                upgraded = await dialer.upgrade_outbound(
                    client, expected_key=listener_key.public, remote_address=f"tcp://{HOST}:{port}"
                )
                async with upgraded.muxer():
                    pass

        await one()
        start = time.perf_counter()
        for _ in range(count):
            await one()
        elapsed = time.perf_counter() - start
    return count / elapsed


def connect_layer(settings: Settings) -> LayerParts:
    return LayerParts(
        variants=[
            Variant(
                name="noise-handshake", layer="connect", unit="/s",
                note="bare Noise XX handshakes over fresh TCP connections",
                run=noise_handshakes,
            ),
            Variant(
                name="connect", layer="connect", unit="/s",
                note="TCP + network byte + Noise XX + identity + Yamux, open and close",
                run=connection_setups,
            ),
        ],
        checks=[
            Check(layer="connect", numerator="connect", denominator="noise-handshake",
                  target=0.40),
        ],
    )


BUILTIN_LAYERS: tuple[Layer, ...] = (
    Layer(name="tcp", description="raw anyio TCP: bulk and 100-byte ping-pong", build=tcp_layer),
    Layer(name="crypto", description="ChaCha20-Poly1305 encrypt+decrypt", build=crypto_layer),
    Layer(name="noise", description="NoiseStream bulk, 64 KiB and 1 KiB writes",
          build=noise_layer),
    Layer(name="yamux", description="Yamux over plaintext TCP",
          build=lambda s: _mux_layer(s, secure=False)),
    Layer(name="stack", description="Yamux over Noise over TCP",
          build=lambda s: _mux_layer(s, secure=True)),
    Layer(name="connect", description="connection setup vs bare Noise XX handshakes",
          build=connect_layer),
    Layer(name="rpc", description="RPC unary, pool, streaming and session setup",
          build=rpc_layer),
)

"""NoiseStream over real TCP on 127.0.0.1, on both anyio backends."""

from __future__ import annotations

import struct

import anyio
import pytest
from anyio.abc import ByteStream, SocketAttribute
from plait.noise import (
    HandshakeTimeoutError,
    NoiseAttribute,
    NoiseConfig,
    NoiseError,
    NoiseProtocolViolation,
    NoiseStream,
    NonceExhaustedError,
    StaticKeypair,
)
from plait.noise._symmetric import MAX_NONCE
from support.net import noise_pair, receive_exactly, tcp_pair

pytestmark = pytest.mark.anyio


async def test_handshake_authenticates_both_static_keys() -> None:
    ki, kr = StaticKeypair.generate(), StaticKeypair.generate()
    async with noise_pair(NoiseConfig(static_key=ki), NoiseConfig(static_key=kr)) as (i, r):
        assert i.remote_static_key == kr.public
        assert r.remote_static_key == ki.public
        assert i.handshake_hash == r.handshake_hash
        assert i.extra(NoiseAttribute.remote_static_key) == kr.public
        assert r.extra(NoiseAttribute.handshake_hash) == i.handshake_hash
        # The transport's attributes survive the wrapping.
        assert i.extra(SocketAttribute.remote_address)[0] == "127.0.0.1"


@pytest.mark.parametrize("size", [1, 65519, 65520, 8 * 1024 * 1024 + 3])
async def test_transfer_both_directions(size: int) -> None:
    data = bytes(i % 251 for i in range(min(size, 65536))) * (size // 65536) + b"\x07" * (size % 65536)
    async with noise_pair() as (i, r):
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(i.send, data)
                assert await receive_exactly(r, size) == data
            async with anyio.create_task_group() as tg:
                tg.start_soon(r.send, data)
                assert await receive_exactly(i, size) == data


async def test_send_eof_gives_end_of_stream_and_the_other_direction_stays_open() -> None:
    async with noise_pair() as (i, r):
        with anyio.fail_after(5):
            await i.send(b"last words")
            await i.send_eof()
            assert await receive_exactly(r, 10) == b"last words"
            with pytest.raises(anyio.EndOfStream):
                await r.receive()
            await r.send(b"reply after half-close")
            assert await receive_exactly(i, 22) == b"reply after half-close"


async def test_aclose_then_use_raises_closed_and_peer_sees_eof() -> None:
    async with noise_pair() as (i, r):
        await i.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await i.send(b"x")
        with pytest.raises(anyio.ClosedResourceError):
            await i.receive()
        with anyio.fail_after(5), pytest.raises(anyio.EndOfStream):
            await r.receive()


async def test_expected_key_mismatch_fails_the_dialer() -> None:
    async with tcp_pair() as (client, server):
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(_wrap_responder_ignoring_errors, server)
                with pytest.raises(NoiseProtocolViolation, match="expected"):
                    await NoiseStream.wrap(
                        client, initiator=True, expected_key=StaticKeypair.generate().public
                    )


async def _wrap_responder_ignoring_errors(stream: ByteStream) -> None:
    try:
        s = await NoiseStream.wrap(stream, NoiseConfig(handshake_timeout=5), initiator=False)
        await s.aclose()
    except NoiseError:
        pass


async def test_silent_peer_hits_the_overall_deadline() -> None:
    async with tcp_pair() as (client, server):
        with anyio.fail_after(5):
            with pytest.raises(HandshakeTimeoutError):
                await NoiseStream.wrap(server, NoiseConfig(handshake_timeout=0.3), initiator=False)
            # The transport was closed: the silent peer sees EOF.
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await client.receive()


async def test_dripping_peer_hits_the_overall_deadline() -> None:
    async with tcp_pair() as (client, server):

        async def drip() -> None:
            message = b"\x00\x20" + bytes(range(1, 33))
            for byte in message:
                await client.send(bytes([byte]))
                await anyio.sleep(0.05)  # a slow peer, by design of the attack

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(drip)
                start = anyio.current_time()
                with pytest.raises(HandshakeTimeoutError):
                    await NoiseStream.wrap(server, NoiseConfig(handshake_timeout=0.5), initiator=False)
                assert anyio.current_time() - start < 1.5
                tg.cancel_scope.cancel()


async def test_peer_stopping_mid_handshake_is_an_error_not_a_hang() -> None:
    async with tcp_pair() as (client, server):
        await client.send(b"\x00\x20" + bytes(range(1, 17)))  # half of message 1
        await client.send_eof()
        with anyio.fail_after(5), pytest.raises(NoiseProtocolViolation):
            await NoiseStream.wrap(server, initiator=False)


async def test_garbage_instead_of_handshake() -> None:
    async with tcp_pair() as (client, server):
        await client.send(b"\xff\xff" + bytes(64))
        with anyio.fail_after(5), pytest.raises(NoiseProtocolViolation):
            await NoiseStream.wrap(server, initiator=False)
        with anyio.fail_after(5), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            await client.receive()


async def test_tampered_transport_message_closes_the_stream() -> None:
    async with noise_pair() as (i, r):
        wire = bytearray(i.core.seal(b"authentic"))
        wire[-1] ^= 0x80
        await i.transport_stream.send(bytes(wire))
        with anyio.fail_after(5), pytest.raises(NoiseProtocolViolation):
            await r.receive()
        # The reader closed its transport: the sender sees the connection end.
        with anyio.fail_after(5), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            await i.receive()


async def test_bad_message_after_small_ones_is_the_peers_violation_on_both_paths() -> None:
    """Small messages joined by one receive, then one that fails its MAC: the joined data
    is returned first, then receive raises the peer's violation (not a state error), and
    so does a send made meanwhile (the failure took both ciphers)."""
    async with noise_pair() as (i, r):
        wire = bytes(i.core.seal(b"one")) + bytes(i.core.seal(b"two"))
        bad = bytearray(i.core.seal(b"bad"))
        bad[-1] ^= 0x80
        wire += bytes(bad)
        await i.transport_stream.send(wire)
        with anyio.fail_after(5):
            assert await r.receive() == b"onetwo"
        with pytest.raises(NoiseProtocolViolation):
            await r.send(b"reply")
        with pytest.raises(NoiseProtocolViolation):
            await r.receive()
        with anyio.fail_after(5), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            await i.receive()  # the reader closed its transport


@pytest.mark.parametrize("length", [0, 15])
async def test_short_length_prefix_closes_the_stream(length: int) -> None:
    async with noise_pair() as (i, r):
        await i.transport_stream.send(struct.pack(">H", length) + bytes(length))
        with anyio.fail_after(5), pytest.raises(NoiseProtocolViolation):
            await r.receive()


async def test_truncated_frame_then_eof() -> None:
    async with noise_pair() as (i, r):
        wire = bytes(i.core.seal(b"z" * 1000))
        await i.transport_stream.send(wire[:500])
        await i.transport_stream.send_eof()
        with anyio.fail_after(5), pytest.raises(NoiseProtocolViolation):
            await r.receive()


async def test_nonce_exhaustion_ends_the_connection() -> None:
    async with noise_pair() as (i, r):
        assert i.core.send_cipher is not None and r.core.receive_cipher is not None
        i.core.send_cipher.set_nonce(MAX_NONCE - 1)
        r.core.receive_cipher.set_nonce(MAX_NONCE - 1)
        await i.send(b"final")
        with anyio.fail_after(5):
            assert await r.receive() == b"final"
        with pytest.raises(NonceExhaustedError):
            await i.send(b"wraps?")
        with anyio.fail_after(5), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            await r.receive()


class CountingStream(ByteStream):
    """A transport wrapper that counts the sends reaching it."""

    def __init__(self, inner: ByteStream) -> None:
        self.inner = inner
        self.sends = 0

    async def send(self, item: bytes) -> None:
        self.sends += 1
        await self.inner.send(item)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.inner.receive(max_bytes)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_concurrent_small_sends_coalesce_into_few_transport_writes() -> None:
    async with tcp_pair() as (client, server):
        counting = CountingStream(client)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_wrap_into, counting, True)
            r = await NoiseStream.wrap(server, initiator=False)
        i = _wrapped.pop()
        handshake_sends = counting.sends
        messages = [bytes([n % 256]) * 100 for n in range(500)]
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for m in messages:
                    tg.start_soon(i.send, m)
            received = await receive_exactly(r, 500 * 100)
        assert sorted(received[k : k + 100] for k in range(0, len(received), 100)) == sorted(messages)
        writes = counting.sends - handshake_sends
        assert writes < 50, f"{writes} transport writes for 500 queued sends"


_wrapped: list[NoiseStream] = []


async def _wrap_into(stream: ByteStream, initiator: bool) -> None:
    _wrapped.append(await NoiseStream.wrap(stream, initiator=initiator))


async def test_large_send_produces_maximal_messages() -> None:
    async with noise_pair() as (i, _r):
        wire = bytes(i.core.seal(bytes(5 * 65519)))
        lengths = []
        offset = 0
        while offset < len(wire):
            (n,) = struct.unpack_from(">H", wire, offset)
            lengths.append(n)
            offset += 2 + n
        assert lengths == [65535] * 5

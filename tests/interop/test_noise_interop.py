"""Cross-tests against the reference Noise implementation, PyPI ``noiseprotocol``.

The reference (import name ``noise``) runs in a thread on a blocking socket, over real TCP
on 127.0.0.1, with tari's prologue and 2-byte big-endian framing; plait runs its
``NoiseStream`` on the event loop. Both roles are covered.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from typing import TYPE_CHECKING

import anyio
import plait
import pytest
from anyio.abc import SocketAttribute
from plait.noise import NoiseConfig, NoiseProtocolViolation, NoiseStream, StaticKeypair

if TYPE_CHECKING:
    from collections.abc import Callable

if os.environ.get("PLAIT_REQUIRE_INTEROP", "") not in ("", "0"):
    import noise.connection as noise_ref  # in CI a missing reference package is an error
else:
    noise_ref = pytest.importorskip(
        "noise.connection",
        reason="noiseprotocol (a dev dependency) is not installed; "
        "PLAIT_REQUIRE_INTEROP=1 turns this skip into a failure",
    )
NoiseConnection = noise_ref.NoiseConnection
Keypair = noise_ref.Keypair

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

NAME = b"Noise_XX_25519_ChaChaPoly_BLAKE2b"
PROLOGUE = b"com.tari.comms.noise.prologue"
SIZES = [0, 1, 65519, 65520, 8 * 1024 * 1024]


def test_reference_package_is_not_plait() -> None:
    import noise

    assert noise.__file__ is not None
    plait_dir = os.path.dirname(plait.__file__ or "")
    assert not os.path.abspath(noise.__file__).startswith(plait_dir)


class Reference:
    """A noiseprotocol endpoint on a blocking socket."""

    def __init__(self, sock: socket.socket, *, initiator: bool, prologue: bytes = PROLOGUE) -> None:
        self.sock = sock
        self.key = StaticKeypair.generate()
        self.conn = NoiseConnection.from_name(NAME)
        if initiator:
            self.conn.set_as_initiator()
        else:
            self.conn.set_as_responder()
        self.conn.set_keypair_from_private_bytes(Keypair.STATIC, self.key.private)
        self.conn.set_prologue(prologue)
        self.conn.start_handshake()
        self.hs = self.conn.noise_protocol.handshake_state
        self.initiator = initiator

    def recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError(f"EOF after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def recv_frame(self) -> bytes | None:
        head = self.sock.recv(2, socket.MSG_WAITALL)
        if not head:
            return None
        if len(head) == 1:
            head += self.recv_exact(1)
        (length,) = struct.unpack(">H", head)
        return self.recv_exact(length)

    def send_frame(self, message: bytes) -> None:
        self.sock.sendall(struct.pack(">H", len(message)) + message)

    def handshake(self) -> None:
        steps = ["w", "r", "w"] if self.initiator else ["r", "w", "r"]
        for step in steps:
            if step == "w":
                self.send_frame(self.conn.write_message(b""))
            else:
                frame = self.recv_frame()
                if frame is None:
                    raise EOFError("peer closed during the handshake")
                assert self.conn.read_message(frame) == b""
        assert self.conn.handshake_finished

    @property
    def remote_static(self) -> bytes:
        return bytes(self.hs.rs.public_bytes)

    def receive_plaintext(self, size: int) -> bytes:
        buf = bytearray()
        while len(buf) < size:
            frame = self.recv_frame()
            assert frame is not None, "EOF before all data arrived"
            assert len(frame) <= 65535
            plain = self.conn.decrypt(frame)
            assert plain, "an empty transport message was sent"
            buf += plain
        return bytes(buf)

    def send_plaintext(self, data: bytes) -> None:
        for pos in range(0, len(data), 65519):
            self.send_frame(self.conn.encrypt(data[pos : pos + 65519]))


def pattern(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


async def _connected(plait_initiator: bool) -> tuple[anyio.abc.SocketStream, socket.socket]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    stream = await anyio.connect_tcp("127.0.0.1", port)
    sock, _ = await anyio.to_thread.run_sync(listener.accept)
    listener.close()
    sock.settimeout(30)
    return stream, sock


def _thread(target: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


async def _join(thread: threading.Thread, errors: list[BaseException]) -> None:
    with anyio.fail_after(60):
        while thread.is_alive():
            await anyio.to_thread.run_sync(thread.join, 0.5)
    if errors:
        raise errors[0]


@pytest.mark.parametrize("plait_initiator", [True, False], ids=["plait-initiator", "plait-responder"])
async def test_cross_transfer_sizes_and_rekey(plait_initiator: bool) -> None:
    stream, sock = await _connected(plait_initiator)
    ref = Reference(sock, initiator=not plait_initiator)
    received: dict[int, bytes] = {}
    h_ref: list[bytes] = []

    def reference_side() -> None:
        ref.handshake()
        h_ref.append(ref.conn.get_handshake_hash())
        for size in SIZES:
            received[size] = ref.receive_plaintext(size)
            ref.send_plaintext(received[size])
        # Rekey both directions (both sides agreed on the point: after the echoes).
        ref.conn.rekey_outbound_cipher()
        ref.conn.rekey_inbound_cipher()
        data = ref.receive_plaintext(70000)
        ref.send_plaintext(data[::-1])
        assert ref.recv_frame() is None, "no frame may follow the last data"
        sock.close()

    thread, errors = _thread(reference_side)
    key = StaticKeypair.generate()
    with anyio.fail_after(60):
        secure = await NoiseStream.wrap(
            stream, NoiseConfig(static_key=key), initiator=plait_initiator
        )
        for size in SIZES:
            data = pattern(size)
            await secure.send(data)
            echoed = bytearray()
            while len(echoed) < size:
                echoed += await secure.receive(1 << 20)
            assert echoed == data
        assert secure.core.send_cipher is not None and secure.core.receive_cipher is not None
        secure.core.send_cipher.rekey()
        secure.core.receive_cipher.rekey()
        data = os.urandom(70000)
        await secure.send(data)
        back = bytearray()
        while len(back) < len(data):
            back += await secure.receive()
        assert back == data[::-1]
        await secure.send_eof()
        with pytest.raises(anyio.EndOfStream):
            await secure.receive()
        await secure.aclose()
    await _join(thread, errors)
    assert secure.remote_static_key == ref.key.public
    assert ref.remote_static == key.public
    assert h_ref[0] == secure.handshake_hash
    for size in SIZES:
        assert received[size] == pattern(size)


@pytest.mark.parametrize("plait_initiator", [True, False], ids=["plait-initiator", "plait-responder"])
async def test_prologue_mismatch_fails_on_both_sides(plait_initiator: bool) -> None:
    stream, sock = await _connected(plait_initiator)
    ref = Reference(sock, initiator=not plait_initiator, prologue=b"another prologue")

    def reference_side() -> None:
        try:
            ref.handshake()
        finally:
            sock.close()

    thread, errors = _thread(reference_side)
    with anyio.fail_after(10), pytest.raises(NoiseProtocolViolation):
        await NoiseStream.wrap(stream, initiator=plait_initiator)
    await _join_expecting_error(thread, errors)


async def _join_expecting_error(thread: threading.Thread, errors: list[BaseException]) -> None:
    with anyio.fail_after(30):
        while thread.is_alive():
            await anyio.to_thread.run_sync(thread.join, 0.5)
    assert errors, "the reference side should have failed too"
    from cryptography.exceptions import InvalidTag
    from noise.exceptions import NoiseInvalidMessage

    # The side that checks the first AEAD tag fails with a MAC error; the other sees EOF.
    assert isinstance(errors[0], (NoiseInvalidMessage, InvalidTag, EOFError, ConnectionError))


async def test_bit_flip_from_the_reference_is_a_clean_mac_error() -> None:
    stream, sock = await _connected(True)
    ref = Reference(sock, initiator=False)

    def reference_side() -> None:
        ref.handshake()
        frame = bytearray(ref.conn.encrypt(b"tampered in transit"))
        frame[3] ^= 0x10
        ref.send_frame(bytes(frame))
        ref.sock.recv(1)  # wait for plait to close
        sock.close()

    thread, errors = _thread(reference_side)
    with anyio.fail_after(10):
        secure = await NoiseStream.wrap(stream, initiator=True)
        with pytest.raises(NoiseProtocolViolation):
            await secure.receive()
    await _join(thread, errors)


async def test_plait_bit_flip_is_rejected_by_the_reference() -> None:
    from noise.exceptions import NoiseInvalidMessage

    stream, sock = await _connected(True)
    ref = Reference(sock, initiator=False)
    outcome: list[BaseException] = []

    def reference_side() -> None:
        ref.handshake()
        frame = ref.recv_frame()
        assert frame is not None
        try:
            ref.conn.decrypt(frame)
        except NoiseInvalidMessage as exc:
            outcome.append(exc)
        sock.close()

    thread, errors = _thread(reference_side)
    with anyio.fail_after(10):
        secure = await NoiseStream.wrap(stream, initiator=True)
        wire = bytearray(secure.core.seal(b"flipped"))
        wire[4] ^= 1
        await secure.transport_stream.send(bytes(wire))
        await _join(thread, errors)
        await secure.aclose()
    assert outcome and isinstance(outcome[0], NoiseInvalidMessage)


async def test_truncated_frame_from_the_reference_is_eof_error_not_partial_data() -> None:
    stream, sock = await _connected(True)
    ref = Reference(sock, initiator=False)

    def reference_side() -> None:
        ref.handshake()
        frame = ref.conn.encrypt(b"cut short" * 100)
        sock.sendall(struct.pack(">H", len(frame)) + frame[:100])
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)
        sock.close()

    thread, errors = _thread(reference_side)
    with anyio.fail_after(10):
        secure = await NoiseStream.wrap(stream, initiator=True)
        assert secure.extra(SocketAttribute.remote_port) > 0
        with pytest.raises(NoiseProtocolViolation):
            await secure.receive()
    await _join(thread, errors)

"""NoiseConnection: the sans-IO Noise XX channel with tari_comms framing (wire.md §1.3).

Theory of operation. Every Noise message, handshake or transport, travels as
``u16 BE length ‖ message``. The initiator calls :meth:`NoiseConnection.initiate` to queue
message 1; both sides then feed received bytes to :meth:`receive_data` and drain
:meth:`data_to_send`. On the wire path all handshake payloads are empty, so the three XX
messages are exactly 32, 96 and 64 bytes; a message of any other length (for example one
carrying a payload) is a protocol violation. When the handshake completes,
:class:`HandshakeCompleted` is returned once, then every transport message becomes a
:class:`PlaintextReceived`.

Transport rules: plaintext is cut into messages of at most ``max_plaintext_size`` (65519)
bytes and an empty plaintext is never sent (a Rust reader would take it for EOF). Inbound
messages shorter than a tag (0..15 bytes; tari skips zero-length frames, plait rejects them,
hardening.md N1) and MAC failures are fatal. EOF at a message boundary is clean; EOF inside
a length prefix or a message is a violation. At most one incomplete message (≤ 65537 bytes)
is buffered.

After any violation the connection is FAILED: the error is raised once and every later call
raises :class:`NoiseStateError` chained from it (``__cause__``), so the peer's violation is
not lost when a caller only sees the later error.
"""

from __future__ import annotations

import enum
import struct
from typing import TYPE_CHECKING

from typing_extensions import Buffer

from ._handshake import HandshakeState
from ._symmetric import TAG_SIZE, CipherState
from .errors import NoiseError, NoiseProtocolViolation, NoiseStateError
from .events import HandshakeCompleted, NoiseEvent, PlaintextReceived

if TYPE_CHECKING:
    from ._suite import KeyPair
    from .config import NoiseConfig

__all__ = ("HandshakePhase", "NoiseConnection")

_LEN = struct.Struct(">H")
_unpack_len = _LEN.unpack_from
_pack_len_into = _LEN.pack_into
_FRAME_OVERHEAD = 2 + TAG_SIZE


class HandshakePhase(enum.Enum):
    """Where a :class:`NoiseConnection` is (expectation naming, as in aioquic)."""

    INITIATOR_START = enum.auto()
    INITIATOR_EXPECT_RESPONSE = enum.auto()
    RESPONDER_EXPECT_INITIATION = enum.auto()
    RESPONDER_EXPECT_FINAL = enum.auto()
    TRANSPORT = enum.auto()
    FAILED = enum.auto()


class NoiseConnection:
    """One side of a Noise XX channel, bytes in and bytes out.

    :param initiator: True for the dialer.
    :param config: keys, prologue, protocol name and size limits.
    :param ephemeral: a fixed ephemeral key pair, for known-answer tests only.
    """

    def __init__(
        self, *, initiator: bool, config: NoiseConfig, ephemeral: KeyPair | None = None
    ) -> None:
        self.config = config
        self.initiator = initiator
        self._handshake: HandshakeState | None = HandshakeState(
            config.protocol_name,
            initiator=initiator,
            prologue=config.prologue,
            s=config.static_key.as_keypair(),
            e=ephemeral,
        )
        self.phase = HandshakePhase.INITIATOR_START
        if not initiator:
            self.phase = HandshakePhase.RESPONDER_EXPECT_INITIATION
        self._inbuf = bytearray()
        self._inpos = 0
        self._eof_pending = False
        self._outbuf = bytearray()
        self._max_plaintext = config.max_plaintext_size
        self._rekey = config.rekey_interval or 0
        self.send_cipher: CipherState | None = None
        """Transport cipher for outbound messages (after the handshake)."""
        self.receive_cipher: CipherState | None = None
        """Transport cipher for inbound messages (after the handshake)."""
        self.remote_static_key: bytes | None = None
        """The peer's static public key, once authenticated."""
        self.handshake_hash: bytes | None = None
        """``h`` once the handshake is complete."""
        self.eof_received = False
        self._failure: NoiseError | None = None
        """The error that failed the connection; later NoiseStateErrors chain from it."""

    # -- commands ----------------------------------------------------------------------

    def initiate(self) -> None:
        """Queue handshake message 1 (initiator only)."""
        if self.phase is not HandshakePhase.INITIATOR_START:
            raise NoiseStateError("initiate() is for an initiator that has not started")
        self._write_handshake_message()
        self.phase = HandshakePhase.INITIATOR_EXPECT_RESPONSE

    def send_plaintext(self, data: Buffer) -> None:
        """Encrypt ``data`` into transport messages and queue them for the wire."""
        self._outbuf += self.seal(data)

    def seal(self, data: Buffer) -> bytearray:
        """Encrypt ``data`` into framed transport messages and return them (hot path).

        Each message carries up to ``max_plaintext_size`` bytes; the payload is copied once,
        by the cipher, straight into the returned buffer. Empty input yields nothing.
        """
        cipher = self.send_cipher
        if cipher is None:
            self._check_not_failed()
            raise NoiseStateError("transport data before the handshake completed")
        with memoryview(data) as src:
            size = src.nbytes
            step = self._max_plaintext
            count = -(-size // step)
            out = bytearray(size + count * _FRAME_OVERHEAD)
            with memoryview(out) as view:
                offset = 0
                for pos in range(0, size, step):
                    chunk = src[pos : pos + step]
                    sealed = len(chunk) + TAG_SIZE
                    _pack_len_into(out, offset, sealed)
                    cipher.encrypt_into(chunk, view[offset + 2 : offset + 2 + sealed])
                    offset += 2 + sealed
                    if self._rekey and cipher.n % self._rekey == 0:
                        cipher.rekey()
        return out

    def data_to_send(self) -> bytes:
        """Drain every queued byte."""
        data = bytes(self._outbuf)
        self._outbuf.clear()
        return data

    # -- input -------------------------------------------------------------------------

    def receive_data(self, data: Buffer) -> list[NoiseEvent]:
        """Feed bytes from the transport; ``b""`` means the transport reached EOF.

        Returns every event the bytes complete, decrypting all complete transport
        messages. (The stream adapter uses :meth:`buffer_data` and :meth:`next_plaintext`
        instead, to decrypt one message at a time as the application reads.)

        :raises NoiseProtocolViolation: malformed, truncated or unauthentic input.
        """
        events = self.buffer_data(data)
        if self.phase is HandshakePhase.TRANSPORT:
            while (plaintext := self.next_plaintext()) is not None:
                events.append(PlaintextReceived(plaintext))
        return events

    def buffer_data(self, data: Buffer) -> list[NoiseEvent]:
        """Feed bytes; process handshake messages, keep transport messages encrypted.

        :return: :class:`HandshakeCompleted` when these bytes completed the handshake.
        :raises NoiseProtocolViolation: a malformed handshake, or EOF during it.
        """
        self._check_not_failed()
        with memoryview(data) as incoming:
            if not incoming.nbytes:
                if self.phase is not HandshakePhase.TRANSPORT:
                    raise self._fail(
                        NoiseProtocolViolation("connection closed during the Noise handshake")
                    )
                self._eof_pending = True
                return []
            if self._inpos:
                del self._inbuf[: self._inpos]
                self._inpos = 0
            self._inbuf += incoming
        if self.phase is HandshakePhase.TRANSPORT:
            return []
        return self._process_handshake()

    def next_plaintext(self) -> bytes | None:
        """Decrypt the next complete buffered transport message.

        :return: its plaintext, or None when no complete message is buffered (after EOF,
            :attr:`eof_received` then tells a clean end).
        :raises NoiseProtocolViolation: a message shorter than a tag, a MAC failure, or
            EOF inside a message.
        """
        cipher = self.receive_cipher
        if cipher is None:
            self._check_not_failed()
            raise NoiseStateError("transport data before the handshake completed")
        buf = self._inbuf
        pos = self._inpos
        available = len(buf) - pos
        if available >= 2:
            (length,) = _unpack_len(buf, pos)
            if length < TAG_SIZE:
                raise self._fail(
                    NoiseProtocolViolation("transport message shorter than its tag", seen=length)
                )
            if available >= 2 + length:
                message = memoryview(buf)[pos + 2 : pos + 2 + length]
                try:
                    plaintext = cipher.decrypt_with_ad(b"", message)
                except NoiseProtocolViolation as exc:
                    message.release()
                    self._fail(exc)
                    raise
                message.release()
                self._inpos = pos + 2 + length
                if self._rekey and cipher.n % self._rekey == 0:
                    cipher.rekey()
                return plaintext
        if self._eof_pending:
            if available:
                raise self._fail(
                    NoiseProtocolViolation(
                        "connection closed inside a Noise message", seen=available
                    )
                )
            self.eof_received = True
        return None

    def _process_handshake(self) -> list[NoiseEvent]:
        events: list[NoiseEvent] = []
        buf = self._inbuf
        while self.phase is not HandshakePhase.TRANSPORT:
            if len(buf) < 2:
                break
            (length,) = _unpack_len(buf, 0)
            self._check_handshake_length(length)
            if len(buf) < 2 + length:
                break
            message = bytes(buf[2 : 2 + length])
            del buf[: 2 + length]
            completed = self._read_handshake_message(message)
            if completed is not None:
                events.append(completed)
        return events

    # -- handshake internals -----------------------------------------------------------

    def _check_handshake_length(self, length: int) -> None:
        hs = self._handshake
        assert hs is not None
        expected = hs.next_message_size(0)
        if length != expected:
            raise self._fail(
                NoiseProtocolViolation(
                    f"handshake message of {length} bytes, expected {expected} (empty payload)",
                    seen=length,
                )
            )

    def _write_handshake_message(self) -> None:
        hs = self._handshake
        assert hs is not None
        message = hs.write_message(b"")
        self._outbuf += _LEN.pack(len(message))
        self._outbuf += message

    def _read_handshake_message(self, message: bytes) -> HandshakeCompleted | None:
        hs = self._handshake
        assert hs is not None
        try:
            if hs.read_message(message):  # unreachable with exact lengths; kept as a guard
                raise NoiseProtocolViolation("non-empty handshake payload")
            if self.phase is HandshakePhase.RESPONDER_EXPECT_INITIATION:
                # Writing message 2 performs the DHs with the peer's ephemeral key.
                self._write_handshake_message()
                self.phase = HandshakePhase.RESPONDER_EXPECT_FINAL
                return None
            if self.phase is HandshakePhase.INITIATOR_EXPECT_RESPONSE:
                self._write_handshake_message()
        except NoiseError as exc:
            self._fail(exc)
            raise
        return self._finish_handshake(hs)

    def _finish_handshake(self, hs: HandshakeState) -> HandshakeCompleted:
        self.send_cipher, self.receive_cipher = hs.split()
        assert hs.rs is not None
        self.remote_static_key = hs.rs
        self.handshake_hash = hs.handshake_hash
        self._handshake = None
        self.phase = HandshakePhase.TRANSPORT
        return HandshakeCompleted(remote_static_key=hs.rs, handshake_hash=hs.handshake_hash)

    def _fail(self, error: NoiseError) -> NoiseError:
        """Enter FAILED, remembering ``error`` (later calls chain from it); return it."""
        self._failure = error
        self.phase = HandshakePhase.FAILED
        self._handshake = None
        self.send_cipher = self.receive_cipher = None
        self._inbuf.clear()
        self._inpos = 0
        self._outbuf.clear()
        return error

    def _check_not_failed(self) -> None:
        if self.phase is HandshakePhase.FAILED:
            raise NoiseStateError("the Noise connection has failed") from self._failure


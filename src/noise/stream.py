"""NoiseStream: an anyio ByteStream secured by Noise XX (wire.md §1.3, noise.md).

Like :class:`anyio.streams.tls.TLSStream`, :meth:`NoiseStream.wrap` runs the handshake over
any transport :class:`~anyio.abc.ByteStream` and returns once it has completed, under one
overall deadline (``NoiseConfig.handshake_timeout``); on any failure the transport is closed
and a :class:`~plait.noise.errors.NoiseError` is raised.

Sending coalesces: while one task is writing to the transport, other tasks' ``send`` calls
append their plaintext to a queue and wait; the writing task then seals everything queued
into full-size messages and hands it all to the transport in one call (group commit). A
large ``send`` becomes maximal 65519-byte messages sealed straight into one output buffer,
so each payload byte is copied once, by the cipher.

Receiving asks the transport for ``NoiseConfig.receive_size`` bytes at a time, decrypts every
complete message in what arrived and keeps the plaintext in a queue; ``receive`` never
returns ``b""`` and raises :class:`anyio.EndOfStream` after a clean EOF.

Over anyio's TCP streams two faster paths exist for the muxer (``_nowait.py``):
``send_nowait`` seals and writes from the calling task without awaiting (bytes the socket
does not take go out first with the next ``send``), and ``start_push`` hands every
plaintext to a callback as the socket reads it (asyncio), instead of waiting for
``receive``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import anyio
from anyio import ResourceGuard
from anyio.abc import ByteStream

from .._nowait import NowaitWriter, PushReader, nowait_writer, push_reader
from .config import NoiseConfig
from .connection import HandshakePhase, NoiseConnection
from .errors import (
    HandshakeTimeoutError,
    NoiseError,
    NoiseProtocolViolation,
    NonceExhaustedError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._suite import KeyPair

__all__ = ("NoiseAttribute", "NoiseStream")

logger = logging.getLogger(__name__)

_JOIN_LIMIT = 4096  # queued plaintext chunks smaller than this are joined on receive


class NoiseAttribute(anyio.TypedAttributeSet):
    """Typed attributes a :class:`NoiseStream` publishes."""

    remote_static_key: bytes = anyio.typed_attribute()
    """The peer's static public key, authenticated by the handshake."""
    handshake_hash: bytes = anyio.typed_attribute()
    """The final handshake hash ``h`` (channel binding)."""


@dataclass(eq=False)
class NoiseStream(ByteStream):
    """A ByteStream whose bytes travel as Noise transport messages.

    Build it with :meth:`wrap`, which runs the handshake.
    """

    transport_stream: ByteStream
    """The stream underneath (TCP, memory, ...)."""
    _core: NoiseConnection = field(repr=False)
    _leftover: bytes = field(init=False, repr=False, default=b"")
    _send_queue: list[bytes] = field(init=False, repr=False, default_factory=list)
    _flushing: bool = field(init=False, repr=False, default=False)
    _batch_done: anyio.Event | None = field(init=False, repr=False, default=None)
    _send_error: BaseException | None = field(init=False, repr=False, default=None)
    _receive_guard: ResourceGuard = field(
        init=False, repr=False, default_factory=lambda: ResourceGuard("reading from")
    )
    _closed: bool = field(init=False, repr=False, default=False)
    _receive_error: NoiseError | None = field(init=False, repr=False, default=None)
    _error_pending: bool = field(init=False, repr=False, default=False)
    _eof: bool = field(init=False, repr=False, default=False)
    _nowait: NowaitWriter | None = field(init=False, repr=False, default=None)
    _push: PushReader | None = field(init=False, repr=False, default=None)
    _push_data: Callable[[bytes], None] | None = field(init=False, repr=False, default=None)
    _push_end: Callable[[BaseException | None], None] | None = field(
        init=False, repr=False, default=None
    )

    @classmethod
    async def wrap(
        cls,
        transport_stream: ByteStream,
        config: NoiseConfig | None = None,
        *,
        initiator: bool,
        expected_key: bytes | None = None,
        _ephemeral: KeyPair | None = None,
    ) -> Self:
        """Run the Noise XX handshake over ``transport_stream`` and return the secured stream.

        :param config: keys, prologue and limits; a fresh static key when omitted.
        :param initiator: True on the side that opened the connection.
        :param expected_key: when given, the peer's authenticated static key must equal it.
        :raises HandshakeTimeoutError: the handshake exceeded ``config.handshake_timeout``.
        :raises NoiseProtocolViolation: the peer sent something invalid or closed early.
        :raises NoiseError: ``expected_key`` did not match (as a ``NoiseProtocolViolation``).
        """
        config = config if config is not None else NoiseConfig()
        core = NoiseConnection(initiator=initiator, config=config, ephemeral=_ephemeral)
        stream = cls(transport_stream, core)
        try:
            with anyio.fail_after(config.handshake_timeout):
                await stream._handshake()
        except TimeoutError:
            await anyio.aclose_forcefully(transport_stream)
            raise HandshakeTimeoutError(
                f"Noise handshake did not complete within {config.handshake_timeout} s"
            ) from None
        except BaseException:
            await anyio.aclose_forcefully(transport_stream)
            raise
        if expected_key is not None and core.remote_static_key != expected_key:
            await anyio.aclose_forcefully(transport_stream)
            raise NoiseProtocolViolation(
                "the peer's static key is not the expected one", seen=core.remote_static_key
            )
        stream._nowait = nowait_writer(transport_stream)
        return stream

    async def _handshake(self) -> None:
        core = self._core
        if core.initiator:
            core.initiate()
        while True:
            outgoing = core.data_to_send()
            if outgoing:
                try:
                    await self.transport_stream.send(outgoing)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                    raise NoiseProtocolViolation("connection lost during the handshake") from exc
            if core.phase is HandshakePhase.TRANSPORT:
                return
            try:
                data = await self.transport_stream.receive(self._core.config.receive_size)
            except anyio.EndOfStream:
                data = b""
            except anyio.BrokenResourceError as exc:
                raise NoiseProtocolViolation("connection lost during the handshake") from exc
            core.buffer_data(data)

    # -- properties --------------------------------------------------------------------

    @property
    def remote_static_key(self) -> bytes:
        """The peer's static public key, authenticated by the handshake."""
        key = self._core.remote_static_key
        assert key is not None
        return key

    @property
    def handshake_hash(self) -> bytes:
        """The final handshake hash ``h``."""
        h = self._core.handshake_hash
        assert h is not None
        return h

    @property
    def core(self) -> NoiseConnection:
        """The sans-IO connection (for tests and diagnostics)."""
        return self._core

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return {
            **self.transport_stream.extra_attributes,
            NoiseAttribute.remote_static_key: lambda: self.remote_static_key,
            NoiseAttribute.handshake_hash: lambda: self.handshake_hash,
        }

    # -- receiving ---------------------------------------------------------------------

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Return up to ``max_bytes`` of plaintext (at least one byte).

        Messages are decrypted one at a time as they are read, so at most one decrypted
        message is held here; consecutive small messages are joined up to ``max_bytes``.

        :raises anyio.EndOfStream: the peer closed cleanly at a message boundary.
        :raises anyio.BusyResourceError: another task is already receiving.
        :raises NoiseProtocolViolation: a bad MAC, a malformed or truncated message.
        """
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        if self._push is not None:
            raise anyio.BusyResourceError("reading from (the bytes are pushed)")
        with self._receive_guard:
            chunk = self._leftover
            if chunk:
                self._leftover = b""
            elif self._error_pending and self._receive_error is not None:
                # a message after the small ones returned last time failed to decrypt
                self._error_pending = False
                await anyio.aclose_forcefully(self.transport_stream)
                raise self._receive_error
            else:
                # decrypt the next buffered message, reading from the transport until one
                # is complete (inline rather than a helper coroutine: every resumption of
                # the reading task passes through each frame of the await chain)
                core = self._core
                while True:
                    if self._closed:
                        raise anyio.ClosedResourceError
                    try:
                        plaintext = core.next_plaintext()
                    except NoiseError as exc:
                        self._receive_error = exc  # a send meanwhile reports it too
                        await anyio.aclose_forcefully(self.transport_stream)
                        raise
                    if plaintext is not None:
                        chunk = plaintext
                        break
                    if core.eof_received:
                        raise anyio.EndOfStream
                    try:
                        data = await self.transport_stream.receive(core.config.receive_size)
                    except anyio.EndOfStream:
                        data = b""
                    except anyio.ClosedResourceError:
                        if self._closed:
                            raise
                        raise anyio.BrokenResourceError from None
                    core.buffer_data(data)
            if len(chunk) > max_bytes:
                self._leftover = chunk[max_bytes:]
                return chunk[:max_bytes]
            if len(chunk) < _JOIN_LIMIT:
                chunk = self._join_small(chunk, max_bytes)
            # Like anyio's BufferedByteReceiveStream, buffered data returns without an
            # extra checkpoint: a receive that finds nothing buffered awaits the transport.
            return chunk

    def _join_small(self, first: bytes, max_bytes: int) -> bytes:
        """Append further already-buffered small messages, up to ``max_bytes``."""
        parts = [first]
        size = len(first)
        core = self._core
        while size < max_bytes:
            try:
                nxt = core.next_plaintext()
            except NoiseError as exc:
                # return what was joined so far; the next receive raises this error (the
                # peer's violation) after closing the transport
                self._receive_error = exc
                self._error_pending = True
                break
            if nxt is None:
                break
            if size + len(nxt) > max_bytes or len(nxt) >= _JOIN_LIMIT:
                self._leftover = nxt
                break
            parts.append(nxt)
            size += len(nxt)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    # -- pushed receiving ----------------------------------------------------------------

    def start_push(
        self,
        on_data: Callable[[bytes], None],
        on_end: Callable[[BaseException | None], None],
    ) -> bool:
        """Hand every later plaintext to ``on_data`` as soon as the socket reads it,
        instead of waiting for :meth:`receive` (asyncio TCP only; see ``_nowait.py``).

        ``on_end(None)`` follows a clean end of stream; ``on_end(error)`` a failure: a
        :class:`NoiseProtocolViolation` (the socket is then aborted) or an
        ``anyio.BrokenResourceError`` of the socket. Both callbacks run in the event
        loop's callback context and must not raise. :meth:`receive` raises
        ``BusyResourceError`` from then on.

        :return: False (nothing changed) when the transport cannot push.
        """
        if self._push is not None or self._closed or self._receive_error is not None:
            return False
        if self._receive_guard._guarded:  # a receive is waiting: it owns the reading
            return False
        reader = push_reader(self.transport_stream)
        if reader is None:
            return False
        self._push = reader  # set first: the bytes delivered below may pause reading
        self._push_data = on_data
        self._push_end = on_end
        leftover = self._leftover
        if leftover:
            self._leftover = b""
            on_data(leftover)
        self._on_raw(b"")  # what the core buffered before
        if self._push_data is not None:
            reader.start(self._on_raw, self._on_raw_end, self._core.config.receive_size)
        return True

    def pause_push(self) -> None:
        """Stop reading from the socket until :meth:`resume_push`."""
        if self._push is not None:
            self._push.pause()

    def resume_push(self) -> None:
        """Read from the socket again."""
        if self._push is not None:
            self._push.resume()

    def _on_raw(self, data: bytes | memoryview) -> None:
        on_data = self._push_data
        if on_data is None:  # ended: what still arrives is dropped
            return
        core = self._core
        try:
            if data:
                core.buffer_data(data)
            while True:
                plaintext = core.next_plaintext()
                if plaintext is None:
                    return
                on_data(plaintext)
                if self._push_data is None:
                    return
        except NoiseError as exc:
            self._receive_error = exc
            assert self._push is not None
            self._push.abort()
            self._end_push(exc)

    def _on_raw_end(self, error: BaseException | None) -> None:
        if self._push_data is None:
            return
        if error is None:
            core = self._core
            try:
                core.buffer_data(b"")
            except NoiseError as exc:  # pragma: no cover - EOF after the handshake is fine
                self._end_push(exc)
                return
            self._on_raw(b"")  # a truncated message raises here
            if self._push_data is not None:
                self._end_push(None)
            return
        if not isinstance(error, anyio.BrokenResourceError | anyio.ClosedResourceError):
            broken = anyio.BrokenResourceError("the socket failed")
            broken.__cause__ = error
            error = broken
        self._end_push(error)

    def _end_push(self, error: BaseException | None) -> None:
        on_end = self._push_end
        self._push_data = None
        self._push_end = None
        if on_end is not None:
            on_end(error)

    # -- sending -----------------------------------------------------------------------

    async def send(self, item: bytes) -> None:
        """Encrypt and send ``item``.

        Concurrent callers are coalesced: their data is sealed and written together by
        whichever task is already writing. Returns once the bytes were handed to the
        transport.

        :raises anyio.ClosedResourceError: this stream was closed.
        :raises anyio.BrokenResourceError: the transport failed (or an earlier send did).
        :raises NonceExhaustedError: 2**64 - 1 messages were sent; the connection ended.
        """
        if self._closed:
            raise anyio.ClosedResourceError
        if self._send_error is not None:
            raise anyio.BrokenResourceError from self._send_error
        if self._receive_error is not None:
            # the peer broke the protocol (the failure took both ciphers): report its
            # violation, not a state error, even before receive has raised it
            raise self._receive_error
        nowait = self._nowait
        if item:
            self._send_queue.append(item)
        elif nowait is None or nowait.pending is None:
            await anyio.lowlevel.checkpoint()
            return
        if self._flushing:
            # the next batch of the task that is writing carries our item; its event is
            # made by the first waiter (a lone writer never makes one)
            done = self._batch_done
            if done is None:
                done = self._batch_done = anyio.Event()
            await done.wait()
            if self._send_error is not None:
                raise anyio.BrokenResourceError from self._send_error
            return
        self._flushing = True
        try:
            while self._send_queue or (nowait is not None and nowait.pending is not None):
                batch = self._send_queue
                self._send_queue = []
                done = self._batch_done
                self._batch_done = None
                try:
                    wire: bytes | bytearray = (
                        self._core.seal(batch[0] if len(batch) == 1 else b"".join(batch))
                        if batch
                        else b""
                    )
                    if nowait is not None:
                        # bytes an earlier send_nowait left with the socket go first
                        pending = nowait.take_pending()
                        if pending is not None:
                            wire = bytes(pending) + wire
                    await self.transport_stream.send(wire)  # type: ignore[arg-type]
                except BaseException as exc:
                    self._send_error = exc
                    raise
                finally:
                    if done is not None:
                        done.set()
        except NonceExhaustedError:
            await anyio.aclose_forcefully(self.transport_stream)
            raise
        finally:
            self._flushing = False
            if self._send_error is not None and self._batch_done is not None:
                self._batch_done.set()

    def can_send_nowait(self) -> bool:
        """True if :meth:`send_nowait` may be called now: the transport is a socket that
        takes bytes synchronously, no ``send`` is in progress and nothing is left over."""
        nowait = self._nowait
        return (
            nowait is not None
            and not self._flushing
            and not self._closed
            and self._send_error is None
            and self._receive_error is None
            and nowait.ready()
        )

    def send_nowait(self, item: bytes | bytearray) -> None:
        """Encrypt ``item`` and write it to the socket from this task, without awaiting.

        Call only right after :meth:`can_send_nowait` returned True. Bytes the socket did
        not take at once stay queued (:attr:`has_pending_send`) and go out first with the
        next :meth:`send` (``send(b"")`` just writes them).

        :raises anyio.BrokenResourceError: the socket failed.
        :raises NonceExhaustedError: no nonce is left; the connection must end.
        """
        nowait = self._nowait
        assert nowait is not None and not self._flushing
        try:
            nowait.write(self._core.seal(item))
        except BaseException as exc:
            self._send_error = exc
            raise

    async def flush(self) -> None:
        """Wait until what :meth:`send_nowait` wrote has left for the socket (call with no
        ``send`` in progress, e.g. before closing)."""
        if self.has_pending_send:
            await self.send(b"")
        nowait = self._nowait
        if nowait is not None and not self._closed:
            await nowait.drain()

    @property
    def has_pending_send(self) -> bool:
        """True while bytes taken by :meth:`send_nowait` still wait for the socket."""
        nowait = self._nowait
        return nowait is not None and nowait.pending is not None

    async def send_eof(self) -> None:
        """Half-close: no more data will be sent (the transport's EOF)."""
        if self._closed:
            raise anyio.ClosedResourceError
        if self.has_pending_send:
            await self.send(b"")
        await self.transport_stream.send_eof()

    async def aclose(self) -> None:
        """Close the stream and the transport underneath."""
        if not self._closed:
            self._closed = True
            await self.transport_stream.aclose()

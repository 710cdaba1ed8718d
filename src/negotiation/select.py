"""anyio adapter: negotiate a protocol on any byte stream (wire.md §2).

:func:`negotiate_outbound` and :func:`negotiate_inbound` drive a
:class:`~plait.negotiation.ProtocolNegotiator` over an ``anyio.abc.ByteStream`` (a Yamux
substream in the node, a TCP or memory stream in tests) under one overall deadline,
``NegotiationConfig.timeout`` (10 s, tari ``PROTOCOL_NEGOTIATION_TIMEOUT``).

Every frame is sent as soon as the core queues it (tari writes and flushes each frame). Reads
ask for at most :attr:`~plait.negotiation.ProtocolNegotiator.next_read_size` bytes, so the
adapter never consumes a byte that belongs to the negotiated protocol and hands back the
caller's own stream object (a ``MuxedStream`` keeps its ``reset()``). Should a stream return
more than asked, the surplus is replayed through a :class:`PrefixedStream` wrapper.

On failure the frames the protocol sends when giving up (the initiator's TERMINATE, the
responder's NOT_SUPPORTED|TERMINATE) are flushed on a best-effort basis, then the error is
raised; the stream is left open for the caller to close or reset.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
from anyio.abc import ByteStream

from .config import NegotiationConfig
from .errors import NegotiationError, NegotiationTimeoutError
from .negotiator import NegotiationState, ProtocolNegotiator, Role

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping, Sequence

__all__ = ("PrefixedStream", "negotiate_inbound", "negotiate_outbound")

logger = logging.getLogger(__name__)


class PrefixedStream(ByteStream):
    """A byte stream that yields ``prefix`` before anything from ``transport_stream``.

    Everything else (``send``, ``send_eof``, ``aclose``, typed attributes) goes straight to
    the wrapped stream.

    :param transport_stream: the stream to wrap.
    :param prefix: bytes already read from ``transport_stream`` that belong to the caller.
    """

    def __init__(self, transport_stream: ByteStream, prefix: bytes) -> None:
        self.transport_stream = transport_stream
        self._prefix = bytearray(prefix)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        if self._prefix:
            await anyio.lowlevel.checkpoint()
            chunk = bytes(self._prefix[:max_bytes])
            del self._prefix[:max_bytes]
            return chunk
        return await self.transport_stream.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        await self.transport_stream.send(item)

    async def send_eof(self) -> None:
        await self.transport_stream.send_eof()

    async def aclose(self) -> None:
        self._prefix.clear()
        await self.transport_stream.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self.transport_stream.extra_attributes


async def negotiate_outbound(
    stream: ByteStream,
    protocols: Sequence[bytes | str],
    *,
    optimistic: bool = False,
    config: NegotiationConfig | None = None,
) -> tuple[bytes, ByteStream]:
    """Negotiate as the initiator (the side that opened ``stream``).

    :param stream: the fresh substream.
    :param protocols: candidates in order of preference.
    :param optimistic: send one OPTIMISTIC frame and return at once (exactly one candidate;
        use it when the peer advertised the protocol, wire.md §2.2).
    :param config: limits and deadline.
    :return: the agreed protocol id and the stream to speak it on.
    :raises ProtocolNotSupportedError: the peer rejected every candidate.
    :raises NegotiationTerminatedError: the peer sent TERMINATE.
    :raises NegotiationProtocolViolation: the peer sent a malformed frame (see ``ban``).
    :raises NegotiationClosedError: the stream ended first.
    :raises NegotiationTimeoutError: ``config.timeout`` passed.
    :raises ValueError: on bad arguments (see :class:`ProtocolNegotiator`).
    """
    config = config if config is not None else NegotiationConfig()
    negotiator = ProtocolNegotiator(
        Role.INITIATOR, protocols, optimistic=optimistic, config=config
    )
    return await _negotiate(stream, negotiator, config)


async def negotiate_inbound(
    stream: ByteStream,
    supported: Collection[bytes | str],
    *,
    config: NegotiationConfig | None = None,
) -> tuple[bytes, ByteStream]:
    """Negotiate as the responder (the side that accepted ``stream``).

    :param stream: the fresh substream.
    :param supported: the protocol ids this side speaks.
    :param config: limits and deadline.
    :return: the agreed protocol id and the stream to speak it on.
    :raises ProtocolNotSupportedError: an optimistic proposal named an unsupported protocol,
        or ``config.max_proposals`` proposals were unsupported.
    :raises NegotiationTerminatedError: the peer sent TERMINATE.
    :raises NegotiationProtocolViolation: the peer sent a malformed frame (see ``ban``).
    :raises NegotiationClosedError: the stream ended first.
    :raises NegotiationTimeoutError: ``config.timeout`` passed.
    """
    config = config if config is not None else NegotiationConfig()
    negotiator = ProtocolNegotiator(Role.RESPONDER, supported, config=config)
    return await _negotiate(stream, negotiator, config)


async def _flush(stream: ByteStream, negotiator: ProtocolNegotiator) -> None:
    data = negotiator.data_to_send()
    if data:
        await stream.send(data)


async def _negotiate(
    stream: ByteStream, negotiator: ProtocolNegotiator, config: NegotiationConfig
) -> tuple[bytes, ByteStream]:
    with anyio.move_on_after(config.timeout):
        try:
            if negotiator.role is Role.INITIATOR:
                negotiator.initiate()
            await _flush(stream, negotiator)
            while negotiator.state is not NegotiationState.SELECTED:
                try:
                    data = await stream.receive(negotiator.next_read_size)
                except anyio.EndOfStream:
                    data = b""
                negotiator.receive_data(data)
                await _flush(stream, negotiator)
        except NegotiationError as exc:
            logger.debug("%s negotiation failed: %s", negotiator.role.value, exc)
            try:
                await _flush(stream, negotiator)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the peer is gone; the negotiation error is what matters
            raise
        protocol = negotiator.selected_protocol
        assert protocol is not None
        trailing = negotiator.trailing_data
        return protocol, (PrefixedStream(stream, trailing) if trailing else stream)
    raise NegotiationTimeoutError(
        f"{negotiator.role.value} negotiation did not finish within {config.timeout} s"
    )

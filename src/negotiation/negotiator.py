"""Sans-IO per-substream protocol negotiation (wire.md §2, tari ``protocol/negotiation.rs``).

Theory of operation
-------------------
Every frame is ``u8 len ‖ u8 flags ‖ len bytes of protocol id`` (:func:`encode_frame`);
the flags are the :class:`NegotiationFlag` bits OPTIMISTIC 0x01, TERMINATE 0x02 and
NOT_SUPPORTED 0x04. One :class:`ProtocolNegotiator` runs one side of one negotiation:

*Initiator* (the side that opened the substream), after :meth:`~ProtocolNegotiator.initiate`:

- optimistic mode (the peer advertised the protocol in its identity message): queue one
  frame ``[len][OPTIMISTIC|TERMINATE][id]`` and consider the protocol selected at once; the
  responder never replies;
- normal mode: propose each candidate in turn with ``[len][0x00][id]`` and read one reply.
  A reply with TERMINATE ends negotiation (:class:`NegotiationTerminatedError`); a reply with
  NOT_SUPPORTED, or without it but naming a different id, rejects the candidate; a reply
  without TERMINATE/NOT_SUPPORTED naming the candidate selects it. When no candidate is left
  the initiator queues ``[0x00][TERMINATE]`` and fails with
  :class:`ProtocolNotSupportedError`.

*Responder*, for each received frame (round by round):

1. OPTIMISTIC set (checked before TERMINATE): select the id if supported, reply nothing;
   otherwise fail with :class:`ProtocolNotSupportedError` and reply nothing;
2. TERMINATE set: fail with :class:`NegotiationTerminatedError`;
3. supported id: echo ``[len][0x00][id]`` and select it;
4. otherwise reply ``[0x00][NOT_SUPPORTED]``; the ``max_proposals``-th unsupported proposal
   (the 5th by default) is answered with ``[0x00][NOT_SUPPORTED|TERMINATE]`` instead and the
   responder fails with :class:`ProtocolNotSupportedError`.

A NOT_SUPPORTED flag sent by an initiator is ignored (the frame still counts as a proposal).

Frame checks, applied as soon as the 2-byte header is buffered, before the id is awaited:
an unknown flag bit is :class:`InvalidFlagError` and a length above
``NegotiationConfig.max_protocol_id_length`` is :class:`ProtocolIdTooLongError` (both ban
offences, wire.md §2.4); an empty id in a frame with neither TERMINATE nor NOT_SUPPORTED is
:class:`EmptyProtocolIdError` (no ban). Errors are terminal: the negotiator moves to
``FAILED`` and later calls raise. Frames the protocol requires on failure (the initiator's
final TERMINATE, the responder's NOT_SUPPORTED|TERMINATE) are queued *before* the error is
raised, so an adapter flushes :meth:`~ProtocolNegotiator.data_to_send` in its error path.

Bytes that arrive after the frame that completed negotiation belong to the selected protocol
and are kept in :attr:`~ProtocolNegotiator.trailing_data` (optimistic data can arrive in the
same read as the proposal). An adapter that never wants trailing data reads at most
:attr:`~ProtocolNegotiator.next_read_size` bytes at a time.
"""

from __future__ import annotations

import enum
import struct
from typing import TYPE_CHECKING, NoReturn

from .._buffer import ReceiveBuffer
from .config import MAX_PROTOCOL_ID_LENGTH, NegotiationConfig
from .errors import (
    EmptyProtocolIdError,
    InvalidFlagError,
    NegotiationClosedError,
    NegotiationError,
    NegotiationTerminatedError,
    ProtocolIdTooLongError,
    ProtocolNotSupportedError,
)
from .events import NegotiationEvents, ProtocolRejected, ProtocolSelected

if TYPE_CHECKING:
    from collections.abc import Iterable

    from typing_extensions import Buffer

__all__ = (
    "NegotiationFlag",
    "NegotiationState",
    "ProtocolNegotiator",
    "Role",
    "encode_frame",
    "normalize_protocol_id",
)


class Role(enum.Enum):
    """Which side of the substream this negotiator plays."""

    INITIATOR = "initiator"
    """The side that opened the substream and proposes protocols."""
    RESPONDER = "responder"
    """The side that accepted the substream and answers proposals."""


class NegotiationFlag(enum.IntFlag):
    """The flags byte of a negotiation frame (wire.md §2.1)."""

    NONE = 0x00
    """A proposal; or, from the responder, an acceptance echoing the id."""
    OPTIMISTIC = 0x01
    """The initiator does not wait for a reply."""
    TERMINATE = 0x02
    """Stop negotiating."""
    NOT_SUPPORTED = 0x04
    """The responder does not speak the proposed protocol."""


class NegotiationState(enum.Enum):
    """Where a negotiation stands (expectation names, as in aioquic)."""

    INITIATOR_START = "initiator_start"
    """Initiator created; :meth:`ProtocolNegotiator.initiate` not yet called."""
    INITIATOR_EXPECT_REPLY = "initiator_expect_reply"
    """Initiator sent a proposal and waits for the echo, NOT_SUPPORTED or TERMINATE."""
    RESPONDER_EXPECT_PROPOSAL = "responder_expect_proposal"
    """Responder waits for the next proposal."""
    SELECTED = "selected"
    """A protocol was agreed (terminal)."""
    FAILED = "failed"
    """Negotiation failed (terminal)."""


# A plain int: ``~`` on an IntFlag member stays inside the flag's own bits.
_KNOWN_FLAG_BITS = int(
    NegotiationFlag.OPTIMISTIC | NegotiationFlag.TERMINATE | NegotiationFlag.NOT_SUPPORTED
)
_CONTROL_FLAGS = NegotiationFlag.TERMINATE | NegotiationFlag.NOT_SUPPORTED
_HEADER = struct.Struct(">BB")  # u8 id length, u8 flags
_EXPECTING = (NegotiationState.INITIATOR_EXPECT_REPLY, NegotiationState.RESPONDER_EXPECT_PROPOSAL)


def normalize_protocol_id(protocol: bytes | str) -> bytes:
    """Return ``protocol`` as bytes (UTF-8 for ``str``), checking it fits a frame (1..255 bytes).

    :raises ValueError: if the id is empty or longer than 255 bytes (tari ``ProtocolIdTooLong``
        on the sending side).
    """
    raw = protocol.encode() if isinstance(protocol, str) else bytes(protocol)
    if not 1 <= len(raw) <= MAX_PROTOCOL_ID_LENGTH:
        raise ValueError(f"a protocol id must be 1..255 bytes long, got {len(raw)}")
    return raw


def encode_frame(protocol: bytes, flags: NegotiationFlag = NegotiationFlag.NONE) -> bytes:
    """Encode one frame ``u8 len ‖ u8 flags ‖ id``.

    :raises ValueError: if ``protocol`` is longer than 255 bytes.
    """
    if len(protocol) > MAX_PROTOCOL_ID_LENGTH:
        raise ValueError(f"protocol id of {len(protocol)} bytes does not fit a frame (max 255)")
    return _HEADER.pack(len(protocol), int(flags)) + protocol


def _show(protocol: bytes) -> str:
    """A log-safe rendering of an id received from the peer (hardening.md P6)."""
    return repr(protocol[:64]) + ("..." if len(protocol) > 64 else "")


class ProtocolNegotiator:
    """One side of one protocol negotiation, without I/O.

    :param role: :attr:`Role.INITIATOR` or :attr:`Role.RESPONDER`.
    :param protocols: for an initiator, the candidates in order of preference; for a
        responder, the supported protocol ids. ``str`` ids are encoded as UTF-8.
    :param optimistic: initiator only; propose the single candidate optimistically
        (wire.md §2.2: do so when the peer advertised it).
    :param config: limits; :class:`NegotiationConfig` defaults when omitted.
    :raises ValueError: on an empty protocol list, an id outside 1..255 bytes, optimistic mode
        with more than one candidate, or ``optimistic`` given to a responder.
    """

    __slots__ = (
        "_buffer",
        "_candidate_index",
        "_candidates",
        "_config",
        "_error",
        "_optimistic",
        "_outbound",
        "_proposed",
        "_role",
        "_selected",
        "_state",
        "_supported",
        "_trailing",
    )

    def __init__(
        self,
        role: Role,
        protocols: Iterable[bytes | str],
        *,
        optimistic: bool = False,
        config: NegotiationConfig | None = None,
    ) -> None:
        ids = tuple(normalize_protocol_id(p) for p in protocols)
        if not ids:
            raise ValueError("at least one protocol id is required")
        if role is Role.INITIATOR:
            if optimistic and len(ids) != 1:
                raise ValueError("optimistic negotiation proposes exactly one protocol")
            state = NegotiationState.INITIATOR_START
        else:
            if optimistic:
                raise ValueError("only an initiator negotiates optimistically")
            state = NegotiationState.RESPONDER_EXPECT_PROPOSAL
        self._role = role
        self._config = config if config is not None else NegotiationConfig()
        self._candidates = ids
        self._supported = frozenset(ids)
        self._optimistic = optimistic
        self._state = state
        self._buffer = ReceiveBuffer()
        self._outbound = bytearray()
        self._trailing = bytearray()
        self._candidate_index = 0
        self._proposed: list[bytes] = []
        self._selected: bytes | None = None
        self._error: NegotiationError | None = None

    def __repr__(self) -> str:
        return (
            f"<ProtocolNegotiator {self._role.name} state={self._state.name} "
            f"selected={self._selected!r}>"
        )

    # -- read-only state ------------------------------------------------------------------

    @property
    def role(self) -> Role:
        """This side's role."""
        return self._role

    @property
    def state(self) -> NegotiationState:
        """The current :class:`NegotiationState`."""
        return self._state

    @property
    def selected_protocol(self) -> bytes | None:
        """The agreed protocol id once ``state`` is ``SELECTED``, else ``None``."""
        return self._selected

    @property
    def is_optimistic(self) -> bool:
        """True when the agreement was (or, for an initiator, will be) optimistic."""
        return self._optimistic

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after the frame that completed negotiation (the protocol's own)."""
        return bytes(self._trailing)

    @property
    def next_read_size(self) -> int:
        """How many more bytes complete the frame being read; 0 when no frame is expected.

        An adapter that reads at most this many bytes at a time never over-reads, so
        :attr:`trailing_data` stays empty.
        """
        if self._state not in _EXPECTING:
            return 0
        buffered = len(self._buffer)
        if buffered < _HEADER.size:
            return _HEADER.size - buffered
        # A buffered header was already validated; the id is still incomplete.
        return _HEADER.size + self._buffer.byte_at(0) - buffered

    # -- commands -------------------------------------------------------------------------

    def initiate(self) -> list[NegotiationEvents]:
        """Queue the initiator's first frame.

        :return: ``[ProtocolSelected(optimistic=True)]`` in optimistic mode (no reply will
            come), else an empty list.
        :raises RuntimeError: if this is a responder or ``initiate`` was already called.
        """
        if self._state is not NegotiationState.INITIATOR_START:
            raise RuntimeError(f"initiate() is not valid in state {self._state.name}")
        protocol = self._candidates[0]
        if self._optimistic:
            self._queue(protocol, NegotiationFlag.OPTIMISTIC | NegotiationFlag.TERMINATE)
            return [self._select(protocol)]
        self._queue(protocol, NegotiationFlag.NONE)
        self._state = NegotiationState.INITIATOR_EXPECT_REPLY
        return []

    def data_to_send(self) -> bytes:
        """Drain and return every byte queued for the peer."""
        out = bytes(self._outbound)
        self._outbound.clear()
        return out

    def receive_data(self, data: Buffer) -> list[NegotiationEvents]:
        """Feed bytes received from the peer; ``b""`` means the stream reached EOF.

        After selection, further bytes are appended to :attr:`trailing_data`.

        :return: the events, in order.
        :raises NegotiationProtocolViolation: on a malformed frame (terminal).
        :raises NegotiationError: when negotiation fails for any other reason (terminal).
        :raises RuntimeError: if an initiator has not called :meth:`initiate`.
        """
        state = self._state
        if state is NegotiationState.FAILED:
            raise NegotiationError("negotiation has already failed") from self._error
        if state is NegotiationState.INITIATOR_START:
            raise RuntimeError("call initiate() before receive_data()")
        if state is NegotiationState.SELECTED:
            self._trailing += data
            return []
        if not memoryview(data).nbytes:
            self._fail(NegotiationClosedError("the stream ended during protocol negotiation"))
        self._buffer.extend(data)
        events: list[NegotiationEvents] = []
        while self._state in _EXPECTING:
            frame = self._next_frame()
            if frame is None:
                break
            flags, protocol = frame
            if self._role is Role.INITIATOR:
                events.extend(self._on_reply(flags, protocol))
            else:
                events.extend(self._on_proposal(flags, protocol))
        if self._state is NegotiationState.SELECTED and self._buffer:
            self._trailing += self._buffer.extract_all()
        return events

    # -- internals ------------------------------------------------------------------------

    def _queue(self, protocol: bytes, flags: NegotiationFlag) -> None:
        self._outbound += encode_frame(protocol, flags)

    def _select(self, protocol: bytes) -> ProtocolSelected:
        self._selected = protocol
        self._state = NegotiationState.SELECTED
        return ProtocolSelected(protocol=protocol, optimistic=self._optimistic)

    def _fail(self, error: NegotiationError) -> NoReturn:
        self._state = NegotiationState.FAILED
        self._error = error
        raise error

    def _next_frame(self) -> tuple[NegotiationFlag, bytes] | None:
        """Parse one complete frame off the buffer, validating the header first."""
        buffer = self._buffer
        if len(buffer) < _HEADER.size:
            return None
        length, raw_flags = buffer.unpack_from(_HEADER)
        if raw_flags & ~_KNOWN_FLAG_BITS:
            self._fail(InvalidFlagError(f"unknown negotiation flag bits 0x{raw_flags:02x}",
                                        seen=raw_flags))
        flags = NegotiationFlag(raw_flags)
        if length > self._config.max_protocol_id_length:
            self._fail(ProtocolIdTooLongError(
                f"protocol id of {length} bytes exceeds the limit of "
                f"{self._config.max_protocol_id_length}", seen=length))
        if length == 0 and not flags & _CONTROL_FLAGS:
            self._fail(EmptyProtocolIdError(
                f"empty protocol id in a frame with flags {flags!r}", seen=raw_flags))
        if len(buffer) < _HEADER.size + length:
            return None
        buffer.discard(_HEADER.size)
        protocol = buffer.maybe_extract(length)
        assert protocol is not None
        return flags, protocol

    def _on_reply(self, flags: NegotiationFlag, protocol: bytes) -> list[NegotiationEvents]:
        candidate = self._candidates[self._candidate_index]
        if flags & NegotiationFlag.TERMINATE:
            self._fail(NegotiationTerminatedError(
                f"the peer terminated negotiation while we proposed {_show(candidate)}"))
        if not flags & NegotiationFlag.NOT_SUPPORTED and protocol == candidate:
            return [self._select(candidate)]
        # NOT_SUPPORTED, or an echo of a different id: both reject this candidate (tari).
        self._candidate_index += 1
        if self._candidate_index < len(self._candidates):
            self._queue(self._candidates[self._candidate_index], NegotiationFlag.NONE)
            return [ProtocolRejected(protocol=candidate)]
        self._queue(b"", NegotiationFlag.TERMINATE)
        self._fail(ProtocolNotSupportedError(
            "the peer supports none of " + ", ".join(_show(p) for p in self._candidates),
            protocols=self._candidates))

    def _on_proposal(self, flags: NegotiationFlag, protocol: bytes) -> list[NegotiationEvents]:
        if flags & NegotiationFlag.OPTIMISTIC:
            self._optimistic = True
            if protocol in self._supported:
                return [self._select(protocol)]
            self._fail(ProtocolNotSupportedError(
                f"optimistic proposal of unsupported protocol {_show(protocol)}",
                protocols=(protocol,)))
        if flags & NegotiationFlag.TERMINATE:
            self._fail(NegotiationTerminatedError(
                "the peer terminated negotiation after proposing "
                + (", ".join(_show(p) for p in self._proposed) or "nothing")))
        if protocol in self._supported:
            self._queue(protocol, NegotiationFlag.NONE)
            return [self._select(protocol)]
        self._proposed.append(protocol)
        if len(self._proposed) >= self._config.max_proposals:
            self._queue(b"", NegotiationFlag.NOT_SUPPORTED | NegotiationFlag.TERMINATE)
            self._fail(ProtocolNotSupportedError(
                f"{len(self._proposed)} unsupported proposals: "
                + ", ".join(_show(p) for p in self._proposed),
                protocols=tuple(self._proposed)))
        self._queue(b"", NegotiationFlag.NOT_SUPPORTED)
        return [ProtocolRejected(protocol=protocol)]

"""Pure bookkeeping of the messaging adapter: queues, back-pressure and flood detection.

Theory of operation (wire.md §4; hardening.md §5 rule 1): every buffer is bounded and every
decision is taken synchronously here, with no clock, I/O or task; the anyio adapter
(:mod:`plait.messaging.protocol`) does the waiting and the writing.

- :class:`OutboundQueue`: one per destination peer. A message is admitted while the queue
  holds fewer than ``max_messages`` messages and fewer than ``max_bytes`` body bytes (an empty
  queue always admits one message, which the config guarantees fits). The writer takes
  batches: consecutive frames joined up to ``batch_size`` bytes, or one large message on its
  own, so small messages share a write and large ones are never copied.
- :class:`InboundBacklog`: received messages waiting for the application, counted per peer
  and in total, in messages and bytes. A peer's reader asks :meth:`InboundBacklog.can_admit`
  before delivering; when it may not, it stops reading, which is the back-pressure Yamux
  carries to the sender.
- :class:`TokenBucket`: the flood detector, one per inbound peer. ``rate`` tokens per second
  accrue up to ``burst``; each message takes one; a message finding no token is a flood.
  Time is an argument (seconds on any monotonic clock), as in every plait core.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import final

from ._framing import HEADER_SIZE, frame_header

__all__ = ("InboundBacklog", "OutboundBatch", "OutboundQueue", "QueuedMessage", "TokenBucket")


@final
@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A message waiting in an outbound queue."""

    tag: int
    """The local tag given to (or chosen for) the message."""
    body: bytes
    """The body, sent unchanged as one frame."""


@final
@dataclass(frozen=True, slots=True)
class OutboundBatch:
    """What the writer sends next: ``pieces`` in order, carrying ``messages``."""

    pieces: tuple[bytes, ...]
    """Byte strings to send in order: one joined run of frames, or a header and a large
    body."""
    messages: tuple[QueuedMessage, ...]
    """The messages this batch carries."""

    @property
    def size(self) -> int:
        return sum(len(piece) for piece in self.pieces)


@final
class OutboundQueue:
    """A bounded FIFO of messages for one peer.

    :param max_messages: messages held at most.
    :param max_bytes: body bytes held at most (an empty queue admits any one message).
    :param batch_size: bytes one batch of small frames may reach.
    :param max_message_size: the frame maximum, for the headers.
    """

    __slots__ = ("_batch_size", "_bytes", "_max_bytes", "_max_message_size", "_max_messages",
                 "_queue")

    def __init__(self, *, max_messages: int, max_bytes: int, batch_size: int,
                 max_message_size: int) -> None:
        self._queue: deque[QueuedMessage] = deque()
        self._bytes = 0
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._batch_size = batch_size
        self._max_message_size = max_message_size

    def __len__(self) -> int:
        return len(self._queue)

    def __repr__(self) -> str:
        return f"<OutboundQueue {len(self._queue)} messages, {self._bytes} bytes>"

    @property
    def queued_bytes(self) -> int:
        """Body bytes held."""
        return self._bytes

    def can_admit(self, size: int) -> bool:
        """Whether a body of ``size`` bytes fits now."""
        if not self._queue:
            return True
        return len(self._queue) < self._max_messages and self._bytes + size <= self._max_bytes

    def push(self, message: QueuedMessage) -> bool:
        """Append ``message`` if it fits; return whether it was admitted."""
        if not self.can_admit(len(message.body)):
            return False
        self._queue.append(message)
        self._bytes += len(message.body)
        return True

    def push_front(self, messages: tuple[QueuedMessage, ...]) -> None:
        """Put back messages taken by :meth:`next_batch` that were not sent (they may push
        the queue over its bounds until the writer takes them again)."""
        for message in reversed(messages):
            self._queue.appendleft(message)
            self._bytes += len(message.body)

    def next_batch(self) -> OutboundBatch | None:
        """Take the next batch, or ``None`` if the queue is empty.

        A message larger than the batch size goes alone as ``(header, body)``; otherwise
        consecutive small messages are joined into one byte string of at most
        ``batch_size`` bytes.
        """
        queue = self._queue
        if not queue:
            return None
        first = queue.popleft()
        self._bytes -= len(first.body)
        header = frame_header(len(first.body), self._max_message_size)
        if HEADER_SIZE + len(first.body) > self._batch_size:
            return OutboundBatch((header, first.body), (first,))
        parts = [header, first.body]
        size = HEADER_SIZE + len(first.body)
        taken = [first]
        while queue and size + HEADER_SIZE + len(queue[0].body) <= self._batch_size:
            message = queue.popleft()
            self._bytes -= len(message.body)
            parts += (frame_header(len(message.body), self._max_message_size), message.body)
            size += HEADER_SIZE + len(message.body)
            taken.append(message)
        return OutboundBatch((b"".join(parts),), tuple(taken))

    def clear(self) -> tuple[QueuedMessage, ...]:
        """Remove and return every queued message."""
        dropped = tuple(self._queue)
        self._queue.clear()
        self._bytes = 0
        return dropped


@final
class InboundBacklog:
    """Counts received messages not yet taken by the application.

    :param max_messages: messages held at most, over all peers.
    :param max_messages_per_peer: messages of one peer held at most.
    :param max_bytes: a message is admitted while fewer body bytes than this are held.
    """

    __slots__ = ("_bytes", "_count", "_max_bytes", "_max_messages", "_max_per_peer", "_per_peer")

    def __init__(self, *, max_messages: int, max_messages_per_peer: int, max_bytes: int) -> None:
        self._max_messages = max_messages
        self._max_per_peer = max_messages_per_peer
        self._max_bytes = max_bytes
        self._per_peer: dict[bytes, int] = {}
        self._count = 0
        self._bytes = 0

    def __repr__(self) -> str:
        return (f"<InboundBacklog {self._count} messages, {self._bytes} bytes, "
                f"{len(self._per_peer)} peers>")

    @property
    def messages(self) -> int:
        """Messages held, over all peers."""
        return self._count

    @property
    def size(self) -> int:
        """Body bytes held, over all peers."""
        return self._bytes

    def pending_for(self, peer: bytes) -> int:
        """Messages of ``peer`` held."""
        return self._per_peer.get(peer, 0)

    def can_admit(self, peer: bytes) -> bool:
        """Whether one more message of ``peer`` may be held now."""
        return (
            self._count < self._max_messages
            and self._per_peer.get(peer, 0) < self._max_per_peer
            and self._bytes < self._max_bytes
        )

    def admit(self, peer: bytes, size: int) -> None:
        """Count a message of ``size`` bytes from ``peer`` (after :meth:`can_admit`)."""
        self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        self._count += 1
        self._bytes += size

    def release(self, peer: bytes, size: int) -> None:
        """The application took a message of ``size`` bytes from ``peer``."""
        left = self._per_peer[peer] - 1
        if left:
            self._per_peer[peer] = left
        else:
            del self._per_peer[peer]
        self._count -= 1
        self._bytes -= size


@final
@dataclass(slots=True)
class TokenBucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` held; starts full.

    :param rate: tokens added per second.
    :param burst: tokens held at most.
    :param now: the current time, seconds.
    """

    rate: float
    burst: int
    now: float
    _tokens: float = field(init=False)
    _updated: float = field(init=False)

    def __post_init__(self) -> None:
        if not self.rate > 0 or self.burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self._tokens = float(self.burst)
        self._updated = self.now

    @property
    def tokens(self) -> float:
        """Tokens held at the last update."""
        return self._tokens

    def take(self, now: float, count: int = 1) -> bool:
        """Take ``count`` tokens at time ``now``; return False (taking none) if too few are
        held. A clock that goes backwards adds nothing."""
        elapsed = now - self._updated
        if elapsed > 0:
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
            self._updated = now
        if self._tokens < count:
            return False
        self._tokens -= count
        return True

"""Per-stream state of the Yamux core: lifecycle phase plus one half-state per direction.

Theory of operation (style.md §4, libp2p/go-yamux ``stream.go``; yamux.md §1, §7):

``phase`` is the lifecycle seen by the open handshake:

==============  =====================================================================
SYN_SENT        we opened it (WINDOW_UPDATE+SYN queued); it counts in the ACK backlog
                until a frame with ACK arrives, or DATA, FIN or RST (peers that never
                ACK, hashicorp) resolve it
SYN_RECEIVED    the peer opened it; it sits in the accept backlog until the application
                accepts it, which queues WINDOW_UPDATE+ACK
ESTABLISHED     the open handshake is over
FINISHED        both directions are done; the core has released the stream
==============  =====================================================================

``read_state`` is the peer→us direction and ``write_state`` us→peer, each a
:class:`HalfState`:

* OPEN → CLOSED on FIN (received for ``read_state``, sent for ``write_state``);
* OPEN or CLOSED → RESET on RST in either direction (both halves become RESET at once);
* ``read_state`` OPEN → DISCARDING when the local application stops reading while the
  peer may still send: later bodies are dropped and credited back at once, so the peer
  never stalls on a stream nobody reads; DISCARDING → CLOSED on the peer's FIN.

The stream is released (FINISHED) once neither half is OPEN or DISCARDING.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._window import ReceiveWindow

__all__ = ("HalfState", "StreamPhase", "StreamState")


class StreamPhase(enum.Enum):
    """Lifecycle of a stream's open handshake (see the module docstring)."""

    SYN_SENT = "syn_sent"
    SYN_RECEIVED = "syn_received"
    ESTABLISHED = "established"
    FINISHED = "finished"


class HalfState(enum.Enum):
    """State of one direction of a stream."""

    OPEN = "open"
    """Bytes may still flow."""
    DISCARDING = "discarding"
    """Read side only: the peer may still send, the local reader is gone; bytes are dropped."""
    CLOSED = "closed"
    """Ended by FIN."""
    RESET = "reset"
    """Aborted by RST (either side)."""


_LIVE = frozenset({HalfState.OPEN, HalfState.DISCARDING})


class StreamState:
    """Bookkeeping of one live stream inside the core."""

    __slots__ = ("phase", "read_state", "recv", "send_window", "stream_id", "write_state")

    def __init__(
        self, stream_id: int, phase: StreamPhase, send_window: int, recv: ReceiveWindow
    ) -> None:
        self.stream_id = stream_id
        self.phase = phase
        self.read_state = HalfState.OPEN
        self.write_state = HalfState.OPEN
        #: Bytes we may still send before the peer grants more.
        self.send_window = send_window
        #: Our receive-side credit.
        self.recv = recv

    def is_done(self) -> bool:
        """True when neither direction can carry bytes any more."""
        return self.read_state not in _LIVE and self.write_state not in _LIVE

    def __repr__(self) -> str:
        return (
            f"<StreamState {self.stream_id} {self.phase.name} read={self.read_state.name} "
            f"write={self.write_state.name} send_window={self.send_window} "
            f"recv_available={self.recv.available} buffered={self.recv.buffered}>"
        )

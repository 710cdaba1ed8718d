"""A stdlib-only frame-level Yamux client for wire tests and debugging (yamux.md §6.4).

``frame()`` builds raw frames (any version, type, flags, id, length, body — including
invalid ones); ``parse_frames()`` splits a byte string into frames; :class:`RawYamuxClient`
speaks over a blocking ``socket`` on 127.0.0.1 for quick wire debugging, and
:class:`AsyncRawYamux` does the same over an anyio TCP stream for async tests. Apart from
answering SYN pings (optional), they send only what the test tells them to.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.abc import SocketStream

HEADER = struct.Struct(">BBHII")
DATA, WINDOW_UPDATE, PING, GO_AWAY = 0, 1, 2, 3
SYN, ACK, FIN, RST = 1, 2, 4, 8


def frame(
    ftype: int, flags: int, stream_id: int, length: int | None = None, body: bytes = b"",
    *, version: int = 0,
) -> bytes:
    """One raw frame; ``length`` defaults to ``len(body)``."""
    return HEADER.pack(version, ftype, flags, stream_id,
                       len(body) if length is None else length) + body


@dataclass(frozen=True)
class RawFrame:
    version: int
    type: int
    flags: int
    stream_id: int
    length: int
    body: bytes


def parse_frames(data: bytes | bytearray) -> tuple[list[RawFrame], bytes]:
    """Split ``data`` into complete frames and the unparsed rest."""
    frames: list[RawFrame] = []
    offset = 0
    while len(data) - offset >= HEADER.size:
        version, ftype, flags, sid, length = HEADER.unpack_from(data, offset)
        body_len = length if ftype == DATA else 0
        if len(data) - offset - HEADER.size < body_len:
            break
        start = offset + HEADER.size
        frames.append(RawFrame(version, ftype, flags, sid, length,
                               bytes(data[start:start + body_len])))
        offset = start + body_len
    return frames, bytes(data[offset:])


class RawYamuxClient:
    """A blocking raw-frame peer. ``recv_frames`` collects frames until a condition holds."""

    def __init__(self, port: int, *, host: str = "127.0.0.1", rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._rest = b""
        self.frames: list[RawFrame] = []
        self.eof = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_until(self, predicate, timeout: float = 5.0) -> list[RawFrame]:  # type: ignore[no-untyped-def]
        """Read frames into ``self.frames`` until ``predicate(self.frames)`` or EOF/timeout.

        Pings with SYN are answered with ACK so the peer's keep-alive stays happy.
        """
        deadline = time.monotonic() + timeout
        while not predicate(self.frames):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.eof:
                break
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(262144)
            except TimeoutError:
                break
            except ConnectionResetError:
                self.eof = True
                break
            if not chunk:
                self.eof = True
                break
            frames, self._rest = parse_frames(self._rest + chunk)
            for f in frames:
                if f.type == PING and f.flags & SYN:
                    self.send(frame(PING, ACK, 0, f.length))
            self.frames += frames
        return self.frames

    def wait_eof(self, timeout: float = 5.0) -> bool:
        self.recv_until(lambda _frames: False, timeout)
        return self.eof

    def go_away_codes(self) -> list[int]:
        return [f.length for f in self.frames if f.type == GO_AWAY]

    def close(self) -> None:
        self.sock.close()


class AsyncRawYamux:
    """A raw-frame peer over an anyio TCP stream (127.0.0.1)."""

    def __init__(self, stream: SocketStream, *, answer_pings: bool = True) -> None:
        self.stream = stream
        self.answer_pings = answer_pings
        self.frames: list[RawFrame] = []
        self.eof = False
        self._rest = b""

    @classmethod
    async def connect(cls, port: int, *, answer_pings: bool = True) -> AsyncRawYamux:
        return cls(await anyio.connect_tcp("127.0.0.1", port), answer_pings=answer_pings)

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def recv_until(
        self, predicate: Callable[[list[RawFrame]], bool], timeout: float = 5.0
    ) -> list[RawFrame]:
        """Collect frames until ``predicate(self.frames)``, EOF or ``timeout`` seconds."""
        with anyio.move_on_after(timeout):
            while not predicate(self.frames) and not self.eof:
                try:
                    chunk = await self.stream.receive(262144)
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    self.eof = True
                    break
                frames, self._rest = parse_frames(self._rest + chunk)
                for f in frames:
                    if self.answer_pings and f.type == PING and f.flags & SYN:
                        await self.send(frame(PING, ACK, 0, f.length))
                self.frames += frames
        return self.frames

    async def wait_eof(self, timeout: float = 5.0) -> bool:
        await self.recv_until(lambda _frames: False, timeout)
        return self.eof

    def go_away_codes(self) -> list[int]:
        return [f.length for f in self.frames if f.type == GO_AWAY]

    def of(self, ftype: int, flags: int | None = None) -> list[RawFrame]:
        """Frames of one type (and exact flags, when given)."""
        return [f for f in self.frames
                if f.type == ftype and (flags is None or f.flags == flags)]

    async def aclose(self) -> None:
        await self.stream.aclose()

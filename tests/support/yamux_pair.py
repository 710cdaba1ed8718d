"""Two sans-IO Yamux cores wired back to back (style.md §11 ``CorePair``).

No event loop: ``flush`` moves ``data_to_send()`` of one core into ``receive_data`` of the
other, optionally in small chunks, and records the events each side produced.
"""

from __future__ import annotations

from plait.muxer import MuxerEvent, YamuxConfig, YamuxConnection


class CorePair:
    """A client core and a server core plus the events each has produced so far."""

    def __init__(
        self,
        client_config: YamuxConfig | None = None,
        server_config: YamuxConfig | None = None,
        *,
        now: float = 0.0,
    ) -> None:
        self.client = YamuxConnection(is_client=True, config=client_config)
        self.server = YamuxConnection(is_client=False, config=server_config)
        self.now = now
        self.events: dict[int, list[MuxerEvent]] = {id(self.client): [], id(self.server): []}

    def peer(self, core: YamuxConnection) -> YamuxConnection:
        return self.server if core is self.client else self.client

    def flush(
        self, src: YamuxConnection, *, chunk: int | None = None, max_bytes: int | None = None
    ) -> list[MuxerEvent]:
        """Deliver everything ``src`` has queued to its peer; return the peer's events."""
        dst = self.peer(src)
        data = src.data_to_send(max_bytes)
        events: list[MuxerEvent] = []
        if not data:
            return events
        if chunk is None:
            events += dst.receive_data(data, now=self.now)
        else:
            for i in range(0, len(data), chunk):
                events += dst.receive_data(data[i:i + chunk], now=self.now)
        while dst.is_reading_paused:
            # the destination parked input behind unwritten pongs: write them back first
            self.events[id(src)] += src.receive_data(dst.data_to_send(), now=self.now)
            events += dst.resume_reading()
        self.events[id(dst)] += events
        return events

    def roundtrip(self, *, chunk: int | None = None) -> None:
        """Shuttle bytes both ways until neither side has anything queued."""
        for _ in range(1000):
            if not (self.client.has_data_to_send or self.server.has_data_to_send):
                return
            self.flush(self.client, chunk=chunk)
            self.flush(self.server, chunk=chunk)
        raise AssertionError("the cores never went quiet")

    def take(self, core: YamuxConnection) -> list[MuxerEvent]:
        """Return and forget the events ``core`` produced so far."""
        events = self.events[id(core)]
        self.events[id(core)] = []
        return events

"""A one-line progress bar on a terminal (stderr), silent when it is not a terminal."""

from __future__ import annotations

import shutil
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import TextIO

__all__ = ("ProgressBar",)


class ProgressBar:
    """``[#####.....]  12/40  0:07  round 2/5: stack-bulk-1``, redrawn in place.

    :param total: steps in the whole run.
    :param stream: where to draw (default ``sys.stderr``).
    :param enabled: draw at all; default: only when ``stream`` is a terminal.
    """

    def __init__(
        self, total: int, *, stream: TextIO | None = None, enabled: bool | None = None
    ) -> None:
        self.total = max(total, 1)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.done = 0
        self.started = time.monotonic()

    def step(self, label: str) -> None:
        """A step named ``label`` starts now (the previous one, if any, is done)."""
        if not self.enabled:
            return
        position = min(self.done, self.total)
        self.done += 1
        width = shutil.get_terminal_size((80, 24)).columns
        elapsed = int(time.monotonic() - self.started)
        counter = f" {position}/{self.total}  {elapsed // 60}:{elapsed % 60:02d}  "
        bar_width = 20
        filled = bar_width * position // self.total
        bar = "[" + "#" * filled + "." * (bar_width - filled) + "]"
        line = (bar + counter + label)[: max(width - 1, 10)]
        self.stream.write("\r\x1b[K" + line)
        self.stream.flush()

    def close(self) -> None:
        """Erase the bar."""
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

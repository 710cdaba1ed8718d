"""The running event loop's clock as a plain callable (the hot paths read it per frame).

``anyio.current_time()`` finds the running backend on every call; the adapters look the
clock up once, when they start, and it also works in asyncio's transport callbacks, where
anyio cannot tell which library is running.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import anyio
import sniffio

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ("running_clock",)


def running_clock() -> Callable[[], float]:
    """The clock ``anyio.current_time`` reads, for the event loop running now."""
    library = sniffio.current_async_library()
    if library == "asyncio":
        return asyncio.get_running_loop().time
    if library == "trio":
        import trio

        return trio.current_time
    return anyio.current_time  # pragma: no cover - no other backend exists

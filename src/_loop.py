"""Event-loop primitives for the hot paths, looked up once per connection.

``anyio.current_time()`` and ``anyio.Event()`` find the running backend on every call, and
an anyio event on asyncio is a wrapper around an ``asyncio.Event``, which makes a future
per wait. The adapters take the loop's clock and a one-shot :class:`Signal` factory from
here when they start; both also work in asyncio's transport callbacks, where anyio cannot
tell which library is running.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

import anyio
import sniffio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ("Signal", "running_clock", "signal_factory")


class Signal(Protocol):
    """What the adapters need of an event: ``anyio.Event`` has this shape."""

    def set(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self) -> Awaitable[None]: ...


class _FutureSignal:
    """A one-shot asyncio event for a single waiter: one future, no waiter list. A task
    cancelled while waiting cancels the future; the signal then reads as not set, and a
    later wait starts on a fresh future. Not for several waiters at once: cancelling one
    would wake the others with its cancellation."""

    __slots__ = ("_future",)

    def __init__(self) -> None:
        self._future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def set(self) -> None:
        future = self._future
        if not future.done():
            future.set_result(None)

    def is_set(self) -> bool:
        future = self._future
        return future.done() and not future.cancelled()

    def wait(self) -> asyncio.Future[None]:
        future = self._future
        if future.cancelled():
            future = self._future = asyncio.get_running_loop().create_future()
        return future


def running_clock() -> Callable[[], float]:
    """The clock ``anyio.current_time`` reads, for the event loop running now."""
    library = sniffio.current_async_library()
    if library == "asyncio":
        return asyncio.get_running_loop().time
    if library == "trio":
        import trio

        return trio.current_time
    return anyio.current_time  # pragma: no cover - no other backend exists


def signal_factory() -> Callable[[], Signal]:
    """A maker of one-shot signals, each for a single waiting task, for the event loop
    running now (several waiters need an ``anyio.Event``)."""
    if sniffio.current_async_library() == "asyncio":
        return _FutureSignal
    return type(anyio.Event())

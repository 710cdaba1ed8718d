"""The hot paths' event-loop primitives (src/_loop.py)."""

from __future__ import annotations

import anyio
import pytest
from plait._loop import running_clock, signal_factory

pytestmark = pytest.mark.anyio


async def test_running_clock_is_anyio_s_clock() -> None:
    clock = running_clock()
    before = anyio.current_time()
    now = clock()
    assert before <= now <= anyio.current_time()


async def test_signal_wakes_its_waiter_once_set() -> None:
    signal = signal_factory()()
    assert not signal.is_set()
    async with anyio.create_task_group() as tg:
        woken = anyio.Event()

        async def waiter() -> None:
            await signal.wait()
            woken.set()

        tg.start_soon(waiter)
        await anyio.lowlevel.checkpoint()
        assert not woken.is_set()
        signal.set()
        signal.set()  # idempotent
        with anyio.fail_after(5):
            await woken.wait()
    assert signal.is_set()


async def test_a_cancelled_wait_leaves_the_signal_usable() -> None:
    signal = signal_factory()()
    with anyio.move_on_after(0.01) as scope:
        await signal.wait()
    assert scope.cancelled_caught
    assert not signal.is_set()  # a cancelled waiter did not set it

    async def waiter() -> None:
        await signal.wait()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.lowlevel.checkpoint()
            signal.set()  # the next waiter is woken normally
    assert signal.is_set()

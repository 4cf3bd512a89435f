"""`cancel_and_wait`: every stop() ends its tasks the same way — whatever they end with is not raised,
but a cancellation of the caller itself is."""

from __future__ import annotations

import asyncio

import pytest

from actormesh_runtime.cancellation import cancel_and_wait


async def test_tasks_end_and_their_errors_are_not_raised() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    async def fails_on_cancel() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    tasks = [asyncio.create_task(forever()), asyncio.create_task(fails_on_cancel())]
    await asyncio.sleep(0)
    await cancel_and_wait(*tasks, None)
    assert all(t.done() for t in tasks)


async def test_the_callers_own_cancellation_propagates() -> None:
    async def slow_to_stop() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(10)  # takes its time to wind down

    inner = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait(inner))
    await asyncio.sleep(0.01)
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper

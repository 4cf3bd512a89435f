"""`cancel_and_wait`: every stop() ends its tasks the same way — whatever they end with is not raised,
but a cancellation of the caller itself is."""

from __future__ import annotations

import asyncio

import pytest

from actormesh_runtime.cancellation import cancel_and_wait, cancel_until_done
from tests.support.cancellation import retries_losing_the_first_cancel


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


# ---------------------------------------------------------------- cancel_until_done


async def test_a_lost_cancellation_is_asked_again_until_the_task_ends() -> None:
    events: list[str] = []
    inside = asyncio.Event()
    task = asyncio.create_task(retries_losing_the_first_cancel(events, inside))
    await inside.wait()
    await asyncio.wait_for(cancel_until_done(task, every_s=0.05), 5)
    assert task.cancelled()
    assert "lost cancel" in events, "the first cancel was lost"


async def test_one_cancel_is_not_enough_for_such_a_task() -> None:
    """Why the helper exists: the single cancel of `cancel_and_wait` leaves it running."""
    events: list[str] = []
    inside = asyncio.Event()
    task = asyncio.create_task(retries_losing_the_first_cancel(events, inside))
    await inside.wait()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(cancel_and_wait(task)), 0.3)
    assert not task.done()
    await cancel_until_done(task)


async def test_a_task_that_already_ended_is_left_as_it_ended() -> None:
    async def failed() -> None:
        raise RuntimeError("connect failed")

    task = asyncio.create_task(failed())
    await asyncio.sleep(0)
    await cancel_until_done(task)
    assert isinstance(task.exception(), RuntimeError)

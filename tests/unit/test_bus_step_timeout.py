"""`bus.host._StepTimeout`: a step that outlives its budget leaves as TimeoutError; a cancellation
from elsewhere (the drain) stays a cancellation; a step within its budget is untouched. The real-server
side: tests/integration/test_bus_failures.py (a processing timeout is retried, then dead-lettered)."""

from __future__ import annotations

import asyncio

import pytest

from actormesh_runtime.bus.host import _StepTimeout

pytestmark = pytest.mark.looptime


async def test_a_step_past_its_budget_raises_timeout_error_and_the_task_is_not_left_cancelled() -> None:
    async def step() -> None:
        with _StepTimeout(1.0):
            await asyncio.sleep(5)

    task = asyncio.create_task(step())
    with pytest.raises(TimeoutError):
        await task
    assert not task.cancelled()


async def test_a_step_within_its_budget_is_untouched_and_its_timer_is_gone() -> None:
    async def step() -> str:
        with _StepTimeout(1.0):
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)  # past the budget: the timer must not fire any more
        return "done"

    assert await asyncio.create_task(step()) == "done"


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    started = asyncio.Event()

    async def step() -> None:
        with _StepTimeout(10.0):
            started.set()
            await asyncio.sleep(5)

    task = asyncio.create_task(step())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()

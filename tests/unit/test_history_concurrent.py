"""The history service answers queries side by side: a slow one never holds the others, at most
`limit` run at once, and stopping lets the answers in flight finish (or cancels them)."""

from __future__ import annotations

import asyncio
from typing import Any

from actormesh_runtime.history.concurrent import Concurrent


class Handler:
    def __init__(self) -> None:
        self.release: dict[str, asyncio.Event] = {}
        self.done: list[str] = []

    async def __call__(self, msg: Any) -> None:
        gate = self.release.setdefault(msg, asyncio.Event())
        await gate.wait()
        self.done.append(msg)


async def test_a_slow_answer_does_not_hold_the_next() -> None:
    handler = Handler()
    handler.release["fast"] = asyncio.Event()
    handler.release["fast"].set()
    answers = Concurrent(handler, limit=4)
    await answers.dispatch("slow")  # type: ignore[arg-type]
    await answers.dispatch("fast")  # type: ignore[arg-type]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert handler.done == ["fast"]
    assert answers.in_flight == 1
    handler.release["slow"].set()
    await answers.wait(timeout_s=5)
    assert handler.done == ["fast", "slow"]
    assert answers.in_flight == 0


async def test_at_the_limit_the_subscription_waits() -> None:
    handler = Handler()
    answers = Concurrent(handler, limit=2)
    await answers.dispatch("a")  # type: ignore[arg-type]
    await answers.dispatch("b")  # type: ignore[arg-type]
    third = asyncio.create_task(answers.dispatch("c"))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    assert not third.done()
    handler.release["a"].set()
    await asyncio.wait_for(third, timeout=5)
    assert answers.in_flight == 2


async def test_stopping_cancels_what_does_not_finish_in_time() -> None:
    handler = Handler()
    answers = Concurrent(handler, limit=2)
    await answers.dispatch("stuck")  # type: ignore[arg-type]
    await answers.wait(timeout_s=0.05)
    assert answers.in_flight == 0
    assert handler.done == []

"""Run a core-NATS subscription's handler for many messages at once, bounded.

nats-py calls a subscription's callback for one message at a time: one slow answer (an approval
decision waiting on JetStream acks through a leader election, a large conversation read) would hold
every claim and read queued behind it. `Concurrent` hands each message to its own task, at most
`limit` in flight; at the limit the subscription itself waits, so the backlog stays in the client's
pending buffer (bounded by nats-py's pending limits) rather than in unbounded tasks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from nats.aio.msg import Msg

from actormesh_runtime.cancellation import cancel_and_wait

Handler = Callable[[Msg], Coroutine[Any, Any, None]]


class Concurrent:
    def __init__(self, handler: Handler, *, limit: int) -> None:
        self._handler = handler
        self._slots = asyncio.Semaphore(limit)
        self._running: set[asyncio.Task[None]] = set()

    async def dispatch(self, msg: Msg) -> None:
        """The subscription's callback (nats-py wants a coroutine function, not a callable object):
        returns once the message has a slot and a task."""
        await self._slots.acquire()
        task = asyncio.create_task(self._handler(msg))
        self._running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slots.release()

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def wait(self, timeout_s: float) -> None:
        """Let the answers in flight finish (after the subscription stopped); cancel what remains."""
        if not self._running:
            return
        _, pending = await asyncio.wait(set(self._running), timeout=timeout_s)
        await cancel_and_wait(*pending)

"""Stopping tasks: `cancel_and_wait` (every service's `stop()`), `cancel_until_done` (a task running
code of someone else's that may lose a cancellation), and `cancel_requested` — whether the running
task has been asked to stop, even when the cancellation itself was lost.

Retry loops that catch `Exception` around NATS calls can swallow a `cancel()`: nats-py turns a
cancellation that lands inside one of its requests into its own `TimeoutError`, and Python 3.11's
`asyncio.wait_for` (under every nats-py request) returns a reply that arrives in the same loop step as
the cancel instead of raising. The task still counts the request, so a loop that checks this before
retrying ends instead of leaving whoever awaits it (a `stop()`) waiting forever.
"""

from __future__ import annotations

import asyncio
from typing import Any


def cancel_requested() -> bool:
    """True when the current task has a cancellation pending or swallowed below it."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel `tasks` (None skipped) and wait until each has ended. How they end (their own
    CancelledError, or an error) is not raised here: a stop must complete. A cancellation of the
    caller itself still propagates (unlike `suppress(CancelledError)` around `await task`)."""
    live = [task for task in tasks if task is not None]
    for task in live:
        task.cancel()
    if live:
        await asyncio.gather(*live, return_exceptions=True)


RECANCEL_S = 0.5


async def cancel_until_done(task: asyncio.Task[Any], *, every_s: float = RECANCEL_S) -> None:
    """Cancel `task` and again every `every_s` until it has ended; how it ended is not raised.

    For a task whose retry loop is not ours: nats-py's initial `connect` (reconnecting forever)
    catches the error a lost cancellation turns into and tries the next attempt, so one `cancel()`
    that lands in the wrong step leaves it connecting forever; the next lands in its pause between
    attempts. Not for tasks with clean-up to finish after a cancel: a second cancel would cut it short.
    """
    task.cancel()
    while not task.done():
        await asyncio.wait({task}, timeout=every_s)
        task.cancel()  # a no-op once it has ended
    if not task.cancelled():
        task.exception()  # retrieved: a failure while stopping is not worth a warning at exit

"""Whether the running task has been asked to stop, even when the cancellation itself was lost.

Retry loops that catch `Exception` around NATS calls can swallow a `cancel()`: nats-py turns a
cancellation that lands inside one of its requests into its own `TimeoutError`, and Python 3.11's
`asyncio.wait_for` (under every nats-py request) returns a reply that arrives in the same loop step as
the cancel instead of raising. The task still counts the request, so a loop that checks this before
retrying ends instead of leaving whoever awaits it (a `stop()`) waiting forever.
"""

from __future__ import annotations

import asyncio


def cancel_requested() -> bool:
    """True when the current task has a cancellation pending or swallowed below it."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0

"""One loop for the pull consumers that handle their messages one by one, in order.

Who calls: `bus.approval_executor` (approved actions) and `history.approval_ops` (their outcomes).
A failed fetch (the wait ran out, or the client is reconnecting) is tried again after a short pause;
`handle` owns each message's ack, nak or term.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

RETRY_PAUSE_S = 0.2
"""After a failed fetch: long enough not to spin while the client reconnects."""


async def pull_forever(
    sub: Any,
    batch: int,
    wait_s: float,
    handle: Callable[[Any], Awaitable[None]],
    *,
    stopping: asyncio.Event | None = None,
) -> None:
    """Fetch up to `batch` messages at a time and `handle` each, until cancelled or `stopping` is set."""
    while stopping is None or not stopping.is_set():
        try:
            msgs = await sub.fetch(batch, timeout=wait_s)
        except asyncio.CancelledError:
            raise
        except Exception:  # a timeout, or a reconnect in progress
            await asyncio.sleep(RETRY_PAUSE_S)
            continue
        for msg in msgs:
            await handle(msg)

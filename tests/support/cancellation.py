"""A stand-in for a retry loop that is not ours and loses a cancellation (nats-py's initial connect),
shared by the tests of `cancellation.cancel_until_done` and of `bus.process.connect_with_retry`."""

from __future__ import annotations

import asyncio


async def retries_losing_the_first_cancel(events: list[str], inside: asyncio.Event) -> None:
    """nats-py's initial connect with reconnects on, as it behaves when a cancel lands inside an
    attempt: the cancellation becomes an error its loop catches, and it tries again after a pause.
    The first attempt lasts until that cancel (`inside` is set once it has begun); the loop gives up
    after ~10 s, so a failing test cannot hang the session."""
    lost = False
    for _ in range(500):
        events.append("attempt")
        try:
            if lost:
                await asyncio.sleep(0.01)  # a later attempt
            else:
                inside.set()
                await asyncio.Event().wait()
        except asyncio.CancelledError:
            if lost:
                raise
            lost = True  # swallowed, as the retry loop does
            events.append("lost cancel")
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
        await asyncio.sleep(0.01)  # the pause between attempts

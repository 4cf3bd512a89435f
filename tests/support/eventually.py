"""`eventually`: the one way tests wait for something — poll a check until it holds, with a deadline.

Tests never sleep a fixed time hoping something happened (slow machines make that flaky, fast ones
make it pass for the wrong reason). They poll:

    value = eventually(lambda: proc_output(), what="the banner")               # sync tests
    records = await eventually_async(lambda: dlq.list_records(js, s), what="a dead letter")  # async

`check` returns a value; a truthy value ends the wait and is returned. An exception listed in
`ignoring` counts as "not yet" (e.g. `httpx.HTTPError` while a server starts). When the deadline
passes, the test fails naming `what` and the last value or exception seen.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 15.0
DEFAULT_INTERVAL_S = 0.05


class NotYet(AssertionError):
    """The condition did not hold before the deadline."""


class _Deadline:
    def __init__(self, what: str, timeout_s: float, interval_s: float) -> None:
        self.what, self.timeout_s, self.interval_s = what, timeout_s, interval_s
        self.end = time.monotonic() + timeout_s

    def pause(self, last: object) -> float:
        """How long to wait before the next try; fails the test once the deadline has passed."""
        if time.monotonic() >= self.end:
            raise NotYet(f"timed out after {self.timeout_s:g}s waiting for {self.what} (last: {last!r})")
        return self.interval_s


def eventually(
    check: Callable[[], T],
    *,
    what: str = "the condition",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    interval_s: float = DEFAULT_INTERVAL_S,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Call `check()` until it returns something truthy and return that; fail after `timeout_s`."""
    deadline = _Deadline(what, timeout_s, interval_s)
    while True:
        try:
            last: object = check()
        except ignoring as exc:
            last = exc
        if last and not isinstance(last, ignoring):
            return last  # type: ignore[return-value]
        time.sleep(deadline.pause(last))


async def eventually_async(
    check: Callable[[], Awaitable[T] | T],
    *,
    what: str = "the condition",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    interval_s: float = DEFAULT_INTERVAL_S,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """`eventually` for async tests: `check` may be sync or async; waits without blocking the loop.

    The deadline is measured in wall-clock time, so it also holds in a test running on fake loop time.
    """
    deadline = _Deadline(what, timeout_s, interval_s)
    while True:
        try:
            outcome = check()
            last: object = await outcome if inspect.isawaitable(outcome) else outcome
        except ignoring as exc:
            last = exc
        if last and not isinstance(last, ignoring):
            return last  # type: ignore[return-value]
        await asyncio.sleep(deadline.pause(last))

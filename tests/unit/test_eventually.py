"""The one polling helper: returns the first truthy value, names what it waited for when it gives up."""

from __future__ import annotations

import pytest

from tests.support.eventually import NotYet, eventually, eventually_async


def test_returns_the_first_truthy_value() -> None:
    values = iter([None, 0, [], "ready"])
    assert eventually(lambda: next(values), interval_s=0) == "ready"


def test_gives_up_naming_what_and_the_last_value() -> None:
    with pytest.raises(NotYet, match=r"waiting for the banner \(last: ''\)"):
        eventually(lambda: "", what="the banner", timeout_s=0.05)


def test_an_ignored_exception_is_reported_as_the_last_value() -> None:
    def refused() -> None:
        raise ConnectionError("refused")

    with pytest.raises(NotYet, match="refused"):
        eventually(refused, ignoring=(ConnectionError,), timeout_s=0.05)


def test_listed_exceptions_mean_not_yet_others_fail_at_once() -> None:
    calls = iter([ConnectionError("refused"), ConnectionError("refused"), "up"])

    def probe() -> str:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert eventually(probe, ignoring=(ConnectionError,), interval_s=0) == "up"
    with pytest.raises(KeyError):
        eventually(lambda: {}["missing"], ignoring=(ConnectionError,))


async def test_async_checks_are_awaited_and_sync_ones_accepted() -> None:
    seen = iter([False, False, True])

    async def ready() -> bool:
        return next(seen)

    assert await eventually_async(ready, interval_s=0) is True
    assert await eventually_async(lambda: "sync", interval_s=0) == "sync"
    with pytest.raises(NotYet, match="the queue"):
        await eventually_async(lambda: False, what="the queue", timeout_s=0.05)

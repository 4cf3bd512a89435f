"""`bus.pull.PullFeed.hand_back`: a reader that stops fetching (the history writer, `pull_batches`)
naks what its still-open pull request delivers until the request is over, so that it is redelivered at
once rather than after the ack wait; it sends no new request. No server: the scripted subscription of
test_bus_pull_feed.py."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.test_bus_pull_feed import FakeMsg, _feed

pytestmark = pytest.mark.looptime


class NakMsg(FakeMsg):
    def __init__(self, data: bytes = b"x", status: str | None = None) -> None:
        super().__init__(data, status)
        self.naked = False

    async def nak(self) -> None:
        self.naked = True


async def test_what_the_open_request_still_delivers_is_naked_until_its_status_comes() -> None:
    feed, inbox, nc = _feed()
    loop = asyncio.get_running_loop()
    loop.call_later(0.1, inbox.deliver, NakMsg(b"m1"))
    assert [m.data for m in await feed.fetch(4, timeout=1.0)] == [b"m1"]  # the request stays open
    late, after = NakMsg(b"m2"), NakMsg(b"after the request")
    loop.call_later(0.2, inbox.deliver, late)
    loop.call_later(0.9, inbox.deliver, NakMsg(b"", status="408"))
    loop.call_later(0.95, inbox.deliver, after)

    assert await feed.hand_back() == 1
    assert late.naked
    assert not after.naked, "the request was over: nothing more is for this reader"
    assert len(nc.requests) == 1


async def test_nothing_is_waited_for_when_no_request_is_open() -> None:
    feed, inbox, nc = _feed()
    inbox.deliver(NakMsg(b"", status="408"))
    with pytest.raises(TimeoutError):
        await feed.fetch(4, timeout=1.0)
    assert await feed.hand_back() == 0
    assert len(nc.requests) == 1

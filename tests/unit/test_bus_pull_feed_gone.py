"""`bus.pull.PullFeed` when the consumer is not there for pulls: the statuses that say so raise
`ConsumerUnavailable` (the host then restores the consumer instead of asking again at once, for
ever), the ones that only close a request do not. No server: the scripted subscription of
test_bus_pull_feed.py."""

from __future__ import annotations

import pytest

from actormesh_runtime.bus.pull import ConsumerUnavailable
from tests.unit.test_bus_pull_feed import FakeMsg, _feed

pytestmark = pytest.mark.looptime


def status(code: str, description: str = "") -> FakeMsg:
    msg = FakeMsg(b"", status=code)
    if description:
        assert msg.headers is not None
        msg.headers["Description"] = description
    return msg


@pytest.mark.parametrize(
    "gone",
    [status("503"), status("409", "Consumer Deleted"), status("409", "Consumer is push based")],
    ids=["no-responders", "deleted", "push-based"],
)
async def test_a_consumer_that_is_not_there_for_pulls_is_reported(gone: FakeMsg) -> None:
    feed, inbox, _ = _feed()
    inbox.deliver(gone)
    with pytest.raises(ConsumerUnavailable):
        await feed.fetch(4, timeout=1.0)


@pytest.mark.parametrize(
    "closing",
    [status("408", "Request Timeout"), status("404", "No Messages"), status("409", "Exceeded MaxWaiting")],
    ids=["expired", "no-messages", "max-waiting"],
)
async def test_a_status_that_only_ends_the_request_is_a_timeout(closing: FakeMsg) -> None:
    feed, inbox, nc = _feed()
    inbox.deliver(closing)
    with pytest.raises(TimeoutError):
        await feed.fetch(4, timeout=1.0)
    assert len(nc.requests) == 1

"""`bus.pull.PullFeed`: one open pull request at a time, each asking for no more than the caller's
free slots; deliveries to the open request are returned without a new request; a status closes it.
No server: a scripted subscription records the pull requests (the real-server side is every bus
integration test, which runs the actor host on it)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from actormesh_runtime.bus.pull import EXPIRY_SLACK_S, PullFeed

pytestmark = pytest.mark.looptime


class FakeMsg:
    def __init__(self, data: bytes = b"x", status: str | None = None) -> None:
        self.data = data
        self.headers = {"Status": status} if status else None


class FakeInbox:
    def __init__(self) -> None:
        self._pending_queue: asyncio.Queue[FakeMsg] = asyncio.Queue()
        self._pending_size = 0

    def deliver(self, msg: FakeMsg) -> None:
        self._pending_size += len(msg.data)
        self._pending_queue.put_nowait(msg)


class FakePull:
    _nms = "$JS.API.CONSUMER.MSG.NEXT.S.C"
    _deliver = "_INBOX.me"

    def __init__(self) -> None:
        self._sub = FakeInbox()


class FakeNats:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def publish(self, subject: str, payload: bytes, reply: str = "") -> None:
        assert subject == FakePull._nms
        assert reply == FakePull._deliver
        self.requests.append(json.loads(payload))


def _feed() -> tuple[PullFeed, FakeInbox, FakeNats]:
    pull, nc = FakePull(), FakeNats()
    return PullFeed(pull, nc), pull._sub, nc  # type: ignore[arg-type]


async def test_messages_delivered_to_the_open_request_need_no_new_request() -> None:
    feed, inbox, nc = _feed()
    asyncio.get_running_loop().call_later(0.1, inbox.deliver, FakeMsg(b"m1"))
    assert [m.data for m in await feed.fetch(4, timeout=1.0)] == [b"m1"]
    assert nc.requests == [{"batch": 4, "expires": 1_000_000_000}]

    inbox.deliver(FakeMsg(b"m2"))
    inbox.deliver(FakeMsg(b"m3"))
    assert [m.data for m in await feed.fetch(4, timeout=1.0)] == [b"m2", b"m3"]
    assert len(nc.requests) == 1  # still the first request: 1 of its 4 left
    assert inbox._pending_size == 0
    assert inbox._pending_queue._unfinished_tasks == 0  # type: ignore[attr-defined]  # nats drain() joins it


async def test_a_used_up_request_is_followed_by_one_for_the_free_slots_only() -> None:
    feed, inbox, nc = _feed()
    inbox.deliver(FakeMsg(b"m1"))  # left by an earlier request: taken without asking
    assert len(await feed.fetch(1, timeout=1.0)) == 1
    assert nc.requests == []

    asyncio.get_running_loop().call_later(0.1, inbox.deliver, FakeMsg(b"m2"))
    await feed.fetch(1, timeout=1.0)
    asyncio.get_running_loop().call_later(0.1, inbox.deliver, FakeMsg(b"m3"))
    await feed.fetch(3, timeout=1.0)
    assert [r["batch"] for r in nc.requests] == [1, 3]


async def test_a_status_closes_the_request_and_the_next_fetch_asks_again() -> None:
    feed, inbox, nc = _feed()
    asyncio.get_running_loop().call_later(0.5, inbox.deliver, FakeMsg(b"", status="408"))
    with pytest.raises(TimeoutError):
        await feed.fetch(8, timeout=1.0)
    assert asyncio.get_running_loop().time() == pytest.approx(0.5)  # not the whole second
    asyncio.get_running_loop().call_later(0.1, inbox.deliver, FakeMsg(b"m1"))
    assert len(await feed.fetch(8, timeout=1.0)) == 1
    assert len(nc.requests) == 2


async def test_a_heartbeat_does_not_close_the_request() -> None:
    feed, inbox, nc = _feed()
    loop = asyncio.get_running_loop()
    loop.call_later(0.1, inbox.deliver, FakeMsg(b"", status="100"))
    loop.call_later(0.2, inbox.deliver, FakeMsg(b"m1"))
    assert len(await feed.fetch(8, timeout=1.0)) == 1
    assert len(nc.requests) == 1


async def test_an_expired_request_is_replaced_only_after_the_slack() -> None:
    feed, inbox, nc = _feed()
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):  # nothing came, and no status either (e.g. lost in a reconnect)
        await feed.fetch(8, timeout=1.0)
    with pytest.raises(TimeoutError):  # its 408 may still be on the way: no second request beside it
        await feed.fetch(8, timeout=1.0)
    assert loop.time() == pytest.approx(1.0 + EXPIRY_SLACK_S)
    assert len(nc.requests) == 1
    loop.call_later(0.1, inbox.deliver, FakeMsg(b"m1"))
    assert len(await feed.fetch(8, timeout=1.0)) == 1
    assert len(nc.requests) == 2


@pytest.mark.parametrize(
    "reply",
    [
        "$JS.ACK.actormesh-demo.demo-decision_router.3.1042.77.1733412345000000000.5",
        "$JS.ACK.hub.ACCHASH.actormesh-demo.demo-decision_router.3.1042.77.1733412345000000000.5.tok",
    ],
    ids=["v1", "v2-domain-and-account"],
)
def test_delivery_of_reads_what_nats_py_metadata_reads(reply: str) -> None:
    from nats.aio.msg import Msg

    from actormesh_runtime.bus.pull import delivery_of

    msg = Msg(None, subject="s", reply=reply, data=b"")
    meta = Msg(None, subject="s", reply=reply, data=b"").metadata
    assert delivery_of(msg) == (meta.num_delivered, meta.sequence.stream) == (3, 1042)


def test_delivery_of_refuses_a_message_that_is_not_from_jetstream() -> None:
    from nats.aio.msg import Msg
    from nats.errors import NotJSMessageError

    from actormesh_runtime.bus.pull import delivery_of

    with pytest.raises(NotJSMessageError):
        delivery_of(Msg(None, subject="s", reply="_INBOX.abc.def.1.2.3.4.5.6", data=b""))


def test_delivery_of_a_message_without_an_ack_subject_is_not_a_jetstream_message() -> None:
    from nats.aio.msg import Msg
    from nats.errors import NotJSMessageError

    from actormesh_runtime.bus.pull import delivery_of

    with pytest.raises(NotJSMessageError):
        delivery_of(Msg(None, subject="s", reply="", data=b""))

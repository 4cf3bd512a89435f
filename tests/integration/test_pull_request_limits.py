"""Pull requests a consumer's own limits end at once (docs/bus.md): a consumer whose max_batch was set
by hand below what its reader asks for answers every pull request with a 409 "Exceeded
MaxRequestBatch". That is no timeout and no consumer gone: asked again at once, it is answered the same
at once, so the readers pause (and say so once), instead of asking again in a busy loop. And a batch
handler that raises (an ack on a closed connection) does not end the reader for good.

A real nats-server; the limit is what `nats consumer edit --max-pull-batch 1` would set."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from actormesh_runtime.bus.pull import PullFeed, RequestEnded, pull_batches
from tests.support.bus_actors import Recorder, WorkerActor, bus_rig, fast_settings
from tests.support.eventually import eventually_async

pytestmark = pytest.mark.integration


@dataclass
class Rig:
    nc: NATS
    js: JetStreamContext
    stream: str
    subject: str


@asynccontextmanager
async def rig(nats_server: str) -> AsyncIterator[Rig]:
    nc = NATS()
    await nc.connect(nats_server)
    js = nc.jetstream()
    name = f"LIMITS_{uuid.uuid4().hex[:8]}"
    subject = f"limits.{name}"
    await js.add_stream(StreamConfig(name=name, subjects=[subject]))
    try:
        yield Rig(nc, js, name, subject)
    finally:
        await js.delete_stream(name)
        await nc.close()


async def feed_with(r: Rig, durable: str, **limits: object) -> PullFeed:
    """A pull consumer with `limits` (by their JetStream API names: nats-py's `ConsumerConfig` has no
    max_batch), created through the API request `nats consumer add` sends."""
    config = {"durable_name": durable, "ack_policy": "explicit", **limits}
    if "ack_wait" in config:
        config["ack_wait"] = int(float(config["ack_wait"]) * 1e9)  # type: ignore[arg-type]
    request = json.dumps({"stream_name": r.stream, "config": config}).encode()
    reply = await r.nc.request(f"$JS.API.CONSUMER.CREATE.{r.stream}.{durable}", request, timeout=5)
    assert "error" not in json.loads(reply.data), reply.data
    sub = await r.js.pull_subscribe_bind(durable, r.stream)
    return PullFeed(sub, r.nc)


class Counting:
    """A feed whose fetches are counted."""

    def __init__(self, feed: PullFeed) -> None:
        self.feed = feed
        self.fetches = 0
        self.consumer = feed.consumer

    async def fetch(self, batch: int, timeout: float) -> list[Msg]:  # noqa: ASYNC109
        self.fetches += 1
        return await self.feed.fetch(batch, timeout)

    async def hand_back(self) -> int:
        return await self.feed.hand_back()


async def _never_restored() -> None:
    raise AssertionError("the consumer is there: nothing to restore")


async def test_a_request_over_the_consumers_max_batch_ends_with_its_status(nats_server: str) -> None:
    async with rig(nats_server) as r:
        feed = await feed_with(r, "small", max_batch=1)
        await r.js.publish(r.subject, b"waiting")

        with pytest.raises(RequestEnded) as ended:
            await feed.fetch(8, timeout=5.0)

    assert ended.value.status == "409"
    assert "maxrequestbatch" in ended.value.description.lower().replace(" ", "")
    assert isinstance(ended.value, TimeoutError), "callers that only wait still see a timeout"


def _idle_reader(feed: Any, stopping: asyncio.Event, *, pause_s: float) -> asyncio.Task[None]:
    """`pull_batches` asking for 16 at a time and doing nothing with what comes."""
    return asyncio.create_task(
        pull_batches(
            feed,
            16,
            5.0,
            lambda msgs: asyncio.sleep(0),
            restore=_never_restored,
            stopping=stopping,
            pause_s=pause_s,
        )
    )


async def test_the_reader_pauses_on_such_a_status_and_says_so_once(
    nats_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="actormesh_runtime.bus.pull")
    async with rig(nats_server) as r:
        feed = Counting(await feed_with(r, "small", max_batch=1))
        stopping = asyncio.Event()
        # A long pause: a reader that asks again at once makes thousands of requests meanwhile.
        reader = _idle_reader(feed, stopping, pause_s=30.0)
        await eventually_async(lambda: feed.fetches > 0, what="a first request")
        for _ in range(50):
            await asyncio.sleep(0.01)
        fetched_while_paused = feed.fetches
        reader.cancel()

    assert fetched_while_paused == 1
    assert [r.message for r in caplog.records] == ["pull request ended early"]


async def test_the_status_is_logged_once_per_episode(
    nats_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="actormesh_runtime.bus.pull")
    async with rig(nats_server) as r:
        feed = Counting(await feed_with(r, "small", max_batch=1))
        stopping = asyncio.Event()
        reader = _idle_reader(feed, stopping, pause_s=0.01)
        await eventually_async(lambda: feed.fetches >= 5, what="five requests")
        stopping.set()
        await reader

    assert [r.message for r in caplog.records if "ended early" in r.message] == ["pull request ended early"]


async def test_a_batch_handler_that_raises_once_does_not_end_the_reader(
    nats_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="actormesh_runtime.bus.pull")
    async with rig(nats_server) as r:
        feed = await feed_with(r, "reader", ack_wait=1.0)
        handled: list[bytes] = []
        stopping = asyncio.Event()

        async def handle(msgs: list[Msg]) -> None:
            if not caplog.records:  # the first batch: as an ack on a closed connection would
                raise ConnectionError("nats: connection closed")
            for msg in msgs:
                handled.append(msg.data)
                await msg.ack()

        reader = asyncio.create_task(
            pull_batches(feed, 8, 0.5, handle, restore=_never_restored, stopping=stopping, pause_s=0.05)
        )
        await r.js.publish(r.subject, b"first")
        await eventually_async(lambda: bool(caplog.records), what="the failure logged")
        await r.js.publish(r.subject, b"second")
        await eventually_async(lambda: b"second" in handled, what="the next message handled", timeout_s=30)
        stopping.set()
        await reader

    assert caplog.records[0].message == "handling a batch failed"
    assert caplog.records[0].exc_info is not None


async def test_an_actor_host_pauses_on_such_a_status_too(
    nats_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="actormesh_runtime.bus.host")
    async with bus_rig(fast_settings(nats_server, fetch_batch=4)) as rig:
        host = await rig.add_host(WorkerActor(Recorder()), fetch_wait_s=5.0)
        stream, consumer = rig.subjects.stream, rig.subjects.consumer(host.name)
        info = await rig.js.consumer_info(stream, consumer)
        config = {**info.config.as_dict(), "max_batch": 1}  # `nats consumer edit --max-pull-batch 1`
        request = json.dumps({"stream_name": stream, "config": config}).encode()
        reply = await rig.nc.request(f"$JS.API.CONSUMER.CREATE.{stream}.{consumer}", request, timeout=5)
        assert "error" not in json.loads(reply.data), reply.data
        requests: list[bytes] = []

        async def asked(msg: Msg) -> None:
            requests.append(msg.data)

        await rig.nc.subscribe(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}", cb=asked)
        await eventually_async(lambda: len(requests) > 1, what="a request the limit ends")
        seen_then = len(requests)
        for _ in range(50):
            await asyncio.sleep(0.01)
        asked_meanwhile = len(requests) - seen_then

    # Half a second's pause between requests: a few more at most, not thousands.
    assert asked_meanwhile <= 3
    assert [r.message for r in caplog.records if "ended early" in r.message] == ["pull request ended early"]

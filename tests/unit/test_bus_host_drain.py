"""A stopping actor host hands back what it fetched but never started, only once its pull requests
are closed (no NATS server: a scripted pull subscription; the real-server side is
tests/integration/test_bus_rolling.py and the e2e rolling update).

Why the order matters: a batch pull request stays open on the server after fetch() returned its first
message. A message nak'ed while it is open is handed straight back to it, into the stopping host's
inbox, which nobody reads any more: it then waits ack_wait (the gateway's request timeout, a 504).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import pytest

from actormesh_runtime.bus.host import ActorHost
from actormesh_runtime.bus.pull import EXPIRY_SLACK_S
from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.envelope import Envelope
from actormesh_runtime.settings import RuntimeSettings

FETCH_WAIT_S = 1.0

# Fake loop time: the pull-request expiry the host waits out costs no wall time, and the bounds below
# are exact instead of racing a loaded machine's scheduler.
pytestmark = pytest.mark.looptime


class FakeMsg:
    def __init__(self, name: str, status: str | None = None) -> None:
        self.name = name
        self.headers = {"Status": status} if status else None
        self.naked_at: float | None = None

    async def nak(self, delay: float | None = None) -> None:
        self.naked_at = asyncio.get_running_loop().time()


class FakeInbox:
    """The core subscription behind the pull subscription: what the server delivers to our requests."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[FakeMsg] = asyncio.Queue()

    async def next_msg(self, timeout: float | None = 1.0) -> FakeMsg:  # noqa: ASYNC109 (nats-py signature)
        return await asyncio.wait_for(self.queue.get(), timeout)


class ScriptedPull:
    """fetch() #1 returns `first` as soon as the host is stopping; the server then delivers `late`
    (e.g. `first` itself, bounced back after a too-early nak) to the request fetch() left open."""

    def __init__(self, host_stopping: asyncio.Event, first: FakeMsg, late: list[FakeMsg]) -> None:
        self._sub = FakeInbox()
        self.stopping = host_stopping
        self.first = first
        self.late = late
        self.fetch_started_at: float | None = None
        self.unsubscribed_at: float | None = None
        self.closed_by = 0.0
        """As `PullFeed.closed_by`: the first request stays open until its expiry (plus the slack)."""

    async def fetch(self, batch: int, timeout: float) -> list[FakeMsg]:  # noqa: ASYNC109 (nats-py signature)
        loop = asyncio.get_running_loop()
        if self.fetch_started_at is not None:
            await asyncio.sleep(timeout)
            raise TimeoutError
        self.fetch_started_at = loop.time()
        self.closed_by = self.fetch_started_at + timeout + EXPIRY_SLACK_S
        await self.stopping.wait()
        for i, msg in enumerate(self.late):
            loop.call_later(0.2 + 0.1 * i, self._sub.queue.put_nowait, msg)
        return [self.first]

    async def unsubscribe(self) -> None:
        self.unsubscribed_at = asyncio.get_running_loop().time()


class Idle:
    name: ClassVar[ActorName] = ActorName.SENTIMENT_ANALYZER

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def handle(self, envelope: Envelope) -> None: ...


class Connected:
    is_connected = True


async def _stop_with(first: FakeMsg, late: list[FakeMsg], in_flight_s: float | None = None) -> ScriptedPull:
    """Stop a host whose fetch returns `first` once stopping; with `in_flight_s`, one message is being
    handled when stop() begins and takes that long to finish."""
    settings = RuntimeSettings(mesh_name="t")
    host = ActorHost(Idle(), Connected(), Any, Subjects("t"), settings, fetch_wait_s=FETCH_WAIT_S)  # type: ignore[arg-type]
    pull = ScriptedPull(host._stopping, first, late)
    host._sub = pull  # type: ignore[assignment]
    host._loop_task = asyncio.create_task(host._fetch_loop())
    if in_flight_s is not None:  # as _fetch_loop tracks a started message
        task = asyncio.create_task(asyncio.sleep(in_flight_s))
        host._tasks.add(task)
        task.add_done_callback(host._tasks.discard)
    await asyncio.sleep(0.1)
    await host.stop(grace_s=1)
    return pull


async def test_fetched_while_stopping_is_handed_back_only_after_the_pull_request_expired() -> None:
    first = FakeMsg("m1")
    pull = await _stop_with(first, [])

    assert pull.fetch_started_at is not None
    assert first.naked_at is not None
    assert first.naked_at >= pull.fetch_started_at + FETCH_WAIT_S
    assert pull.unsubscribed_at is not None
    assert pull.unsubscribed_at >= first.naked_at


async def test_deliveries_to_the_open_request_are_read_and_handed_back_too() -> None:
    first, late = FakeMsg("m1"), FakeMsg("m2")
    status = FakeMsg("408", status="408")  # the server closing the request: nothing to hand back
    pull = await _stop_with(first, [late, status])

    assert late.naked_at is not None
    assert status.naked_at is None
    assert pull.fetch_started_at is not None
    # Handed back once the request expired, not earlier (it would bounce into this host's inbox).
    assert late.naked_at >= pull.fetch_started_at + FETCH_WAIT_S
    assert late.naked_at <= pull.fetch_started_at + FETCH_WAIT_S + EXPIRY_SLACK_S + 1e-3


@pytest.mark.parametrize(
    ("in_flight_s", "summary"),
    [
        pytest.param(0.5, (1, 1), id="finished-while-the-unstarted-are-handed-back"),
        pytest.param(60.0, (0, 2), id="grace-expired-handed-back"),
    ],
)
async def test_the_drain_summary_counts_what_was_in_flight_when_it_began(
    caplog: pytest.LogCaptureFixture, in_flight_s: float, summary: tuple[int, int]
) -> None:
    """The drain summary is what an operator reads after a rollout (and the e2e drain test checks):
    a message in flight at SIGTERM that finishes during the hand-back wait (~1.25 s here) was drained,
    not lost; one still running when the grace (1 s) ends was handed back."""
    caplog.set_level(logging.INFO, logger="actormesh_runtime.bus.host")
    await _stop_with(FakeMsg("m1"), [], in_flight_s=in_flight_s)  # m1: fetched, never started

    [stopped] = [r for r in caplog.records if r.getMessage() == "actor host stopped"]
    assert (stopped.finished_in_flight, stopped.handed_back) == summary  # type: ignore[attr-defined]

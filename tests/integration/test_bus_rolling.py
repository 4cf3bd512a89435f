"""Replicas replaced one after another under a steady stream (a rolling update, at bus level).

A message handed to a replica while it stops must reach another replica at once, never wait for
ack_wait: ack_wait here is far longer than the test's deadline, so one stranded message fails it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from actormesh_runtime.bus.host import FETCH_WAIT_S, ActorHost
from actormesh_runtime.envelope import FinalResult
from tests.support.bus_actors import Recorder, SinkAggregator, WorkerActor, bus_rig, fast_settings

pytestmark = pytest.mark.integration

ROLLS = 12
MAX_ROLLS = 40  # rolls go on (bounded) until one of them has caught a message mid-fetch
SEND_EVERY_S = 0.01
ACK_WAIT_S = 300
DEADLINE_S = 60.0  # far below ack_wait even on a loaded machine: only a hand-back is in time


def _handed_back(result: object) -> bool:
    """Answered on a second delivery: a stopping replica handed it back."""
    return isinstance(result, FinalResult) and result.trace[0].attempt > 1


async def test_rolling_replicas_under_steady_load_strand_nothing(nats_server: str) -> None:
    settings = fast_settings(
        nats_server, processing_timeout_s=5, ack_wait_s=ACK_WAIT_S, fetch_batch=8, actor_concurrency=8
    )
    async with bus_rig(settings) as rig:
        rec = Recorder()
        await rig.add_host(SinkAggregator(rig.deps))
        old = await rig.add_host(WorkerActor(rec), own_connection=True, fetch_wait_s=FETCH_WAIT_S)
        sent: list[tuple[float, asyncio.Future[FinalResult]]] = []
        stop = asyncio.Event()

        async def steady() -> None:
            while not stop.is_set():
                sent.append((time.monotonic(), await rig.send(rig.envelope())))
                await asyncio.sleep(SEND_EVERY_S)

        load = asyncio.create_task(steady())
        try:
            for roll in range(MAX_ROLLS):
                new = await rig.add_host(WorkerActor(rec), own_connection=True, fetch_wait_s=FETCH_WAIT_S)
                await asyncio.sleep(0.37)  # out of phase with the replicas' pull requests
                await _stop_like_a_process(old)
                rig.hosts.remove(old)
                old = new
                answered = [f.result() for _, f in sent if f.done() and not f.exception()]
                if roll + 1 >= ROLLS and any(_handed_back(r) for r in answered):
                    break
        finally:
            stop.set()
            await load
        results = await asyncio.wait_for(
            asyncio.gather(*(f for _, f in sent), return_exceptions=True), DEADLINE_S
        )
    stranded = [r for r in results if not isinstance(r, FinalResult)]
    assert stranded == []
    assert len(sent) > 100
    # The stops did catch messages mid-fetch (else this proved nothing): they came back as attempt 2.
    assert any(_handed_back(r) for r in results)


async def _stop_like_a_process(host: ActorHost) -> None:
    """What `ActorProcess` does on SIGTERM: drain the host, then drain its connection."""
    await host.stop()
    with contextlib.suppress(Exception):
        await host.nc.drain()

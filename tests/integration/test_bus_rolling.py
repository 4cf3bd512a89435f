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
SEND_EVERY_S = 0.01
DEADLINE_S = 10.0  # far below ack_wait: only a hand-back reaches another replica in time


async def test_rolling_replicas_under_steady_load_strand_nothing(nats_server: str) -> None:
    settings = fast_settings(
        nats_server, processing_timeout_s=5, ack_wait_s=120, fetch_batch=8, actor_concurrency=8
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
            for _ in range(ROLLS):
                new = await rig.add_host(WorkerActor(rec), own_connection=True, fetch_wait_s=FETCH_WAIT_S)
                await asyncio.sleep(0.37)  # out of phase with the replicas' pull requests
                await _stop_like_a_process(old)
                rig.hosts.remove(old)
                old = new
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
    handed_back = [r for r in results if isinstance(r, FinalResult) and r.trace[0].attempt > 1]
    assert handed_back


async def _stop_like_a_process(host: ActorHost) -> None:
    """What `ActorProcess` does on SIGTERM: drain the host, then drain its connection."""
    await host.stop()
    with contextlib.suppress(Exception):
        await host.nc.drain()

"""Hosts co-located in one process (`actormesh dev`, `actormesh actor A,B`) share one look at the mesh's
streams per check period (`bus.reconcile.StreamCheck`, docs/bus.md): each host used to look at the same
three streams itself, nine hosts 27 requests a period where three do. Each host still checks its own
consumer, and a stream deleted under them is still created again at once (an alarm looks afresh).

A real nats-server; the JetStream API requests are counted by a core subscription to `$JS.API.>`."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator

import pytest
from nats.aio.msg import Msg

from actormesh_runtime.bus import host as host_module
from actormesh_runtime.bus.connection import connect
from actormesh_runtime.bus.process import ActorProcess
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.resources import ActorDeps
from tests.support.bus_actors import (
    WORKER,
    BusRig,
    Recorder,
    SinkAggregator,
    WorkerActor,
    bus_rig,
    fast_settings,
)
from tests.support.eventually import eventually_async

pytestmark = pytest.mark.integration

PERIOD_S = 0.5
PERIODS = 8
ACTORS = [WORKER, ActorName.INTENT_ANALYZER, ActorName.RESPONSE_AGGREGATOR]


@contextlib.asynccontextmanager
async def colocated_hosts(rig: BusRig) -> AsyncIterator[ActorProcess]:
    """`actormesh actor sentiment_analyzer,intent_analyzer,response_aggregator`: one process, one
    connection, three hosts (the two analyzers echo, the aggregator answers the rig)."""

    def factory(name: ActorName, deps: ActorDeps) -> WorkerActor | SinkAggregator:
        return SinkAggregator(deps) if name == ActorName.RESPONSE_AGGREGATOR else WorkerActor(Recorder())

    process = ActorProcess(ACTORS, rig.settings, factory)
    run = asyncio.create_task(process.run())
    try:
        await eventually_async(lambda: len(process.hosts) == len(ACTORS), what="the hosts started")
        yield process
    finally:
        process.stop_event.set()
        await asyncio.gather(run, return_exceptions=True)


async def test_colocated_hosts_share_one_look_at_the_streams_per_period(
    nats_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host_module, "RECONCILE_EVERY_S", PERIOD_S)
    settings = fast_settings(nats_server, actor_http_port=0)
    requests: collections.Counter[str] = collections.Counter()

    async def count(msg: Msg) -> None:
        requests[".".join(msg.subject.split(".")[2:4])] += 1

    monitor = await connect(settings, name="api-monitor")
    try:
        await monitor.subscribe("$JS.API.STREAM.INFO.>", cb=count)
        await monitor.subscribe("$JS.API.CONSUMER.INFO.>", cb=count)
        await monitor.flush()
        async with bus_rig(settings) as rig, colocated_hosts(rig):
            await eventually_async(
                lambda: requests["CONSUMER.INFO"] >= len(ACTORS), what="every host checked its consumer"
            )
            requests.clear()
            # Counted over a number of periods, not timed: a slow machine only makes fewer looks.
            await asyncio.sleep(PERIODS * PERIOD_S)
            streams, consumers = requests["STREAM.INFO"], requests["CONSUMER.INFO"]

            assert streams <= 3 * (PERIODS + 2), f"{streams} stream looks in {PERIODS} periods"
            assert streams >= 3, "the streams are still looked at"
            assert consumers >= len(ACTORS), "each host still checks its own consumer"

            await rig.js.delete_stream(rig.subjects.stream)  # `nats stream rm`
            result = await rig.ask(rig.envelope("after the stream was deleted"), timeout_s=60)
            assert result.response == "echo: after the stream was deleted"
    finally:
        await monitor.close()

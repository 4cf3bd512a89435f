"""Delivery guarantees of the bus against a real nats-server, with small test actors.

Hops and progress; replicas share a consumer without duplicates; a replica killed mid-message and a
crash between publish and ack both still complete with the side effect applied exactly once; the
in-flight bound holds.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from nats.aio.msg import Msg

from actormesh_runtime.envelope import Envelope
from tests.support.bus_actors import (
    ErrorEscalationActor,
    Recorder,
    SinkAggregator,
    WorkerActor,
    bus_rig,
    fast_settings,
    wait_until,
)

pytestmark = pytest.mark.integration


async def test_envelope_walks_the_slip_with_trace_and_progress(nats_server: str) -> None:
    async with bus_rig(fast_settings(nats_server)) as rig:
        worker = Recorder()
        await rig.add_host(WorkerActor(worker))
        await rig.add_host(SinkAggregator(rig.deps))
        env = rig.envelope("where is my order")

        result = await rig.ask(env)

        assert result.message_id == env.message_id
        assert result.response == "echo: where is my order"
        assert [(t.actor.value, t.attempt) for t in result.trace] == [("sentiment_analyzer", 1)]
        await wait_until(lambda: len(rig.progress) == 2, what="two progress events")
        assert [(p.actor.value, p.status) for p in rig.progress] == [
            ("sentiment_analyzer", "done"),
            ("response_aggregator", "done"),
        ]
        assert worker.calls[env.message_id] == 1


async def test_two_replicas_share_one_consumer_without_duplicates(nats_server: str) -> None:
    settings = fast_settings(nats_server, fetch_batch=1, actor_concurrency=1)
    async with bus_rig(settings) as rig:
        per_replica = [Recorder(), Recorder()]

        async def slow(envelope: Envelope, call: int) -> None:
            await asyncio.sleep(0.01)

        for rec in per_replica:
            await rig.add_host(WorkerActor(rec, slow), own_connection=True)
        await rig.add_host(SinkAggregator(rig.deps))
        envelopes = [rig.envelope(f"m{i}") for i in range(30)]

        futures = [await rig.send(env) for env in envelopes]
        results = await asyncio.wait_for(asyncio.gather(*futures), 30)

        assert {r.message_id for r in results} == {e.message_id for e in envelopes}
        combined = per_replica[0].calls + per_replica[1].calls
        assert combined == Counter({e.message_id: 1 for e in envelopes})
        assert all(sum(rec.calls.values()) > 0 for rec in per_replica), "both replicas took work"
        assert len(rig.results) == 30


async def test_replica_killed_mid_message_completes_with_one_side_effect(nats_server: str) -> None:
    settings = fast_settings(nats_server, processing_timeout_s=1.0, ack_wait_s=1.5)
    async with bus_rig(settings) as rig:
        shared = Recorder()
        hang = asyncio.Event()

        async def effect_then_hang_first_time(envelope: Envelope, call: int) -> None:
            shared.apply_effect(f"{envelope.message_id}:refund")
            if call == 1:
                await hang.wait()  # the replica dies here, effect applied, message not acked

        doomed = await rig.add_host(WorkerActor(shared, effect_then_hang_first_time), own_connection=True)
        await rig.add_host(SinkAggregator(rig.deps))
        env = rig.envelope()
        future = await rig.send(env)
        await asyncio.wait_for(shared.started.wait(), 10)

        # Kill: the connection goes away without a nak, the host's tasks die with it.
        await doomed.nc.close()
        if doomed._loop_task is not None:
            doomed._loop_task.cancel()
        for task in list(doomed._tasks):
            task.cancel()
        rig.hosts.remove(doomed)
        await rig.add_host(WorkerActor(shared, effect_then_hang_first_time), own_connection=True)

        result = await asyncio.wait_for(future, 20)

        assert shared.calls[env.message_id] == 2, "redelivered to the surviving replica"
        assert shared.effects == {f"{env.message_id}:refund": 1}
        assert [t.attempt for t in result.trace] == [2]
        await asyncio.sleep(0.3)  # a duplicate result would arrive within this
        assert [r.message_id for r in rig.results] == [env.message_id]


async def test_crash_between_publish_and_ack_is_deduplicated(
    nats_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = fast_settings(nats_server, processing_timeout_s=0.5, ack_wait_s=1.0)
    async with bus_rig(settings) as rig:
        worker, sink = Recorder(), Recorder()
        await rig.add_host(WorkerActor(worker))
        await rig.add_host(SinkAggregator(rig.deps, sink))
        original_ack = Msg.ack
        lost: list[str] = []

        async def ack_lost_once(self: Msg) -> None:
            if ".actor.sentiment_analyzer" in self.subject and not lost:
                lost.append(self.subject)
                raise ConnectionError("simulated crash after publish, before ack")
            await original_ack(self)

        monkeypatch.setattr(Msg, "ack", ack_lost_once)
        env = rig.envelope()

        result = await rig.ask(env)

        await wait_until(lambda: worker.calls[env.message_id] == 2, what="redelivery of the un-acked message")
        await asyncio.sleep(0.5)  # time for a duplicate hop to show up, if the dedup failed
        assert lost, "the fault was injected"
        assert sink.calls[env.message_id] == 1, "the republish to the next step was de-duplicated"
        assert [r.message_id for r in rig.results] == [result.message_id]


async def test_in_flight_bound_per_replica(nats_server: str) -> None:
    settings = fast_settings(nats_server, actor_concurrency=2, fetch_batch=8)
    async with bus_rig(settings) as rig:
        rec = Recorder()

        async def slow(envelope: Envelope, call: int) -> None:
            await asyncio.sleep(0.05)

        await rig.add_host(WorkerActor(rec, slow))
        await rig.add_host(SinkAggregator(rig.deps))
        futures = [await rig.send(rig.envelope(f"m{i}")) for i in range(8)]
        await asyncio.wait_for(asyncio.gather(*futures), 20)

        assert rec.max_active == 2


async def test_deadline_passed_goes_to_error_path(nats_server: str) -> None:
    async with bus_rig(fast_settings(nats_server)) as rig:
        rec = Recorder()
        await rig.add_host(WorkerActor(rec))
        await rig.add_host(ErrorEscalationActor())
        await rig.add_host(SinkAggregator(rig.deps))
        env = rig.envelope(budget_s=-1)

        result = await rig.ask(env)

        assert rec.calls[env.message_id] == 0, "an expired envelope is not worked on"
        assert result.escalated
        assert result.flags == ["error"]

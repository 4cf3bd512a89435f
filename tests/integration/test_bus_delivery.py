"""Delivery guarantees of the bus against a real nats-server, with small test actors.

Hops and progress; replicas share a consumer without duplicates; a replica killed mid-message
completes with one idempotency key for its side effect, ack_wait after it died however long a step
may take; a step longer than ack_wait is not redelivered while it runs; a process that crashes
between publishing the next hop and acking is redelivered and its republish de-duplicated; the
in-flight bound holds.
"Nothing else arrived" is checked with a sentinel message sent afterwards, never a quiet window.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from actormesh_runtime.envelope import Envelope
from tests.support.bus_actors import (
    ErrorEscalationActor,
    Recorder,
    SinkAggregator,
    WorkerActor,
    ask_beside_a_crash,
    bus_rig,
    fast_settings,
)
from tests.support.eventually import eventually_async

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
        await eventually_async(lambda: len(rig.progress) == 2, what="two progress events")
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


@pytest.mark.parametrize("processing_timeout_s", [1.0, 60.0], ids=["short-steps", "long-steps"])
async def test_replica_killed_mid_message_completes_with_one_side_effect(
    nats_server: str, processing_timeout_s: float
) -> None:
    # One message at a time per host, so the sentinel below really comes after everything else.
    # long-steps: the survivor gets the message ack_wait (1.5 s) after the replica died, not after
    # the 61 s an ack_wait kept above the processing timeout used to take (the wait below times out).
    settings = fast_settings(
        nats_server,
        processing_timeout_s=processing_timeout_s,
        ack_wait_s=1.5,
        fetch_batch=1,
        actor_concurrency=1,
    )
    async with bus_rig(settings) as rig:
        shared = Recorder()
        hang = asyncio.Event()

        async def effect_then_hang_first_time(envelope: Envelope, call: int) -> None:
            shared.request_effect(f"{envelope.message_id}:refund")
            if call == 1 and envelope.message != "sentinel":
                await hang.wait()  # the replica dies here, effect requested, message not acked

        doomed = await rig.add_host(WorkerActor(shared, effect_then_hang_first_time), own_connection=True)
        await rig.add_host(SinkAggregator(rig.deps))
        env = rig.envelope()
        future = await rig.send(env)
        await asyncio.wait_for(shared.started.wait(), 10)

        await rig.kill(doomed)
        await rig.add_host(WorkerActor(shared, effect_then_hang_first_time), own_connection=True)

        result = await asyncio.wait_for(future, 20)

        assert shared.calls[env.message_id] == 2, "redelivered to the surviving replica"
        # Both deliveries asked with one idempotency key: the redelivered envelope is the same message.
        assert shared.effect_keys == Counter({f"{env.message_id}:refund": 2})
        assert [t.attempt for t in result.trace] == [2]
        sentinel = await rig.sentinel()
        assert [r.message_id for r in rig.results] == [env.message_id, sentinel.message_id]


async def test_a_step_longer_than_ack_wait_is_kept_alive_not_redelivered(nats_server: str) -> None:
    # One step of 3.5 s, ack_wait 1.5 s: the host resets the ack timer while the step runs (every
    # 0.5 s), so JetStream does not hand the message to another slot while it is being worked on.
    settings = fast_settings(nats_server, processing_timeout_s=6.0, ack_wait_s=1.5)
    async with bus_rig(settings) as rig:
        shared = Recorder()

        async def slow(envelope: Envelope, call: int) -> None:
            if envelope.message != "sentinel":
                await asyncio.sleep(3.5)

        await rig.add_host(WorkerActor(shared, slow))
        await rig.add_host(SinkAggregator(rig.deps))
        env = rig.envelope()

        result = await rig.ask(env)
        sentinel = await rig.sentinel()

        assert shared.calls == Counter({env.message_id: 1, sentinel.message_id: 1}), "never redelivered"
        assert [t.attempt for t in result.trace] == [1]
        assert [r.message_id for r in rig.results] == [env.message_id, sentinel.message_id]


CRASH_AT_ACK = """
import asyncio, os, sys
from nats.aio.msg import Msg
from actormesh_runtime.bus.connection import open_bus
from actormesh_runtime.bus.host import ActorHost
from actormesh_runtime.catalog import Subjects
from actormesh_runtime.settings import RuntimeSettings
from tests.support.bus_actors import Recorder, WorkerActor

async def crash(self: Msg) -> None:
    os._exit(17)  # the process dies after the next hop was published, before the ack reaches NATS

async def main() -> None:
    settings = RuntimeSettings.model_validate_json(sys.argv[1])
    Msg.ack = crash
    nc = await open_bus(settings, name="doomed")
    host = ActorHost(WorkerActor(Recorder()), nc, nc.jetstream(), Subjects(settings.mesh_name), settings)
    await host.start()
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_crash_between_publish_and_ack_is_deduplicated(nats_server: str) -> None:
    # A real crash: the worker runs in its own process, which exits at the moment it would ack, after
    # it published the envelope to the next step. The redelivered message is worked on again by a
    # surviving replica, whose publish of the same hop the stream drops as a duplicate.
    settings = fast_settings(
        nats_server, processing_timeout_s=0.5, ack_wait_s=1.0, fetch_batch=1, actor_concurrency=1
    )
    async with bus_rig(settings) as rig:
        survivor, sink = Recorder(), Recorder()
        await rig.add_host(SinkAggregator(rig.deps, sink))
        env = rig.envelope()
        result, code, stderr = await ask_beside_a_crash(rig, CRASH_AT_ACK, env)
        assert code == 17, f"the worker did not crash at its ack: {stderr}"
        assert result.message_id == env.message_id, "the hop published before the crash completed"

        await rig.add_host(WorkerActor(survivor))
        await eventually_async(lambda: survivor.calls[env.message_id] == 1, what="redelivery to the survivor")
        sentinel = await rig.sentinel()

        assert survivor.calls == Counter({env.message_id: 1, sentinel.message_id: 1})
        assert sink.calls == Counter({env.message_id: 1, sentinel.message_id: 1}), "republish de-duplicated"
        assert [r.message_id for r in rig.results] == [env.message_id, sentinel.message_id]


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

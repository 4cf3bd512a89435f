"""Hop fusion against a real nats-server: co-located hosts hand the envelope on in memory, and the
delivery guarantees of unfused hops still hold.

- the fused steps never see their inboxes, yet each reports progress and a trace entry;
- a process killed mid-chain: the inbound message is redelivered, the whole chain runs again, the
  side effect is asked with one idempotency key, and the caller is answered once;
- a process that dies after the chain's publish, before its ack: the rerun's publish is de-duplicated;
- a fused step that fails is retried by redelivering the chain, and the dead letter names that step.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import Sequence

import pytest

from actormesh_runtime.actors.base import Actor
from actormesh_runtime.bus.fusion import Colocated
from actormesh_runtime.bus.host import ActorHost
from actormesh_runtime.bus.process import ActorProcess
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import Envelope
from tests.support.bus_actors import (
    SECOND_WORKER,
    TWO_WORKER_ROUTE,
    WORKER,
    BusRig,
    Recorder,
    SecondWorkerActor,
    SinkAggregator,
    WorkerActor,
    always_permanent,
    always_transient,
    ask_beside_a_crash,
    assert_rerun_and_answered_once,
    bus_rig,
    effect_then_hang_first_time,
    fail_the_second_step,
    fast_settings,
)
from tests.support.eventually import eventually_async

pytestmark = pytest.mark.integration


async def delivered(rig: BusRig, actor: ActorName) -> int:
    """Messages the stream ever delivered to `actor`'s consumer (0 = every step ran fused)."""
    info = await rig.js.consumer_info(rig.subjects.stream, rig.subjects.consumer(actor))
    return int(info.delivered.consumer_seq or 0)


async def add_process(rig: BusRig, *actors: object) -> list[ActorHost]:
    """Host `actors` as one process would: one connection, one fusion group."""
    nc = await rig.connect("test-process")
    group = Colocated()
    return [await rig.add_host(actor, nc=nc, colocated=group) for actor in actors]  # type: ignore[arg-type]


async def kill_process(rig: BusRig, hosts: list[ActorHost]) -> None:
    for host in hosts:
        await rig.kill(host)


async def test_fused_steps_skip_their_inboxes_and_still_report_every_hop(nats_server: str) -> None:
    async with bus_rig(fast_settings(nats_server)) as rig:
        first, second = Recorder(), Recorder()
        await add_process(rig, WorkerActor(first), SecondWorkerActor(second), SinkAggregator(rig.deps))
        env = rig.envelope("where is my order", steps=TWO_WORKER_ROUTE)

        result = await rig.ask(env)

        assert result.response == "echo: where is my order"
        assert [(t.actor, t.attempt) for t in result.trace] == [(WORKER, 1), (SECOND_WORKER, 1)]
        await eventually_async(lambda: len(rig.progress) == 3, what="three progress events")
        assert [(p.actor, p.status) for p in rig.progress] == [
            (WORKER, "done"),
            (SECOND_WORKER, "done"),
            (ActorName.RESPONSE_AGGREGATOR, "done"),
        ]
        assert (first.calls[env.message_id], second.calls[env.message_id]) == (1, 1)
        assert await delivered(rig, WORKER) == 1
        assert await delivered(rig, SECOND_WORKER) == 0, "the second step ran in memory"
        assert await delivered(rig, ActorName.RESPONSE_AGGREGATOR) == 0


async def test_without_a_group_every_hop_goes_through_the_stream(nats_server: str) -> None:
    async with bus_rig(fast_settings(nats_server)) as rig:
        await rig.add_host(WorkerActor(Recorder()))
        await rig.add_host(SecondWorkerActor(Recorder()))
        await rig.add_host(SinkAggregator(rig.deps))

        await rig.ask(rig.envelope(steps=TWO_WORKER_ROUTE))

        assert await delivered(rig, SECOND_WORKER) == 1
        assert await delivered(rig, ActorName.RESPONSE_AGGREGATOR) == 1


async def test_process_killed_mid_chain_reruns_the_chain_and_answers_once(nats_server: str) -> None:
    settings = fast_settings(
        nats_server, processing_timeout_s=1.0, ack_wait_s=1.5, fetch_batch=1, actor_concurrency=1
    )
    async with bus_rig(settings) as rig:
        first, second, sink = Recorder(), Recorder(), Recorder()

        def process_actors() -> list[object]:
            return [
                WorkerActor(first),
                SecondWorkerActor(second, effect_then_hang_first_time(second)),
                SinkAggregator(rig.deps, sink),
            ]

        doomed = await add_process(rig, *process_actors())
        env = rig.envelope(steps=TWO_WORKER_ROUTE)
        future = await rig.send(env)
        await asyncio.wait_for(second.started.wait(), 10)

        await kill_process(rig, doomed)
        await add_process(rig, *process_actors())
        result = await asyncio.wait_for(future, 20)

        await assert_rerun_and_answered_once(rig, env, result, first, second, sink)


CRASH_AT_ACK = """
import asyncio, os, sys
from nats.aio.msg import Msg
from actormesh_runtime.bus.connection import open_bus
from actormesh_runtime.bus.fusion import Colocated
from actormesh_runtime.bus.host import ActorHost
from actormesh_runtime.catalog import Subjects
from actormesh_runtime.settings import RuntimeSettings
from tests.support.bus_actors import Recorder, SecondWorkerActor, WorkerActor

async def crash(self: Msg) -> None:
    os._exit(17)  # the chain published to the aggregator; the process dies before its ack

async def main() -> None:
    settings = RuntimeSettings.model_validate_json(sys.argv[1])
    Msg.ack = crash
    nc = await open_bus(settings, name="doomed")
    group = Colocated()
    for actor in (WorkerActor(Recorder()), SecondWorkerActor(Recorder())):
        host = ActorHost(actor, nc, nc.jetstream(), Subjects(settings.mesh_name), settings, colocated=group)
        await host.start()
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_crash_after_the_chain_publish_is_deduplicated(nats_server: str) -> None:
    # A real crash: both workers run fused in their own process, which exits at the moment it would
    # ack the inbound message, after the chain published to the aggregator. The surviving process
    # runs the chain again; the stream drops its publish of the same hop as a duplicate.
    settings = fast_settings(
        nats_server, processing_timeout_s=0.5, ack_wait_s=1.0, fetch_batch=1, actor_concurrency=1
    )
    async with bus_rig(settings) as rig:
        first, second, sink = Recorder(), Recorder(), Recorder()
        await rig.add_host(SinkAggregator(rig.deps, sink))
        env = rig.envelope(steps=TWO_WORKER_ROUTE)
        result, code, stderr = await ask_beside_a_crash(rig, CRASH_AT_ACK, env)
        assert code == 17, f"the chain did not crash at its ack: {stderr}"
        assert result.message_id == env.message_id, "the chain's publish before the crash completed"

        await add_process(rig, WorkerActor(first), SecondWorkerActor(second))
        await eventually_async(lambda: second.calls[env.message_id] == 1, what="the chain run again")
        sentinel = await rig.ask(rig.envelope("sentinel", steps=TWO_WORKER_ROUTE))

        assert second.calls == Counter({env.message_id: 1, sentinel.message_id: 1})
        assert sink.calls == Counter({env.message_id: 1, sentinel.message_id: 1}), "republish de-duplicated"
        assert [r.message_id for r in rig.results] == [env.message_id, sentinel.message_id]
        assert await delivered(rig, SECOND_WORKER) == 0


async def one_process(rig: BusRig, actors: Sequence[Actor]) -> None:
    await add_process(rig, *actors)


async def test_a_failing_fused_step_retries_the_chain_then_dead_letters_naming_that_step(
    nats_server: str,
) -> None:
    async with bus_rig(fast_settings(nats_server, max_deliver=3)) as rig:
        failed = await fail_the_second_step(rig, always_transient, one_process)

        message_id = failed.envelope.message_id
        assert (failed.first.calls[message_id], failed.second.calls[message_id]) == (3, 3)
        assert failed.result.escalated
        assert failed.dead_letter.record.deliveries == 3
        assert failed.statuses == [("retrying", 1), ("retrying", 2), ("failed", 3)]


async def test_a_permanent_failure_in_a_fused_step_takes_the_error_path_at_once(nats_server: str) -> None:
    async with bus_rig(fast_settings(nats_server)) as rig:
        failed = await fail_the_second_step(rig, always_permanent, one_process)

        message_id = failed.envelope.message_id
        assert (failed.first.calls[message_id], failed.second.calls[message_id]) == (1, 1)
        record = failed.dead_letter.record
        assert record.permanent
        assert record.envelope is not None
        assert record.envelope.slip.current == SECOND_WORKER, "kept as it was at the failing step"


async def test_a_process_of_several_actors_chains_them_and_drains_cleanly(nats_server: str) -> None:
    # `actormesh actor A,B`: one process, one connection, the two steps fused.
    settings = fast_settings(nats_server, actor_http_port=0)
    first, second = Recorder(), Recorder()
    built: dict[ActorName, Actor] = {WORKER: WorkerActor(first), SECOND_WORKER: SecondWorkerActor(second)}
    process = ActorProcess([WORKER, SECOND_WORKER], settings, lambda name, deps: built[name])
    running = asyncio.create_task(process.run())
    try:
        await eventually_async(lambda: not process.missing(), what="both actors bound")
        async with bus_rig(settings) as rig:
            await rig.add_host(SinkAggregator(rig.deps))
            env = rig.envelope(steps=TWO_WORKER_ROUTE)

            result = await rig.ask(env)

            assert [t.actor for t in result.trace] == [WORKER, SECOND_WORKER]
            assert await delivered(rig, SECOND_WORKER) == 0, "the second step ran in the same process"
    finally:
        process.stop_event.set()
        assert await asyncio.wait_for(running, 15) == 0


def test_the_actor_command_names_an_unknown_actor() -> None:
    from actormesh_runtime.commands.actor import actor_names

    assert actor_names("sentiment_analyzer,intent_analyzer") == [WORKER, SECOND_WORKER]
    with pytest.raises(argparse.ArgumentTypeError, match="unknown actor 'nope'"):
        actor_names("sentiment_analyzer,nope")


async def test_a_chain_longer_than_ack_wait_is_kept_alive_not_redelivered(nats_server: str) -> None:
    # Two fused steps of 1.6 s each: 3.2 s in all, past ack_wait (3 s). Before the second step the
    # host resets the inbound ack timer (JetStream "in progress"), so the chain runs once.
    settings = fast_settings(nats_server, processing_timeout_s=2.0, ack_wait_s=3.0)
    async with bus_rig(settings) as rig:
        first, second = Recorder(), Recorder()

        async def slow(envelope: Envelope, call: int) -> None:
            if envelope.message != "sentinel":
                await asyncio.sleep(1.6)

        await add_process(
            rig, WorkerActor(first, slow), SecondWorkerActor(second, slow), SinkAggregator(rig.deps)
        )
        env = rig.envelope(steps=TWO_WORKER_ROUTE)

        result = await rig.ask(env)
        sentinel = await rig.ask(rig.envelope("sentinel", steps=TWO_WORKER_ROUTE))

        assert [(t.actor, t.attempt) for t in result.trace] == [(WORKER, 1), (SECOND_WORKER, 1)]
        assert first.calls == Counter({env.message_id: 1, sentinel.message_id: 1}), "never redelivered"
        assert [r.message_id for r in rig.results] == [env.message_id, sentinel.message_id]

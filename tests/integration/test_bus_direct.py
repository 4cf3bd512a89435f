"""Direct hops (`DIRECT_HOPS`) against a real nats-server: hosts on connections of their own (one
process per actor) hand the envelope on over core NATS, and the chain's origin delivery is settled
once, by whoever ends the chain. The delivery guarantees of hops through the stream still hold:

- only the first step's consumer delivers; every step still reports progress and a trace entry;
- a process killed mid-chain: the origin is redelivered, the whole chain runs again, the side effect
  is asked with one idempotency key, and the caller is answered once;
- a failing step is retried where its hop arrived, from the envelope as the hop brought it, not by
  redelivering the origin (the steps before it run once); the dead letter names that step; a host
  that stops while a retry waits out its backoff hands the chain back to its origin, with what is left
  of the backoff; a retry whose origin's ack wait ran out while it waited is dropped;
- a hop that no process receives goes through the stream and waits there for its actor, and so do
  the hops to a process that does not have direct hops (a rollout of the setting);
- a chain or a single step longer than ack_wait is kept alive, and so is one whose hop waits that
  long for a busy actor; a process killed mid-chain is rerun ack_wait after it died, however long a
  step may take; a draining host hands its hops back at once;
- a hop that names no origin of this mesh is dropped without stopping the host;
- a hop that waited past its origin's ack wait is dropped: the origin's redelivery answers, once;
- a chain run again after it answered (its origin's ack lost) answers what the history stored;
- the direct-hop metrics count what happened (sent, diverted to the stream, waiting, expired).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from prometheus_client import REGISTRY

from actormesh_runtime.actors.base import Actor
from actormesh_runtime.actors.response_aggregator import ResponseAggregator
from actormesh_runtime.bus import dlq
from actormesh_runtime.bus.ack_timer import AckTimer
from actormesh_runtime.bus.connection import ensure_consumer
from actormesh_runtime.bus.direct import CLOCK_SLACK_S, SETTLE, RemoteOrigin, encode_hop, seal, seal_key
from actormesh_runtime.bus.host import ActorHost
from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.envelope import DraftResponse, Envelope, GuardrailVerdict
from actormesh_runtime.errors import TransientError
from actormesh_runtime.history.service import HistoryService
from actormesh_runtime.settings import RuntimeSettings
from tests.support.bus_actors import (
    SECOND_WORKER,
    TWO_WORKER_ROUTE,
    WORKER,
    Behaviour,
    BusRig,
    ErrorEscalationActor,
    Recorder,
    SecondWorkerActor,
    SinkAggregator,
    WorkerActor,
    always_permanent,
    always_transient,
    assert_rerun_and_answered_once,
    bus_rig,
    effect_then_hang_first_time,
    fail_the_second_step,
    fast_settings,
)
from tests.support.eventually import eventually_async
from tests.support.nats_flush import server_has_seen

pytestmark = pytest.mark.integration

AGGREGATOR = ActorName.RESPONSE_AGGREGATOR


def direct_settings(nats_url: str, **overrides: object) -> RuntimeSettings:
    return fast_settings(nats_url, direct_hops=True, **overrides)


def sample(metric: str, actor: ActorName, **labels: str) -> float:
    """A direct-hop metric of this test process (every rig here shares the registry: compare deltas)."""
    return REGISTRY.get_sample_value(metric, {"actor": actor.value, **labels}) or 0.0


async def delivered(rig: BusRig, actor: ActorName) -> int:
    """Messages the stream ever delivered to `actor`'s consumer (0 = every hop to it was direct)."""
    info = await rig.js.consumer_info(rig.subjects.stream, rig.subjects.consumer(actor))
    return int(info.delivered.consumer_seq or 0)


async def settled(rig: BusRig, actor: ActorName) -> bool:
    """Every delivery of `actor`'s consumer acked (none waits to be redelivered)."""
    info = await rig.js.consumer_info(rig.subjects.stream, rig.subjects.consumer(actor))
    return not info.num_ack_pending


async def stored_for(rig: BusRig, actor: ActorName) -> int:
    """Messages in the stream on `actor`'s inbox subject (its consumer may not exist yet)."""
    subject = rig.subjects.actor(actor)
    info = await rig.js.stream_info(rig.subjects.stream, subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


async def own_process(rig: BusRig, actor: object) -> ActorHost:
    return await rig.add_host(actor, own_connection=True)  # type: ignore[arg-type]


async def one_process_each(rig: BusRig, actors: Sequence[Actor]) -> None:
    for actor in actors:
        await own_process(rig, actor)


async def fail_first_time(envelope: Envelope, call: int) -> None:
    if call == 1:
        raise TransientError("upstream 503")


async def second_step_held(rig: BusRig) -> tuple[Recorder, Recorder, asyncio.Event, ActorHost]:
    """The two-worker route in three processes, whose second step holds every envelope until the
    returned event is set: the recorders, that event, and the second step's host."""
    first, second = Recorder(), Recorder()
    release = asyncio.Event()

    async def held(envelope: Envelope, call: int) -> None:
        await release.wait()

    await own_process(rig, WorkerActor(first))
    host = await own_process(rig, SecondWorkerActor(second, held))
    await own_process(rig, SinkAggregator(rig.deps))
    return first, second, release, host


async def test_direct_hops_skip_the_later_inboxes_and_settle_the_origin_once(nats_server: str) -> None:
    async with bus_rig(direct_settings(nats_server)) as rig:
        first, second = Recorder(), Recorder()
        await own_process(rig, WorkerActor(first))
        await own_process(rig, SecondWorkerActor(second))
        await own_process(rig, SinkAggregator(rig.deps))
        env = rig.envelope("where is my order", steps=TWO_WORKER_ROUTE)
        sent_before = [sample("actormesh_direct_hops_sent_total", a) for a in (SECOND_WORKER, AGGREGATOR)]

        result = await rig.ask(env)

        assert result.response == "echo: where is my order"
        sent = [sample("actormesh_direct_hops_sent_total", a) for a in (SECOND_WORKER, AGGREGATOR)]
        assert [after - before for after, before in zip(sent, sent_before, strict=True)] == [1, 1]
        assert [(t.actor, t.attempt) for t in result.trace] == [(WORKER, 1), (SECOND_WORKER, 1)]
        await eventually_async(lambda: len(rig.progress) == 3, what="three progress events")
        assert [(p.actor, p.status) for p in rig.progress] == [
            (WORKER, "done"),
            (SECOND_WORKER, "done"),
            (AGGREGATOR, "done"),
        ]
        assert (first.calls[env.message_id], second.calls[env.message_id]) == (1, 1)
        assert await delivered(rig, WORKER) == 1
        assert await delivered(rig, SECOND_WORKER) == 0, "the second hop went over core NATS"
        assert await delivered(rig, AGGREGATOR) == 0
        # The aggregator, in another process, acked the first step's delivery.
        await eventually_async(lambda: settled(rig, WORKER), what="the origin acked")


async def test_a_sent_hop_keeps_its_bytes_for_the_fallback_but_not_the_envelope(nats_server: str) -> None:
    """The sender keeps each hop's fallback for seconds (`RETURN_WINDOW_S`), at hundreds of hops a
    second: it must hold the payload, not the decoded envelope's object tree."""
    async with bus_rig(direct_settings(nats_server)) as rig:
        first_host = await own_process(rig, WorkerActor(Recorder()))
        await own_process(rig, SecondWorkerActor(Recorder()))
        await own_process(rig, SinkAggregator(rig.deps))

        await rig.ask(rig.envelope(steps=TWO_WORKER_ROUTE))

        assert first_host._sender is not None
        kept = [fallback for _, _, fallback in first_host._sender._sent.values()]
        assert len(kept) == 1, "the one hop this host sent is still inside its return window"
        held = [cell.cell_contents for cell in kept[0].__closure__ or ()]
        assert any(isinstance(value, bytes) and b'"message_id"' in value for value in held)
        assert not [value for value in held if isinstance(value, Envelope)]


@pytest.mark.parametrize("processing_timeout_s", [1.0, 60.0], ids=["short-steps", "long-steps"])
async def test_a_process_killed_mid_chain_reruns_the_chain_from_its_origin(
    nats_server: str, processing_timeout_s: float
) -> None:
    # long-steps: the rerun comes ack_wait (1.5 s) after the process died, not the 61 s an ack_wait
    # kept above the processing timeout used to take (the wait below would time out).
    settings = direct_settings(
        nats_server,
        processing_timeout_s=processing_timeout_s,
        ack_wait_s=1.5,
        fetch_batch=1,
        actor_concurrency=1,
    )
    async with bus_rig(settings) as rig:
        first, second, sink = Recorder(), Recorder(), Recorder()
        await own_process(rig, WorkerActor(first))
        doomed = await own_process(rig, SecondWorkerActor(second, effect_then_hang_first_time(second)))
        await own_process(rig, SinkAggregator(rig.deps, sink))
        env = rig.envelope(steps=TWO_WORKER_ROUTE)
        future = await rig.send(env)
        await asyncio.wait_for(second.started.wait(), 10)

        await rig.kill(doomed)
        await own_process(rig, SecondWorkerActor(second, effect_then_hang_first_time(second)))
        result = await asyncio.wait_for(future, 20)

        await assert_rerun_and_answered_once(rig, env, result, first, second, sink)


async def test_a_failing_step_retries_in_its_own_process_then_dead_letters_naming_that_step(
    nats_server: str,
) -> None:
    async with bus_rig(direct_settings(nats_server, max_deliver=3)) as rig:
        failed = await fail_the_second_step(rig, always_transient, one_process_each)

        message_id = failed.envelope.message_id
        assert (failed.first.calls[message_id], failed.second.calls[message_id]) == (1, 3), (
            "the first step ran once"
        )
        assert failed.result.escalated
        assert failed.dead_letter.record.deliveries == 3
        assert "after 3 attempts" in failed.dead_letter.record.reason
        assert failed.statuses == [("retrying", 1), ("retrying", 2), ("failed", 3)]
        assert await delivered(rig, WORKER) == 1, "the origin was delivered once: no retry redelivered it"
        assert await delivered(rig, SECOND_WORKER) == 0
        assert await settled(rig, WORKER)


async def test_a_retried_step_starts_again_from_the_envelope_its_hop_brought(nats_server: str) -> None:
    # The first try changes the envelope, then fails: the retry must not see what it left behind.
    first, second, sink = Recorder(), Recorder(), Recorder()

    async def spoil_then_fail_first_time(envelope: Envelope, call: int) -> None:
        if call == 1:
            envelope.message = "spoilt by the failed try"
            raise TransientError("upstream 503")

    async with bus_rig(direct_settings(nats_server)) as rig:
        await one_process_each(
            rig,
            [
                WorkerActor(first),
                SecondWorkerActor(second, spoil_then_fail_first_time),
                SinkAggregator(rig.deps, sink),
            ],
        )
        envelope = rig.envelope("where is my order", steps=TWO_WORKER_ROUTE)

        result = await rig.ask(envelope)

        message_id = envelope.message_id
        assert result.response == "echo: where is my order"
        assert (first.calls[message_id], second.calls[message_id], sink.calls[message_id]) == (1, 2, 1)
        assert [(t.actor, t.attempt) for t in result.trace] == [(WORKER, 1), (SECOND_WORKER, 2)]
        statuses = [(p.status, p.attempt) for p in rig.progress if p.actor == SECOND_WORKER]
        assert statuses == [("retrying", 1), ("done", 2)]
        assert await delivered(rig, WORKER) == 1
        await eventually_async(lambda: settled(rig, WORKER), what="the origin acked by the chain's end")


async def test_a_host_stopping_while_a_retry_waits_hands_the_chain_back_to_its_origin(
    nats_server: str,
) -> None:
    # Backoff, grace and ack wait of 300 s: the stop must not wait out the backoff, and the origin goes
    # back with what is left of it. The nak is a settle to the first step's actor (the origin is its
    # consumer's delivery), which a plain subscriber beside its queue group overhears.
    settings = direct_settings(
        nats_server,
        redelivery_backoff_s=[300.0],
        drain_grace_s=300.0,
        ack_wait_s=300.0,
        processing_timeout_s=30.0,
    )
    async with bus_rig(settings) as rig:
        await own_process(rig, WorkerActor(Recorder()))
        waiting = await own_process(rig, SecondWorkerActor(Recorder(), fail_first_time))
        await own_process(rig, SinkAggregator(rig.deps))
        observer: NATS = await rig.connect("test-observer")
        naks: asyncio.Queue[bytes] = asyncio.Queue()

        async def overhear(msg: Msg) -> None:
            if msg.data.startswith(SETTLE) and b"\n-NAK" in msg.data:
                await naks.put(msg.data.partition(b"\n")[2])

        await observer.subscribe(rig.subjects.direct(WORKER), cb=overhear)
        await server_has_seen(observer)
        await rig.send(rig.envelope(steps=TWO_WORKER_ROUTE))
        await eventually_async(
            lambda: ("retrying", 1) in [(p.status, p.attempt) for p in rig.progress], what="the retry's wait"
        )

        await asyncio.wait_for(waiting.stop(), 120)  # not the 300 s backoff or grace

        verb, _, args = (await asyncio.wait_for(naks.get(), 30)).partition(b" ")
        assert verb == b"-NAK"
        delay_s = json.loads(args)["delay"] / 1e9
        assert 200 < delay_s <= 300, f"handed back with what is left of the backoff, not {delay_s} s"
        assert await delivered(rig, WORKER) == 1, "not yet run again: the rest of the backoff is the server's"


async def test_a_permanent_failure_takes_the_error_path_at_once(nats_server: str) -> None:
    async with bus_rig(direct_settings(nats_server)) as rig:
        failed = await fail_the_second_step(rig, always_permanent, one_process_each)

        message_id = failed.envelope.message_id
        assert (failed.first.calls[message_id], failed.second.calls[message_id]) == (1, 1)
        record = failed.dead_letter.record
        assert record.permanent
        assert record.envelope is not None
        assert record.envelope.slip.current == SECOND_WORKER, "kept as it was at the failing step"
        await eventually_async(lambda: settled(rig, WORKER), what="the origin acked")


async def test_a_hop_no_process_receives_waits_in_the_stream_for_its_actor(nats_server: str) -> None:
    async with bus_rig(direct_settings(nats_server)) as rig:
        first, second = Recorder(), Recorder()
        await own_process(rig, WorkerActor(first))
        await own_process(rig, SinkAggregator(rig.deps))
        env = rig.envelope(steps=TWO_WORKER_ROUTE)
        diverted = ("actormesh_direct_hops_diverted_total", SECOND_WORKER)
        before = sample(*diverted, reason="no_receiver")
        future = await rig.send(env)

        # Nobody subscribes to the second step's direct subject: the hop went through the stream,
        # and the first step's delivery is settled rather than left to be redelivered.
        await eventually_async(lambda: stored_for(rig, SECOND_WORKER), what="the hop stored")
        await eventually_async(lambda: settled(rig, WORKER), what="the origin acked")
        assert not future.done()
        assert sample(*diverted, reason="no_receiver") == before + 1

        await own_process(rig, SecondWorkerActor(second))
        result = await asyncio.wait_for(future, 20)

        assert [(t.actor, t.attempt) for t in result.trace] == [(WORKER, 1), (SECOND_WORKER, 1)]
        assert (first.calls[env.message_id], second.calls[env.message_id]) == (1, 1), "no rerun"
        assert await delivered(rig, SECOND_WORKER) == 1


@pytest.mark.parametrize(
    ("first_s", "second_s", "processing_timeout_s", "ack_wait_s"),
    [
        # Two steps of 1.6 s in two processes: 3.2 s in all, past ack_wait (3 s).
        pytest.param(1.6, 1.6, 2.0, 3.0, id="a-chain-longer"),
        # One step of 3.5 s against an ack_wait of 1.5 s (resets every 0.5 s while it runs).
        pytest.param(0.0, 3.5, 6.0, 1.5, id="a-step-longer"),
    ],
)
async def test_work_longer_than_ack_wait_keeps_the_origin_alive_and_runs_once(
    nats_server: str, first_s: float, second_s: float, processing_timeout_s: float, ack_wait_s: float
) -> None:
    # Each process resets the origin's ack timer while it works on the chain (the hop says when it was
    # last reset), so the origin is never redelivered and the chain runs once.
    settings = direct_settings(nats_server, processing_timeout_s=processing_timeout_s, ack_wait_s=ack_wait_s)
    async with bus_rig(settings) as rig:
        first, second = Recorder(), Recorder()

        def taking(seconds: float) -> Behaviour:
            async def step(envelope: Envelope, call: int) -> None:
                if envelope.message != "sentinel":
                    await asyncio.sleep(seconds)

            return step

        await own_process(rig, WorkerActor(first, taking(first_s)))
        await own_process(rig, SecondWorkerActor(second, taking(second_s)))
        await own_process(rig, SinkAggregator(rig.deps))
        env = rig.envelope(steps=TWO_WORKER_ROUTE)

        result = await rig.ask(env)
        sentinel = await rig.ask(rig.envelope("sentinel", steps=TWO_WORKER_ROUTE))

        assert [(t.actor, t.attempt) for t in result.trace] == [(WORKER, 1), (SECOND_WORKER, 1)]
        assert first.calls == Counter({env.message_id: 1, sentinel.message_id: 1}), "never redelivered"
        assert second.calls[env.message_id] == 1
        assert [r.message_id for r in rig.results] == [env.message_id, sentinel.message_id]


async def test_a_hop_held_behind_busy_steps_past_ack_wait_keeps_its_origin_alive_and_runs_once(
    nats_server: str,
) -> None:
    # One slot at the second step, three chains whose second step takes 1.6 s: the third hop waits
    # 3.2 s there, past ack_wait (3 s). Its origin is kept alive meanwhile, so it is not redelivered.
    settings = direct_settings(nats_server, processing_timeout_s=2.0, ack_wait_s=3.0, actor_concurrency=1)
    async with bus_rig(settings) as rig:
        first, second = Recorder(), Recorder()

        async def slow(envelope: Envelope, call: int) -> None:
            if envelope.message != "sentinel":
                await asyncio.sleep(1.6)

        await own_process(rig, WorkerActor(first))
        await own_process(rig, SecondWorkerActor(second, slow))
        await own_process(rig, SinkAggregator(rig.deps))
        envs = [rig.envelope(f"m{i}", steps=TWO_WORKER_ROUTE) for i in range(3)]
        futures = [await rig.send(env) for env in envs]

        results = await asyncio.wait_for(asyncio.gather(*futures), 30)
        sentinel = await rig.ask(rig.envelope("sentinel", steps=TWO_WORKER_ROUTE))

        assert all(
            [(t.actor, t.attempt) for t in r.trace] == [(WORKER, 1), (SECOND_WORKER, 1)] for r in results
        )
        assert first.calls == Counter({**{env.message_id: 1 for env in envs}, sentinel.message_id: 1}), (
            "no rerun"
        )
        assert [r.message_id for r in rig.results] == [*(env.message_id for env in envs), sentinel.message_id]


async def test_a_draining_host_hands_its_direct_hops_back_at_once(nats_server: str) -> None:
    # ack_wait is far past the ask's timeout: only a hand-back (a nak of the origin) can answer in time.
    settings = direct_settings(
        nats_server, processing_timeout_s=30.0, ack_wait_s=60.0, actor_concurrency=1, drain_grace_s=0.5
    )
    async with bus_rig(settings) as rig:
        first, second, release, draining = await second_step_held(rig)
        busy = rig.envelope("busy", steps=TWO_WORKER_ROUTE)
        waiting = rig.envelope("waiting", steps=TWO_WORKER_ROUTE)
        busy_future = await rig.send(busy)
        await asyncio.wait_for(second.started.wait(), 10)
        waiting_future = await rig.send(waiting)  # held in the subscription: the one slot is taken
        assert draining._direct_sub is not None
        hops = draining._direct_sub
        await eventually_async(lambda: hops.delivered == 2, what="the second hop at the busy replica")

        await draining.stop()
        # Another replica only now: both chains reach it only if the draining one handed them back.
        await own_process(rig, SecondWorkerActor(Recorder()))

        results = await asyncio.wait_for(asyncio.gather(busy_future, waiting_future), 20)
        release.set()
        assert {r.message_id for r in results} == {busy.message_id, waiting.message_id}
        assert first.calls[busy.message_id] == 2, "the busy chain was handed back when the grace ran out"
        assert first.calls[waiting.message_id] == 2, "the waiting hop was handed back on stop"
        assert second.calls == Counter({busy.message_id: 1}), "the draining replica never ran the second"


async def test_a_retry_waits_no_longer_than_the_deadline_then_takes_the_error_path(nats_server: str) -> None:
    # A backoff far past the envelope's budget: waiting it out would only hold a slot for a try that
    # must fail; the caller gets the error path's answer once the deadline is reached.
    settings = direct_settings(nats_server, redelivery_backoff_s=[120.0], ack_wait_s=60.0)
    async with bus_rig(settings) as rig:
        await own_process(rig, WorkerActor(Recorder()))
        await own_process(rig, SecondWorkerActor(Recorder(), always_transient))
        await own_process(rig, ErrorEscalationActor())
        await own_process(rig, SinkAggregator(rig.deps))
        envelope = rig.envelope(steps=TWO_WORKER_ROUTE, budget_s=3)

        result = await rig.ask(envelope, timeout_s=30)

        assert result.flags == ["error"]
        [stored] = await dlq.list_records(rig.js, rig.subjects)
        assert stored.record.actor == SECOND_WORKER
        assert stored.record.permanent, "the deadline, not the attempts, ended it"


async def test_a_retry_that_waited_past_its_origins_ack_wait_is_dropped_and_the_origin_reruns_it(
    nats_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NATS unreachable for the ack timer (its resets fail) while the retry waits out a backoff longer
    # than ack_wait + CLOCK_SLACK_S: the origin is redelivered and answers; the stale retry must not.
    async def reset_not_sent(timer: AckTimer) -> None:
        raise ConnectionError("nats-server unreachable")

    monkeypatch.setattr(AckTimer, "_reset", reset_not_sent)
    settings = direct_settings(
        nats_server, ack_wait_s=2.0, redelivery_backoff_s=[6.0], processing_timeout_s=1.5
    )
    first, second = Recorder(), Recorder()

    async with bus_rig(settings) as rig:
        await own_process(rig, WorkerActor(first))
        await own_process(rig, SecondWorkerActor(second, fail_first_time))
        await own_process(rig, SinkAggregator(rig.deps))
        dropped_before = sample("actormesh_direct_hops_expired_total", SECOND_WORKER)
        envelope = rig.envelope(steps=TWO_WORKER_ROUTE)

        result = await rig.ask(envelope)
        await eventually_async(
            lambda: sample("actormesh_direct_hops_expired_total", SECOND_WORKER) - dropped_before == 1,
            what="the stale retry dropped",
        )
        await rig.sentinel()

        message_id = envelope.message_id
        assert [(t.actor, t.attempt) for t in result.trace] == [(WORKER, 2), (SECOND_WORKER, 2)], "the rerun"
        assert (first.calls[message_id], second.calls[message_id]) == (2, 2), "the retry did not run"
        assert [r.message_id for r in rig.results].count(message_id) == 1, "answered once"


async def test_a_process_without_direct_hops_gets_its_hops_through_the_stream(nats_server: str) -> None:
    # Mid-rollout of the setting: the middle actor's process does not have it yet.
    async with bus_rig(direct_settings(nats_server)) as rig:
        first, second = Recorder(), Recorder()
        await own_process(rig, WorkerActor(first))
        nc = await rig.connect("test-old-process")
        old = ActorHost(SecondWorkerActor(second), nc, nc.jetstream(), rig.subjects,
                        rig.settings.model_copy(update={"direct_hops": False}), fetch_wait_s=0.3)  # fmt: skip
        await old.start()
        rig.hosts.append(old)
        await own_process(rig, SinkAggregator(rig.deps))
        env = rig.envelope(steps=TWO_WORKER_ROUTE)

        result = await rig.ask(env)

        assert [(t.actor, t.attempt) for t in result.trace] == [(WORKER, 1), (SECOND_WORKER, 1)]
        assert (first.calls[env.message_id], second.calls[env.message_id]) == (1, 1)
        assert await delivered(rig, SECOND_WORKER) == 1, "to the old process through the stream"
        assert await delivered(rig, AGGREGATOR) == 1, "and on from it through the stream"
        await eventually_async(lambda: settled(rig, WORKER), what="the origin acked")


async def test_a_hop_that_names_no_origin_of_this_mesh_is_dropped(nats_server: str) -> None:
    async with bus_rig(direct_settings(nats_server)) as rig:
        await own_process(rig, WorkerActor(Recorder()))
        second = Recorder()
        await own_process(rig, SecondWorkerActor(second))
        await own_process(rig, SinkAggregator(rig.deps))
        stranger: NATS = await rig.connect("test-stranger")
        payload = rig.envelope(steps=TWO_WORKER_ROUTE).to_bytes()
        target = rig.subjects.direct(SECOND_WORKER)
        await stranger.publish(target, payload)
        await stranger.publish(target, encode_hop("$JS.ACK.OTHER-STREAM.c.1.1.1.1.0", 1.0, payload))
        await server_has_seen(stranger)

        result = await rig.ask(rig.envelope("sentinel", steps=TWO_WORKER_ROUTE))

        assert result.response == "echo: sentinel"
        assert sum(second.calls.values()) == 1, "only the sentinel reached the actor"


async def test_a_settle_without_the_origin_actors_seal_is_not_carried_out(nats_server: str) -> None:
    # The first step's processes seal with their NATS credential; a stranger that read a hop's ack
    # subject (here: a plain subscriber beside the second step's queue group) but holds another
    # credential cannot have the first step terminate that delivery.
    async with bus_rig(direct_settings(nats_server, nats_password=None)) as rig:
        sealed_by = direct_settings(
            nats_server, mesh_name=rig.settings.mesh_name, nats_user="w", nats_password="pw"
        )
        first, second = Recorder(), Recorder()
        release = asyncio.Event()

        async def held(envelope: Envelope, call: int) -> None:
            await release.wait()

        worker = ActorHost(WorkerActor(first), rig.nc, rig.js, rig.subjects, sealed_by, fetch_wait_s=0.3)
        await worker.start()
        rig.hosts.append(worker)
        await own_process(rig, SecondWorkerActor(second, held))
        await own_process(rig, SinkAggregator(rig.deps))
        stranger: NATS = await rig.connect("test-stranger")
        hops: asyncio.Queue[bytes] = asyncio.Queue()

        async def overhear(msg: Msg) -> None:
            await hops.put(msg.data)

        await stranger.subscribe(rig.subjects.direct(SECOND_WORKER), cb=overhear)
        await server_has_seen(stranger)
        future = await rig.send(rig.envelope(steps=TWO_WORKER_ROUTE))
        ack_subject, _, _ = (await asyncio.wait_for(hops.get(), 10)).partition(b" ")
        forged = (
            SETTLE
            + ack_subject
            + b" "
            + seal(seal_key("a guess"), ack_subject.decode()).encode()
            + b"\n+TERM"
        )

        refused_before = sample("actormesh_direct_settles_refused_total", WORKER)
        await stranger.publish(rig.subjects.direct(WORKER), forged)
        await server_has_seen(stranger)

        await eventually_async(
            lambda: sample("actormesh_direct_settles_refused_total", WORKER) == refused_before + 1,
            what="the forged settle refused",
        )
        assert not await settled(rig, WORKER), "the origin is still pending"
        release.set()
        result = await asyncio.wait_for(future, 20)
        assert not result.flags
        await eventually_async(lambda: settled(rig, WORKER), what="the chain's own settle carried out")
        assert await delivered(rig, WORKER) == 1


async def test_a_hop_that_waited_past_its_origins_ack_wait_is_dropped_and_the_origin_reruns_it(
    nats_server: str,
) -> None:
    # The first step's delivery is fetched here, by hand, and left unacked: it is the origin. Its hop
    # reaches the second step's process stamped as older than ack_wait (a backlog held it that long).
    settings = direct_settings(nats_server, ack_wait_s=2.0, processing_timeout_s=1.0)
    async with bus_rig(settings) as rig:
        first, second = Recorder(), Recorder()
        second_host = await own_process(rig, SecondWorkerActor(second))
        await own_process(rig, SinkAggregator(rig.deps))
        await ensure_consumer(rig.js, rig.subjects, WORKER, settings)
        env = rig.envelope(steps=TWO_WORKER_ROUTE)
        future = await rig.send(env)
        by_hand = await rig.js.pull_subscribe_bind(
            durable=rig.subjects.consumer(WORKER), stream=rig.subjects.stream
        )
        [origin] = await by_hand.fetch(1, timeout=10)
        hop = Envelope.from_bytes(origin.data)
        hop.slip.advance()
        stale = time.time() - (second_host.ack_wait_s + CLOCK_SLACK_S + 1)
        expired_before = sample("actormesh_direct_hops_expired_total", SECOND_WORKER)

        await rig.nc.publish(
            rig.subjects.direct(SECOND_WORKER), encode_hop(origin.reply, stale, hop.to_bytes())
        )
        await eventually_async(
            lambda: sample("actormesh_direct_hops_expired_total", SECOND_WORKER) == expired_before + 1,
            what="the stale hop dropped",
        )
        await by_hand.unsubscribe()
        await own_process(rig, WorkerActor(first))  # JetStream redelivers the origin to it
        result = await asyncio.wait_for(future, 20)
        sentinel = await rig.ask(rig.envelope("sentinel", steps=TWO_WORKER_ROUTE))

        assert [(t.actor, t.attempt) for t in result.trace] == [(WORKER, 2), (SECOND_WORKER, 2)], "a rerun"
        assert second.calls == Counter({env.message_id: 1, sentinel.message_id: 1}), "the stale hop never ran"
        assert [r.message_id for r in rig.results] == [env.message_id, sentinel.message_id], "answered once"


async def test_hops_held_behind_a_busy_step_show_as_waiting_until_they_start(nats_server: str) -> None:
    async with bus_rig(direct_settings(nats_server, actor_concurrency=1)) as rig:
        _, second, release, busy = await second_step_held(rig)
        envs = [rig.envelope(f"m{i}", steps=TWO_WORKER_ROUTE) for i in range(3)]
        futures = [await rig.send(env) for env in envs]
        assert busy._direct_sub is not None
        hops = busy._direct_sub

        def waiting() -> float:
            return sample("actormesh_direct_hops_waiting", SECOND_WORKER)

        # Settled: the first hop runs in the only slot, the other two are held for it.
        await eventually_async(
            lambda: hops.delivered == 3 and hops.pending_msgs == 0 and second.started.is_set(),
            what="three hops at the busy process, one of them running",
        )
        assert waiting() == 2
        assert second.max_active == 1
        release.set()
        results = await asyncio.wait_for(asyncio.gather(*futures), 20)

        assert {r.message_id for r in results} == {env.message_id for env in envs}
        assert waiting() == 0


async def test_a_chain_run_again_after_its_answer_was_stored_answers_the_stored_one(
    nats_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The soak's find: the origin's ack lost after the chain answered and stored (nats-server killed
    just after it), so JetStream redelivers the origin and the whole chain runs again, this time to
    another answer. The caller and the history must both see the first."""
    # The rerun comes ack_wait (3 s) after the lost ack; the first turn must be stored by then, or the
    # rerun rightly sends nothing and leaves the answer to the gateway's history check.
    settings = direct_settings(nats_server, sqlite_db_path=str(tmp_path / "history.db"))
    origins_of_the_first_step = f"$JS.ACK.{Subjects(settings.mesh_name).stream}.{WORKER.value}."
    real_ack = RemoteOrigin.ack  # the aggregator's process settles the first step's delivery
    lost: list[str] = []

    async def ack_lost_once(msg: RemoteOrigin) -> None:
        if not lost and (msg.reply or "").startswith(origins_of_the_first_step):
            lost.append(msg.reply)  # as if the server died with it in its socket buffer
            return
        await real_ack(msg)

    monkeypatch.setattr(RemoteOrigin, "ack", ack_lost_once)

    async def answers_by_call(envelope: Envelope, call: int) -> None:
        envelope.draft = DraftResponse(text=f"Answer of run {call}.")
        envelope.guardrail = GuardrailVerdict(approved=True)

    history = HistoryService(settings)
    await history.start()
    try:
        async with bus_rig(settings) as rig:
            first = Recorder()
            await own_process(rig, WorkerActor(first, answers_by_call))
            await own_process(rig, ResponseAggregator(rig.deps))
            env = rig.envelope()
            answered = await rig.ask(env)
            await eventually_async(lambda: first.calls[env.message_id] == 2, what="the chain run again")
            await eventually_async(lambda: len(rig.results) == 2, what="the rerun's reply", timeout_s=10)
            stored = await history.store.result(env.message_id)
    finally:
        await history.stop()

    assert lost, "the origin's first ack really was lost"
    assert answered.response == "Answer of run 1."
    assert [r.response for r in rig.results] == ["Answer of run 1."] * 2, "the rerun answers the stored one"
    assert stored is not None
    assert stored.result.response == "Answer of run 1."

"""The error path against a real nats-server: poison messages reach the dead-letter stream after
`max_deliver` (or at once when permanent), the caller always gets a graceful reply, undecodable
bytes are kept, and a dead letter can be replayed.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from prometheus_client import REGISTRY

from actormesh_runtime.bus import dlq
from actormesh_runtime.bus.errorpath import dead_letter_garbage
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import Envelope
from actormesh_runtime.errors import InvalidEnvelope, PermanentError, TransientError
from tests.support.bus_actors import (
    BusRig,
    ErrorEscalationActor,
    Recorder,
    SinkAggregator,
    WorkerActor,
    always_permanent,
    always_transient,
    bus_rig,
    fast_settings,
)
from tests.support.eventually import eventually_async
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


def _sample(counter: str) -> float:
    labels = {"actor": "sentiment_analyzer"}
    if counter == "dead_lettered":
        labels["reason"] = "exhausted"
    value = REGISTRY.get_sample_value(f"actormesh_messages_{counter}_total", labels)
    return value or 0.0


async def dead_letters(rig: BusRig) -> list[dlq.StoredDeadLetter]:
    """The dead-letter stream's records, once there is at least one."""
    return await eventually_async(lambda: dlq.list_records(rig.js, rig.subjects), what="a dead letter")


async def test_poison_message_is_dead_lettered_after_max_deliver_and_caller_gets_reply(
    nats_server: str,
) -> None:
    async with bus_rig(fast_settings(nats_server, max_deliver=3)) as rig:
        rec = Recorder()
        await rig.add_host(WorkerActor(rec, always_transient))
        await rig.add_host(ErrorEscalationActor())
        await rig.add_host(SinkAggregator(rig.deps))
        env = rig.envelope()
        before = {name: _sample(name) for name in ("failed", "redelivered", "dead_lettered")}

        result = await rig.ask(env)

        assert rec.calls[env.message_id] == 3
        assert {name: _sample(name) - before[name] for name in before} == {
            "failed": 3,
            "redelivered": 2,
            "dead_lettered": 1,
        }
        assert result.escalated
        assert result.reference_id is not None
        assert result.flags == ["error"]
        records = await dlq.list_records(rig.js, rig.subjects)
        assert len(records) == 1
        record = records[0].record
        assert record.actor == ActorName.SENTIMENT_ANALYZER
        assert record.deliveries == 3
        assert not record.permanent
        assert "upstream 503" in record.reason
        assert record.envelope is not None
        assert record.envelope.error is not None
        assert record.envelope.slip.current == ActorName.SENTIMENT_ANALYZER, "stored at the failed step"
        statuses = [p.status for p in rig.progress if p.actor == ActorName.SENTIMENT_ANALYZER]
        assert statuses == ["retrying", "retrying", "failed"]


async def test_permanent_error_is_not_retried(nats_server: str) -> None:
    async with bus_rig(fast_settings(nats_server, max_deliver=4)) as rig:
        rec = Recorder()
        await rig.add_host(WorkerActor(rec, always_permanent))
        await rig.add_host(ErrorEscalationActor())
        await rig.add_host(SinkAggregator(rig.deps))
        env = rig.envelope()

        result = await rig.ask(env)

        assert rec.calls[env.message_id] == 1
        assert result.escalated
        [stored] = await dlq.list_records(rig.js, rig.subjects)
        assert stored.record.permanent
        assert stored.record.reason == "PermanentError: order id is malformed"


async def test_processing_timeout_counts_as_transient(nats_server: str) -> None:
    settings = fast_settings(nats_server, max_deliver=2, processing_timeout_s=0.2, ack_wait_s=1.0)
    async with bus_rig(settings) as rig:
        rec = Recorder()

        async def too_slow(envelope: Envelope, call: int) -> None:
            await asyncio.sleep(5)

        await rig.add_host(WorkerActor(rec, too_slow))
        await rig.add_host(ErrorEscalationActor())
        await rig.add_host(SinkAggregator(rig.deps))

        result = await rig.ask(rig.envelope())

        assert result.flags == ["error"]
        [stored] = await dlq.list_records(rig.js, rig.subjects)
        assert "processing timeout" in stored.record.reason


async def test_a_message_whose_every_delivery_crashed_takes_the_error_path_without_the_actor(
    nats_server: str,
) -> None:
    # Each of the max_deliver deliveries is lost to a crashed replica (no nak, no ack). The next
    # delivery must not hand the possibly poisonous envelope to the actor again: error path at once.
    settings = fast_settings(nats_server, max_deliver=2, processing_timeout_s=2.0, ack_wait_s=3.0)
    async with bus_rig(settings) as rig:
        await rig.add_host(ErrorEscalationActor())
        await rig.add_host(SinkAggregator(rig.deps))
        env = rig.envelope()
        future = await rig.send(env)
        never = asyncio.Event()

        async def hang(envelope: Envelope, call: int) -> None:
            await never.wait()

        for _ in range(settings.max_deliver):
            doomed_calls = Recorder()
            doomed = await rig.add_host(WorkerActor(doomed_calls, hang), own_connection=True)
            await asyncio.wait_for(doomed_calls.started.wait(), 15)
            await rig.kill(doomed)
        survivor = Recorder()
        await rig.add_host(WorkerActor(survivor), own_connection=True)

        result = await asyncio.wait_for(future, 20)

        assert survivor.calls[env.message_id] == 0, "a delivery past max_deliver never reaches the actor"
        assert result.flags == ["error"]
        [stored] = await dead_letters(rig)
        assert stored.record.reason.startswith("deliveries exhausted")


async def test_a_transient_failure_is_redelivered_only_after_its_backoff(nats_server: str) -> None:
    settings = fast_settings(nats_server, max_deliver=3, redelivery_backoff_s=[1.0])
    async with bus_rig(settings) as rig:
        started: list[float] = []

        async def fail_once(envelope: Envelope, call: int) -> None:
            started.append(time.monotonic())
            if call == 1:
                raise TransientError("upstream 503")

        await rig.add_host(WorkerActor(Recorder(), fail_once))
        await rig.add_host(SinkAggregator(rig.deps))

        result = await rig.ask(rig.envelope())

        assert result.flags == []
        assert len(started) == 2
        # A lower bound only: a slow machine can make the gap longer, never shorter.
        assert started[1] - started[0] >= 0.9


async def test_poison_aggregator_still_answers_the_caller(nats_server: str) -> None:
    async with bus_rig(fast_settings(nats_server)) as rig:
        sink = Recorder()
        await rig.add_host(WorkerActor(Recorder()))
        await rig.add_host(ErrorEscalationActor())
        await rig.add_host(SinkAggregator(rig.deps, sink, poison=True))
        env = rig.envelope()

        result = await rig.ask(env)

        assert sink.calls[env.message_id] == 2, "normal path, then once more on the error path"
        assert result.flags == ["error"]
        assert result.escalated, "the error-mode escalation reference reaches the caller"
        assert "something went wrong" in result.response
        records = await dlq.list_records(rig.js, rig.subjects)
        assert [r.record.actor for r in records] == [ActorName.RESPONSE_AGGREGATOR] * 2
        history = await rig.js.stream_info(rig.subjects.stream, subjects_filter=rig.subjects.history_events)
        assert history.state.subjects == {rig.subjects.history_events: 1}, "the fallback is recorded too"


async def test_failing_error_handler_falls_through_to_aggregator(nats_server: str) -> None:
    class BrokenEscalation(ErrorEscalationActor):
        async def handle(self, envelope: Envelope) -> None:
            raise PermanentError("escalation backend down")

    async with bus_rig(fast_settings(nats_server)) as rig:
        await rig.add_host(WorkerActor(Recorder(), always_permanent))
        await rig.add_host(BrokenEscalation())
        await rig.add_host(SinkAggregator(rig.deps))

        result = await rig.ask(rig.envelope())

        assert result.response == "error reply"
        assert not result.escalated
        records = await dlq.list_records(rig.js, rig.subjects)
        assert [r.record.actor for r in records] == [
            ActorName.SENTIMENT_ANALYZER,
            ActorName.ESCALATION_ROUTER,
        ]


async def test_undecodable_payload_is_dead_lettered_and_terminated(nats_server: str) -> None:
    async with bus_rig(fast_settings(nats_server)) as rig:
        rec = Recorder()
        await rig.add_host(WorkerActor(rec))
        await rig.js.publish(rig.subjects.actor(ActorName.SENTIMENT_ANALYZER), b"\xffnot an envelope")

        records = await dead_letters(rig)
        assert records[0].record.envelope is None
        assert records[0].record.raw is not None
        assert "not an envelope" in records[0].record.raw
        assert records[0].record.reason.startswith("InvalidEnvelope")
        info = await rig.js.consumer_info(
            rig.subjects.stream, rig.subjects.consumer(ActorName.SENTIMENT_ANALYZER)
        )
        assert info.num_ack_pending == 0
        assert info.num_pending == 0
        with pytest.raises(dlq.ReplayError):
            await dlq.replay(rig.js, rig.subjects, records[0].id)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"card 4111 1111 1111 1111 ssn 123-45-6789", id="not-json"),
        pytest.param(b'{"message": "card 4111 1111 1111 1111 ssn 123-45-6789"}', id="not-an-envelope"),
    ],
)
async def test_undecodable_payload_is_kept_and_logged_redacted(
    nats_server: str, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    # Nobody screened these bytes: neither the stored copy, nor the reason, nor the log may quote them.
    async with bus_rig(fast_settings(nats_server)) as rig:
        await rig.add_host(WorkerActor(Recorder()))
        await rig.js.publish(rig.subjects.actor(ActorName.SENTIMENT_ANALYZER), payload)
        records = await dead_letters(rig)

    [stored] = records
    assert stored.record.raw is not None
    assert "[REDACTED-CARD]" in stored.record.raw
    assert "[REDACTED-SSN]" in stored.record.raw
    assert stored.record.reason.startswith("InvalidEnvelope: ")
    assert any(r.getMessage() == "dead-lettered undecodable payload" for r in caplog.records)
    # Needles with a space: random hex ids in these texts may hold "4111" by chance.
    for text in (stored.record.model_dump_json(), caplog.text, *(str(r.__dict__) for r in caplog.records)):
        assert "4111 1111" not in text
        assert "123-45-6789" not in text


async def test_dead_letter_replay_completes_and_removes_the_record(nats_server: str) -> None:
    async with bus_rig(fast_settings(nats_server, max_deliver=2)) as rig:
        rec = Recorder()
        broken = {"on": True}

        async def fails_while_broken(envelope: Envelope, call: int) -> None:
            if broken["on"]:
                raise TransientError("inventory service down")

        await rig.add_host(WorkerActor(rec, fails_while_broken))
        await rig.add_host(ErrorEscalationActor())
        await rig.add_host(SinkAggregator(rig.deps))
        env = rig.envelope("cancel ORD-10001")
        first = await rig.ask(env)
        assert first.flags == ["error"]
        [stored] = await dlq.list_records(rig.js, rig.subjects)

        broken["on"] = False
        replayed = await dlq.replay(rig.js, rig.subjects, stored.id)
        await eventually_async(lambda: len(rig.results) == 2, what="the replayed result")

        second = rig.results[1]
        assert replayed.headers.replay == 1
        assert replayed.error is None
        assert second.message_id == env.message_id
        assert second.response == "echo: cancel ORD-10001"
        assert second.flags == []
        assert await dlq.list_records(rig.js, rig.subjects) == []
        with pytest.raises(dlq.ReplayError):
            await dlq.replay(rig.js, rig.subjects, stored.id)


async def test_dlq_command_lists_and_replays(nats_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    from actormesh_runtime.cli import main

    async with bus_rig(fast_settings(nats_server)) as rig:
        broken = {"on": True}

        async def fails_while_broken(envelope: Envelope, call: int) -> None:
            if broken["on"]:
                raise PermanentError("bad data")

        await rig.add_host(WorkerActor(Recorder(), fails_while_broken))
        await rig.add_host(ErrorEscalationActor())
        await rig.add_host(SinkAggregator(rig.deps))
        env = rig.envelope()
        await rig.ask(env)
        base = ["dlq", "--nats-url", nats_server, "--mesh", rig.settings.mesh_name]

        assert await asyncio.to_thread(main, [*base, "list", "--json"]) == 0
        [line] = capsys.readouterr().out.splitlines()
        listed = json.loads(line)
        assert listed["message_id"] == env.message_id
        assert listed["actor"] == "sentiment_analyzer"
        assert listed["reason"] == "PermanentError: bad data"

        broken["on"] = False
        assert await asyncio.to_thread(main, [*base, "replay", str(listed["id"])]) == 0
        assert f"replayed {listed['id']}: {env.message_id} -> sentiment_analyzer" in capsys.readouterr().out
        await eventually_async(lambda: len(rig.results) == 2, what="replayed result")
        assert rig.results[1].flags == []

        assert await asyncio.to_thread(main, [*base, "list"]) == 0
        assert capsys.readouterr().out == ""
        assert await asyncio.to_thread(main, [*base, "replay", str(listed["id"])]) == 1


async def test_dlq_command_names_each_kind_and_refuses_what_is_no_id(
    nats_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from actormesh_runtime.cli import main

    async with bus_rig(fast_settings(nats_server)) as rig:
        problem = InvalidEnvelope("not JSON")
        await dead_letter_garbage(
            rig.js, rig.subjects, ActorName.INTENT_ANALYZER, b"garbage", problem, dedup_key="g-1"
        )
        base = ["dlq", "--nats-url", nats_server, "--mesh", rig.settings.mesh_name]
        assert await asyncio.to_thread(main, [*base, "list"]) == 0
        [line] = capsys.readouterr().out.splitlines()
        assert " invalid " in line, line  # was shown as "permanent", unlike `list --json`
        for bad in ("0", "-3", "x"):
            with pytest.raises(SystemExit) as refused:
                await asyncio.to_thread(main, [*base, "replay", bad])
            assert refused.value.code == 2
            assert "is not a dead letter id" in capsys.readouterr().err


async def test_dlq_command_fails_at_once_when_nats_cannot_be_reached(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from actormesh_runtime.cli import main

    port = free_port()  # nothing listens on it
    url = f"nats://admin:s3cret@127.0.0.1:{port}"
    # A margin, not a measurement: before, the command retried every second for as long as one waited.
    code = await asyncio.wait_for(asyncio.to_thread(main, ["dlq", "--nats-url", url, "list"]), 30)
    assert code == 2
    err = capsys.readouterr().err
    assert f"cannot reach NATS at nats://127.0.0.1:{port}" in err
    assert "s3cret" not in err

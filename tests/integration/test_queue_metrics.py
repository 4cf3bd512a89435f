"""Queue gauges against a real nats-server: publish N, consume M, and the gauges say what JetStream holds.

Also: the dead-letter depth by actor and reason (including records stored under the old subject), a
waiting pull request, no series for a consumer that does not exist, and the history service serving
the same gauges on its /metrics.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from prometheus_client import REGISTRY

from actormesh_runtime.bus import dlq
from actormesh_runtime.bus.connection import ensure_consumer, open_bus
from actormesh_runtime.bus.health import HealthServer
from actormesh_runtime.bus.queue_metrics import QueueMetrics
from actormesh_runtime.catalog import ActorName, DeadLetterReason, Subjects
from actormesh_runtime.envelope import Envelope
from actormesh_runtime.errors import PermanentError, TransientError
from actormesh_runtime.history.service import HistoryService
from actormesh_runtime.settings import RuntimeSettings
from tests.support.bus_actors import (
    ErrorEscalationActor,
    Recorder,
    SinkAggregator,
    WorkerActor,
    bus_rig,
    fast_settings,
)
from tests.support.eventually import eventually_async

pytestmark = pytest.mark.integration

SENTIMENT = ActorName.SENTIMENT_ANALYZER
INTENT = ActorName.INTENT_ANALYZER


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def _bus(settings: RuntimeSettings) -> tuple[NATS, JetStreamContext, Subjects]:
    nc = await open_bus(settings, name="queue-metrics-test")
    return nc, nc.jetstream(), Subjects(settings.mesh_name)


async def test_consumer_gauges_after_publish_n_consume_m(nats_server: str) -> None:
    settings = fast_settings(nats_server, ack_wait_s=60.0, processing_timeout_s=2.0)
    nc, js, subjects = await _bus(settings)
    try:
        await ensure_consumer(js, subjects, SENTIMENT, settings)
        for i in range(10):
            await js.publish(subjects.actor(SENTIMENT), f"m{i}".encode(), stream=subjects.stream)
        sub = await js.pull_subscribe_bind(durable=subjects.consumer(SENTIMENT), stream=subjects.stream)
        first = await sub.fetch(4, timeout=5)
        assert len(first) == 4
        await first[0].ack()
        await first[1].ack()
        await first[2].nak()  # comes back as a redelivery
        # first[3] stays unacknowledged. Fetch (holding everything) until the nak'ed one is back.
        held = [first[3]]
        while not any(m.metadata.num_delivered == 2 for m in held):
            held += await sub.fetch(1, timeout=5)
        delivered = {m.metadata.sequence.stream for m in [*first, *held]}

        gauges = QueueMetrics(js, subjects, interval_s=0)
        await gauges.refresh()

        consumer = {"consumer": SENTIMENT.value}
        assert sample("actormesh_queue_pending_messages", **consumer) == 10 - len(delivered)
        assert sample("actormesh_queue_ack_pending_messages", **consumer) == len(held) == len(delivered) - 2
        assert sample("actormesh_queue_redelivered_messages", **consumer) == 1
        assert sample("actormesh_queue_waiting_pull_requests", **consumer) == 0
        # Work-queue retention: the two acked messages are gone from the stream.
        assert sample("actormesh_stream_messages", stream="work") == 8
        assert (sample("actormesh_stream_bytes", stream="work") or 0) > 0
        # No consumer, no series (not a misleading zero).
        assert sample("actormesh_queue_pending_messages", consumer=ActorName.ESCALATION_ROUTER.value) is None
        assert (sample("actormesh_queue_metrics_last_success_timestamp_seconds") or 0) > 0

        for msg in held:
            await msg.ack_sync()
        await gauges.refresh()
        assert sample("actormesh_queue_ack_pending_messages", **consumer) == 0
        assert sample("actormesh_queue_redelivered_messages", **consumer) == 0
        assert sample("actormesh_stream_messages", stream="work") == 10 - len(delivered)
    finally:
        await nc.close()


async def test_waiting_pull_request_is_counted(nats_server: str) -> None:
    settings = fast_settings(nats_server)
    nc, js, subjects = await _bus(settings)
    try:
        await ensure_consumer(js, subjects, INTENT, settings)
        sub = await js.pull_subscribe_bind(durable=subjects.consumer(INTENT), stream=subjects.stream)
        idle = asyncio.create_task(sub.fetch(1, timeout=10))
        gauges = QueueMetrics(js, subjects, interval_s=0)

        async def one_waiting() -> bool:
            await gauges.refresh()
            return sample("actormesh_queue_waiting_pull_requests", consumer=INTENT.value) == 1

        await eventually_async(one_waiting, what="one waiting pull request", timeout_s=5)
        assert sample("actormesh_queue_waiting_pull_requests", consumer=INTENT.value) == 1
        idle.cancel()
    finally:
        await nc.close()


async def _fail_by_text(envelope: Envelope, call: int) -> None:
    if "permanent" in envelope.message:
        raise PermanentError("order id is malformed")
    raise TransientError("upstream 503")


async def test_dead_letter_depth_by_actor_and_reason(nats_server: str) -> None:
    """Through the real error path: permanent and exhausted failures, undecodable bytes, and a record
    stored under the old subject (no reason token)."""
    async with bus_rig(fast_settings(nats_server, max_deliver=2)) as rig:
        await rig.add_host(WorkerActor(Recorder(), _fail_by_text))
        await rig.add_host(ErrorEscalationActor())
        await rig.add_host(SinkAggregator(rig.deps))
        for text in ("permanent 1", "permanent 2", "transient"):
            await rig.ask(rig.envelope(text))
        await rig.js.publish(rig.subjects.actor(SENTIMENT), b"\xffnot an envelope")
        legacy = dlq.DeadLetter(actor=ActorName.DECISION_ROUTER, reason="old", permanent=True, deliveries=1)
        old_subject = f"{rig.subjects.dlq_prefix}.decision_router"
        await rig.js.publish(old_subject, legacy.model_dump_json().encode(), stream=rig.subjects.dlq_stream)
        gauges = QueueMetrics(rig.js, rig.subjects, interval_s=0)

        def depth(actor: str, reason: str) -> float | None:
            return sample("actormesh_dead_letters", actor=actor, reason=reason)

        async def one_invalid() -> bool:  # the undecodable payload is dead-lettered asynchronously
            await gauges.refresh()
            return depth(SENTIMENT.value, "invalid") == 1

        await eventually_async(one_invalid, what="the invalid dead letter", timeout_s=4)
        assert depth(SENTIMENT.value, "invalid") == 1
        assert depth(SENTIMENT.value, "permanent") == 2
        assert depth(SENTIMENT.value, "exhausted") == 1
        assert depth("decision_router", "unknown") == 1
        assert depth(ActorName.RESPONSE_GENERATOR.value, "permanent") == 0  # present, zero
        assert sample("actormesh_stream_messages", stream="dead_letter") == 5

        # Deleting a record (what `dlq replay` does after re-publishing) shrinks the depth.
        records = await dlq.list_records(rig.js, rig.subjects)
        first_permanent = next(r for r in records if r.record.category is DeadLetterReason.PERMANENT)
        await rig.js.delete_msg(rig.subjects.dlq_stream, first_permanent.id)
        await gauges.refresh()
        assert depth(SENTIMENT.value, "permanent") == 1


async def test_history_service_refreshes_and_serves_the_gauges(nats_server: str, tmp_path: object) -> None:
    settings = fast_settings(nats_server, queue_metrics_interval_s=0.1, sqlite_db_path=f"{tmp_path}/h.db")
    nc, js, subjects = await _bus(settings)
    health = HealthServer(lambda: [], port=0)
    port = await health.start()
    try:
        await ensure_consumer(js, subjects, SENTIMENT, settings)
        for i in range(3):
            await js.publish(subjects.actor(SENTIMENT), f"m{i}".encode(), stream=subjects.stream)
        async with HistoryService(settings, nc=nc):
            await eventually_async(
                lambda: sample("actormesh_queue_pending_messages", consumer=SENTIMENT.value) == 3,
                what="the history service's first refresh",
            )
            async with httpx.AsyncClient() as client:
                text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        assert 'actormesh_queue_pending_messages{consumer="sentiment_analyzer"} 3.0' in text
        assert 'actormesh_queue_pending_messages{consumer="history_writer"} 0.0' in text
    finally:
        await health.stop()
        await nc.close()

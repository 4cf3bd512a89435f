"""Pure parts of the queue gauges (dead-letter counts from per-subject counts, reason classes), and
the refresh loop's stop."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from nats.js import JetStreamContext

from actormesh_runtime.bus.dlq import DeadLetter
from actormesh_runtime.bus.queue_metrics import QueueMetrics, consumers, dead_letter_counts
from actormesh_runtime.catalog import ActorName, DeadLetterReason, Subjects

SUBJECTS = Subjects("blue")


def test_counts_by_actor_and_reason_with_zeros_and_legacy_subjects() -> None:
    counts = dead_letter_counts(
        SUBJECTS,
        {
            "actormesh.blue.dlq.intent_analyzer.permanent": 3,
            "actormesh.blue.dlq.intent_analyzer.exhausted": 1,
            "actormesh.blue.dlq.decision_router": 2,  # stored before reasons were in the subject
            "actormesh.green.dlq.intent_analyzer.permanent": 7,  # another mesh's: ignored
        },
    )
    assert counts[("intent_analyzer", "permanent")] == 3
    assert counts[("intent_analyzer", "exhausted")] == 1
    assert counts[("decision_router", "unknown")] == 2
    assert counts[("sentiment_analyzer", "invalid")] == 0
    assert len(counts) == len(ActorName) * len(DeadLetterReason) + 1


def test_subject_carries_the_reason_and_the_wildcard_covers_them() -> None:
    assert SUBJECTS.dlq(ActorName.INTENT_ANALYZER, DeadLetterReason.EXHAUSTED) == (
        "actormesh.blue.dlq.intent_analyzer.exhausted"
    )
    assert SUBJECTS.dlq(ActorName.INTENT_ANALYZER) == "actormesh.blue.dlq.intent_analyzer.*"


def test_record_category() -> None:
    base = {"actor": ActorName.SENTIMENT_ANALYZER, "reason": "x", "deliveries": 1}
    # Records stored before `kind` existed: derived.
    assert DeadLetter(**base, permanent=True, raw="garbage").category is DeadLetterReason.INVALID
    # An envelope dropped for size does not turn an exhausted record into an invalid one.
    too_big = DeadLetter(**base, permanent=False, raw="{...", kind=DeadLetterReason.EXHAUSTED)
    assert too_big.category is DeadLetterReason.EXHAUSTED


def test_reported_consumers_are_the_actors_and_the_history_writer() -> None:
    assert consumers(SUBJECTS) == [a.value for a in ActorName] + ["history_writer"]


async def test_stop_ends_the_loop_when_the_cancellation_is_lost_inside_a_refresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Python 3.11's `asyncio.wait_for` (what nats-py's requests await) returns a reply that lands in
    the same loop step as the cancel and drops the cancellation; nats-py also turns one into its own
    TimeoutError. stop() must still end the loop instead of waiting forever on it."""
    gauges = QueueMetrics(cast(JetStreamContext, None), SUBJECTS, interval_s=0.01)
    replies: list[asyncio.Future[None]] = []
    asked = asyncio.Event()

    async def refresh() -> None:
        reply: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        replies.append(reply)
        asked.set()
        await asyncio.wait_for(reply, timeout=60)

    monkeypatch.setattr(gauges, "refresh", refresh)
    gauges.start()
    await asyncio.wait_for(asked.wait(), timeout=5)
    replies[-1].set_result(None)  # NATS answers just as the service stops
    # Not wait_for(stop()): its timeout would cancel stop() and so deliver a second cancel.
    stopping = asyncio.create_task(gauges.stop())
    done, _ = await asyncio.wait({stopping}, timeout=5)
    stopping.cancel()
    assert stopping in done, "stop() hangs: the refresh loop outlived its cancellation"

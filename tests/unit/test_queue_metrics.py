"""Pure parts of the queue gauges: dead-letter counts from per-subject counts, and reason classes."""

from __future__ import annotations

from actormesh_runtime.bus.dlq import DeadLetter
from actormesh_runtime.bus.queue_metrics import consumers, dead_letter_counts
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

"""Stream and consumer configuration of the bus (pure functions, no server)."""

from __future__ import annotations

import pytest
from nats.js.api import AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType
from pydantic import ValidationError

from actormesh_runtime.bus.connection import (
    DLQ_MAX_MSGS,
    SPARE_DELIVERIES,
    consumer_config,
    dlq_stream_config,
    escalations_stream_config,
    work_stream_config,
)
from actormesh_runtime.bus.host import backoff_for
from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.settings import RuntimeSettings


def _settings(**kw: object) -> RuntimeSettings:
    return RuntimeSettings(**kw)  # type: ignore[arg-type]


def test_one_work_queue_stream_per_mesh_with_a_duplicate_window() -> None:
    cfg = work_stream_config(Subjects("blue"), _settings(duplicate_window_s=90))

    assert cfg.name == "ACTORMESH-blue"
    assert cfg.retention == RetentionPolicy.WORK_QUEUE
    assert cfg.subjects == [
        "actormesh.blue.actor.*",
        "actormesh.blue.history",
        "actormesh.blue.approvals.execute",  # an approved action, for execution_coordinator
        "actormesh.blue.approvals.outcome",  # its result, for the history service
    ]
    assert cfg.duplicate_window == 90


@pytest.mark.parametrize("replicas", [1, 3])
def test_both_streams_are_as_replicated_as_configured(replicas: int) -> None:
    settings = _settings(nats_stream_replicas=replicas)

    assert work_stream_config(Subjects("blue"), settings).num_replicas == replicas
    assert dlq_stream_config(Subjects("blue"), settings).num_replicas == replicas


def test_two_meshes_never_share_a_subject_or_stream() -> None:
    blue, green = Subjects("blue"), Subjects("green")
    s = _settings()

    assert work_stream_config(blue, s).name != work_stream_config(green, s).name
    assert not set(blue.stream_subjects) & set(green.stream_subjects)
    assert blue.actor(ActorName.INTENT_ANALYZER) != green.actor(ActorName.INTENT_ANALYZER)


def test_dead_letter_stream_keeps_records_with_limits() -> None:
    cfg = dlq_stream_config(Subjects("blue"), _settings())

    assert cfg.name == "ACTORMESH-blue-DLQ"
    assert cfg.retention == RetentionPolicy.LIMITS
    assert cfg.subjects == ["actormesh.blue.dlq.>"]
    assert cfg.max_age
    assert cfg.max_age > 0


def test_consumer_is_a_shared_durable_pull_consumer_with_explicit_acks() -> None:
    settings = _settings(max_deliver=5, processing_timeout_s=10, ack_wait_s=30)
    cfg = consumer_config(Subjects("blue"), ActorName.DECISION_ROUTER, settings)

    assert cfg.durable_name == "decision_router"
    assert cfg.deliver_subject is None, "pull, not push"
    assert cfg.ack_policy == AckPolicy.EXPLICIT
    assert cfg.filter_subject == "actormesh.blue.actor.decision_router"
    assert cfg.ack_wait == 30
    assert cfg.max_deliver == 5 + SPARE_DELIVERIES


def test_ack_wait_is_taken_as_configured_even_below_the_processing_timeout() -> None:
    # Running steps reset the timer (bus.ack_timer), so a short ack_wait costs no redelivery of a
    # slow step; it only brings a dead replica's message back sooner.
    settings = _settings(processing_timeout_s=20, ack_wait_s=5)

    assert consumer_config(Subjects("blue"), ActorName.DECISION_ROUTER, settings).ack_wait == 5


def test_ack_wait_below_one_second_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="ack_wait_s"):
        _settings(ack_wait_s=0.5)


@pytest.mark.parametrize(
    ("schedule", "attempt", "delay"),
    [([1, 2, 5], 1, 1), ([1, 2, 5], 2, 2), ([1, 2, 5], 3, 5), ([1, 2, 5], 9, 5), ([], 1, 0)],
)
def test_backoff_follows_the_schedule_and_repeats_its_last_entry(
    schedule: list[float], attempt: int, delay: float
) -> None:
    assert backoff_for(_settings(redelivery_backoff_s=schedule), attempt) == delay


def test_both_streams_survive_a_restart_and_drop_the_oldest_when_full() -> None:
    settings = _settings(duplicate_window_s=90)
    for cfg in (
        work_stream_config(Subjects("blue"), settings),
        dlq_stream_config(Subjects("blue"), settings),
    ):
        assert (cfg.storage, cfg.discard, cfg.duplicate_window) == (StorageType.FILE, DiscardPolicy.OLD, 90)
        assert "blue" in (cfg.description or "")
    assert dlq_stream_config(Subjects("blue"), settings).max_msgs == DLQ_MAX_MSGS


@pytest.mark.parametrize(("concurrency", "pending"), [(1, 1000), (15, 1000), (16, 1024), (40, 2560)])
def test_a_consumer_starts_from_the_oldest_message_and_bounds_unacked_ones(
    concurrency: int, pending: int
) -> None:
    cfg = consumer_config(
        Subjects("blue"), ActorName.DECISION_ROUTER, _settings(actor_concurrency=concurrency)
    )
    assert cfg.name == cfg.durable_name == "decision_router"
    assert cfg.deliver_policy == DeliverPolicy.ALL
    assert cfg.max_ack_pending == pending
    assert "decision_router" in (cfg.description or "")


def test_retention_and_spare_deliveries_are_what_docs_bus_md_says() -> None:
    """docs/bus.md: dead letters 14 days / 100k records, escalation events 7 days / 100k events, and the
    server's max_deliver is MAX_DELIVER + 2 (the tests above compare with the constants themselves)."""
    subjects, settings = Subjects("blue"), _settings(max_deliver=4)
    dead, events = dlq_stream_config(subjects, settings), escalations_stream_config(subjects, settings)
    assert (dead.max_age, dead.max_msgs) == (14 * 24 * 3600, 100_000)
    assert (events.max_age, events.max_msgs) == (7 * 24 * 3600, 100_000)
    assert consumer_config(subjects, ActorName.DECISION_ROUTER, settings).max_deliver == 6

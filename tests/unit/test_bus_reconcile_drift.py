"""`bus.reconcile.drift`: what a running host compares to decide that a stream or its consumer was
edited by hand. The server echoes a config with its defaults filled in; that is no drift, a field
someone changed is (with what it was and what it is put back to)."""

from __future__ import annotations

from typing import Any

import pytest
from nats.js.api import DiscardPolicy, StreamConfig

from actormesh_runtime.bus.connection import consumer_config, work_stream_config
from actormesh_runtime.bus.reconcile import _CONSUMER_FIELDS, _STREAM_FIELDS, drift
from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.settings import RuntimeSettings

SETTINGS = RuntimeSettings(mesh_name="shop", ack_wait_s=10.0, max_deliver=4)
SUBJECTS = Subjects("shop")
STREAM = work_stream_config(SUBJECTS, SETTINGS)
CONSUMER = consumer_config(SUBJECTS, ActorName.INTENT_ANALYZER, SETTINGS)


def as_the_server_echoes(config: StreamConfig) -> StreamConfig:
    """The declared stream as `stream_info` returns it: every limit it leaves out filled in."""
    return config.evolve(
        max_msgs=-1, max_bytes=-1, max_age=0.0, max_msg_size=-1, max_msgs_per_subject=-1, max_consumers=-1,
        sealed=False, deny_delete=False, deny_purge=False, subjects=tuple(config.subjects or ()),
    )  # fmt: skip


def test_the_declared_stream_as_the_server_echoes_it_has_not_drifted() -> None:
    assert drift(STREAM, as_the_server_echoes(STREAM), _STREAM_FIELDS) == {}


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ({"max_msgs": 1}, {"max_msgs": (1, -1)}),
        ({"max_bytes": 4096}, {"max_bytes": (4096, -1)}),
        ({"discard": DiscardPolicy.NEW}, {"discard": (DiscardPolicy.NEW, DiscardPolicy.OLD)}),
        ({"duplicate_window": 5.0}, {"duplicate_window": (5.0, SETTINGS.duplicate_window_s)}),
        ({"deny_delete": True}, {"deny_delete": (True, False)}),
    ],
    ids=["max-msgs", "max-bytes", "discard-new", "duplicate-window", "deny-delete"],
)
def test_a_hand_edited_stream_field_is_drift(edit: dict[str, Any], expected: dict[str, Any]) -> None:
    assert drift(STREAM, as_the_server_echoes(STREAM).evolve(**edit), _STREAM_FIELDS) == expected


def test_the_declared_consumer_as_the_server_echoes_it_has_not_drifted() -> None:
    echoed = CONSUMER.evolve(ack_wait=10.0000000001, max_waiting=512, replay_policy="instant")
    assert drift(CONSUMER, echoed, _CONSUMER_FIELDS) == {}


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ({"ack_wait": 30.0}, {"ack_wait": (30.0, 10.0)}),
        ({"max_deliver": 1}, {"max_deliver": (1, 6)}),
        ({"deliver_subject": "push.here"}, {"deliver_subject": ("push.here", None)}),
        ({"max_ack_pending": 1}, {"max_ack_pending": (1, CONSUMER.max_ack_pending)}),
    ],
    ids=["ack-wait", "max-deliver", "made-push", "max-ack-pending"],
)
def test_a_hand_edited_consumer_field_is_drift(edit: dict[str, Any], expected: dict[str, Any]) -> None:
    assert drift(CONSUMER, CONSUMER.evolve(**edit), _CONSUMER_FIELDS) == expected

"""Envelope and routing-slip rules: what is done stays done, the error path always ends, dedup ids
are unique per hop and stable across redeliveries."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from actormesh_runtime.catalog import DEFAULT_ROUTE, ERROR_ROUTE, ActorName
from actormesh_runtime.envelope import Entities, Envelope, RoutingSlip, Screening

A = ActorName


def _envelope(**kwargs: object) -> Envelope:
    return Envelope.start(
        session_id="s",
        customer_email="a@example.com",
        message="hi",
        screening=Screening(),
        budget_s=30,
        **kwargs,
    )  # type: ignore[arg-type]


def test_new_envelope_starts_on_the_default_route() -> None:
    before = time.time()
    env = _envelope()
    after = time.time()

    assert env.slip.steps == list(DEFAULT_ROUTE)
    assert env.slip.current == A.SENTIMENT_ANALYZER
    assert env.slip.error_handler == list(ERROR_ROUTE)
    assert not env.slip.on_error_path
    assert before + 30 <= env.headers.deadline <= after + 30  # bracketed: no wall-clock tolerance to flake
    assert env.headers.attempt == 1
    assert env.message_id.startswith("msg-")


def test_advance_walks_the_steps_and_stops_at_the_end() -> None:
    slip = RoutingSlip(steps=[A.SENTIMENT_ANALYZER, A.INTENT_ANALYZER])

    assert slip.next_step == A.INTENT_ANALYZER
    assert slip.advance() == A.INTENT_ANALYZER
    assert slip.next_step is None
    assert slip.advance() is None
    assert slip.current == A.INTENT_ANALYZER


def test_replace_remaining_keeps_what_is_done_and_the_current_step() -> None:
    slip = RoutingSlip(steps=list(DEFAULT_ROUTE), index=3)  # decision_router

    slip.replace_remaining([A.EXECUTION_COORDINATOR, A.RESPONSE_GENERATOR, A.RESPONSE_AGGREGATOR])

    assert slip.steps[:4] == list(DEFAULT_ROUTE[:4])
    assert slip.current == A.DECISION_ROUTER
    assert slip.remaining == [A.EXECUTION_COORDINATOR, A.RESPONSE_GENERATOR, A.RESPONSE_AGGREGATOR]


@pytest.mark.parametrize("index", [-1, 7, 100])
def test_index_outside_the_steps_is_rejected(index: int) -> None:
    with pytest.raises(ValidationError):
        RoutingSlip(steps=list(DEFAULT_ROUTE), index=index)


def test_divert_replaces_the_rest_with_the_error_handler() -> None:
    slip = RoutingSlip(steps=list(DEFAULT_ROUTE), index=2)  # context_retriever fails

    assert slip.divert_to_error_handler() == A.ESCALATION_ROUTER

    assert slip.steps == [*DEFAULT_ROUTE[:3], A.ESCALATION_ROUTER, A.RESPONSE_AGGREGATOR]
    assert slip.on_error_path
    assert slip.index == 3


def test_a_failing_error_handler_still_reaches_the_aggregator() -> None:
    slip = RoutingSlip(steps=list(DEFAULT_ROUTE), index=2)
    slip.divert_to_error_handler()  # now at escalation_router, on the error path

    assert slip.divert_to_error_handler() == A.RESPONSE_AGGREGATOR
    assert slip.remaining == []


def test_error_path_after_the_escalation_route_keeps_going_forward() -> None:
    steps = [*DEFAULT_ROUTE[:4], A.ESCALATION_ROUTER, A.RESPONSE_AGGREGATOR]
    slip = RoutingSlip(steps=steps, index=5)  # the aggregator fails on the normal path

    assert slip.divert_to_error_handler() == A.ESCALATION_ROUTER
    assert slip.index == 6
    assert slip.divert_to_error_handler() == A.RESPONSE_AGGREGATOR
    assert slip.index == 7


def test_dedup_id_is_unique_per_hop_and_stable_for_a_redelivery() -> None:
    env = _envelope()
    first = env.dedup_id()
    same = Envelope.from_bytes(env.to_bytes()).dedup_id()
    env.slip.advance()
    second = env.dedup_id()

    assert first == same
    assert first != second
    assert first == f"{env.message_id}:0:sentiment_analyzer"


def test_a_repeated_step_at_a_new_position_gets_a_new_dedup_id() -> None:
    env = _envelope()
    env.slip = RoutingSlip(steps=[A.RESPONSE_GENERATOR, A.GUARDRAIL_VALIDATOR, A.RESPONSE_GENERATOR], index=0)
    ids = set()
    for _ in range(3):
        ids.add(env.dedup_id())
        env.slip.advance()
    assert len(ids) == 3


def test_a_replay_gets_fresh_dedup_ids() -> None:
    env = _envelope()
    original = env.dedup_id()
    env.headers.replay = 1

    assert env.dedup_id() == f"{original}:r1"


def test_round_trip_and_unknown_fields_rejected() -> None:
    env = _envelope()

    assert Envelope.from_bytes(env.to_bytes()) == env
    with pytest.raises(ValidationError):
        Envelope.from_bytes(env.to_bytes().replace(b'"session_id"', b'"bogus":1,"session_id"'))
    with pytest.raises(ValidationError):
        Envelope.from_bytes(b"not json")


def test_to_bytes_is_the_model_json() -> None:
    """`to_bytes` skips `model_dump_json`'s str round trip; the bytes must be the same JSON, with the
    fields left out that the model leaves out (an unset tracestate)."""
    env = _envelope()
    env.headers.tracestate = None
    assert env.to_bytes() == env.model_dump_json().encode()
    assert b"tracestate" not in env.to_bytes()
    env.headers.tracestate = "vendor=1"
    assert env.to_bytes() == env.model_dump_json().encode()


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_a_float_json_cannot_carry_is_refused_where_it_is_built(value: float) -> None:
    # pydantic would write it as null, and the next hop could not read the envelope back: the
    # message was dead-lettered as undecodable, unanswered and unstored.
    with pytest.raises(ValidationError, match="amounts"):
        Entities(amounts=[value])

"""The fallback result the host sends when even the aggregator fails: graceful, built from what the
envelope knows, never a promise."""

from __future__ import annotations

from actormesh_runtime.actors.escalation_router import reference_id
from actormesh_runtime.bus.errorpath import FALLBACK_REPLY, fallback_result
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import (
    ActionOutcome,
    ActionStatus,
    ActionType,
    Envelope,
    Escalation,
    IntentResult,
    Screening,
    Sentiment,
    TraceEntry,
)
from actormesh_runtime.escalations import EscalationReason
from actormesh_runtime.replies.result import history_event


def _envelope() -> Envelope:
    return Envelope.start(
        session_id="s-9", customer_email="a@example.com", message="hi", screening=Screening(), budget_s=30
    )


def test_fallback_from_a_bare_envelope() -> None:
    env = _envelope()

    result = fallback_result(env)

    assert result.message_id == env.message_id
    assert result.session_id == "s-9"
    # "Our support team will follow up" is only said with the reference of a real record, which the
    # history event carries to the store.
    ref = reference_id(env.message_id)
    assert result.response == f"{FALLBACK_REPLY} Your reference is {ref}."
    assert result.flags == ["error"]
    assert result.escalated
    assert result.reference_id == ref
    record = history_event(env, result).escalation
    assert record is not None
    assert (record.ref, record.reason, record.session_id) == (ref, EscalationReason.ERROR, "s-9")
    assert result.intent is None
    assert result.sentiment is None
    assert result.method.response == "template"


def test_fallback_keeps_what_the_actors_found_and_the_reference() -> None:
    env = _envelope()
    env.sentiment = Sentiment.model_validate({"label": "negative", "score": -0.5, "urgency": "high"})
    env.intent = IntentResult.model_validate({"intent": "billing_issue", "confidence": 0.8, "method": "llm"})
    env.escalation = Escalation(reference_id="ESC-0123abcd", estimated_wait_minutes=5, error_mode=True)
    env.trace.append(TraceEntry(actor=ActorName.SENTIMENT_ANALYZER, ms=1.0))

    result = fallback_result(env)

    assert result.escalated
    assert result.reference_id == "ESC-0123abcd"
    assert "ESC-0123abcd" in result.response
    record = history_event(env, result).escalation
    assert record is not None
    assert record.ref == "ESC-0123abcd"
    assert result.intent is not None
    assert result.intent.value == "billing_issue"
    assert result.method.intent == "llm"
    assert result.urgency is not None
    assert result.urgency.value == "high"
    assert [t.actor for t in result.trace] == [ActorName.SENTIMENT_ANALYZER]
    assert "refund" not in result.response.lower()


def test_fallback_claims_no_action() -> None:
    # Once the aggregator failed it is unknown whether the actions happened: the result promises none.
    env = _envelope()
    env.actions = [
        ActionOutcome(
            type=ActionType.CANCEL_ORDER, order_id="ORD-20001", status=ActionStatus.DONE, detail="Cancelled."
        )
    ]
    assert fallback_result(env).actions == []

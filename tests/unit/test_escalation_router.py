"""escalation_router policy: deterministic reference ids, waits by tier and urgency, calm replies."""

from __future__ import annotations

import re

import pytest

from actormesh_runtime.actors.escalation_router import EscalationRouter, estimated_wait, reference_id
from actormesh_runtime.actors.guardrail_validator import check
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import Decision, Envelope, ErrorInfo, Sentiment, SentimentLabel, Urgency
from tests.support.envelopes import BOB, JANE, JOHN, make_deps, make_envelope


def _envelope(email: str = JOHN, urgency: Urgency | None = None, *, context: bool = True) -> Envelope:
    envelope = make_envelope("I want to speak to a manager now", email, with_context=context)
    if urgency is not None:
        envelope.sentiment = Sentiment(label=SentimentLabel.NEGATIVE, score=-0.5, urgency=urgency)
    envelope.decision = Decision(escalate=True, reasons=["explicit request for a human"])
    return envelope


def test_reference_id_is_deterministic_per_message() -> None:
    first, again, other = reference_id("msg-1"), reference_id("msg-1"), reference_id("msg-2")
    assert re.fullmatch(r"ESC-[0-9a-f]{8}", first)
    assert first == again
    assert first != other


@pytest.mark.parametrize(
    ("email", "urgency", "context", "minutes"),
    [
        pytest.param(JANE, Urgency.LOW, True, 5, id="vip"),
        pytest.param(JOHN, Urgency.LOW, True, 15, id="premium"),
        pytest.param(BOB, Urgency.LOW, True, 30, id="standard"),
        pytest.param("x@example.com", Urgency.LOW, True, 30, id="unknown-customer"),
        pytest.param(JOHN, None, False, 30, id="no-context-no-sentiment"),
        pytest.param(JOHN, Urgency.HIGH, True, 11, id="premium-high"),
        pytest.param(BOB, Urgency.CRITICAL, True, 15, id="standard-critical"),
        pytest.param(JANE, Urgency.CRITICAL, True, 2, id="floor-of-two-minutes"),
    ],
)
def test_estimated_wait(email: str, urgency: Urgency | None, context: bool, minutes: int) -> None:
    assert estimated_wait(_envelope(email, urgency, context=context)) == minutes


async def test_handoff() -> None:
    envelope = _envelope(JANE, Urgency.HIGH)
    await EscalationRouter(make_deps()).handle(envelope)
    esc = envelope.escalation
    assert esc is not None
    assert esc.reference_id == reference_id(envelope.message_id)
    assert not esc.error_mode
    assert esc.reasons == ["explicit request for a human"]
    assert esc.reply is not None
    assert esc.reference_id in esc.reply
    assert f"{esc.estimated_wait_minutes} minutes" in esc.reply
    assert "Hi Jane" in esc.reply
    assert check(esc.reply, JANE) == []  # calm and promise-free


@pytest.mark.parametrize(
    ("set_error", "divert"),
    [
        pytest.param(True, False, id="error-info-set"),
        pytest.param(False, True, id="slip-on-error-path"),
    ],
)
async def test_error_mode_apologises_with_the_reference(set_error: bool, divert: bool) -> None:
    envelope = _envelope(context=False)
    if set_error:
        envelope.error = ErrorInfo(
            actor=ActorName.CONTEXT_RETRIEVER, reason="customers API down", permanent=False
        )
    if divert:
        envelope.slip.divert_to_error_handler()
    await EscalationRouter(make_deps()).handle(envelope)
    esc = envelope.escalation
    assert esc is not None
    assert esc.error_mode
    assert esc.reply is not None
    assert "sorry" in esc.reply
    assert esc.reference_id in esc.reply
    assert "customers API down" not in esc.reply  # internals stay internal
    if set_error:
        assert esc.reasons[0] == "error in context_retriever: customers API down"


async def test_redelivery_gives_the_same_escalation() -> None:
    envelope = _envelope(BOB, Urgency.MEDIUM)
    copy = Envelope.from_bytes(envelope.to_bytes())
    router = EscalationRouter(make_deps())
    await router.handle(envelope)
    await router.handle(copy)
    assert envelope.escalation == copy.escalation

"""escalation_router: deterministic reference ids, a record of what the mesh knew, the wait from the
real queue (or honestly none), calm replies."""

from __future__ import annotations

import re

import pytest

from actormesh_runtime.actors.escalation_router import EscalationRouter, reference_id
from actormesh_runtime.actors.guardrail_validator import check
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import Decision, Envelope, ErrorInfo, Sentiment, SentimentLabel, Urgency
from actormesh_runtime.escalations import EscalationLookup, LookupAnswer, QueueSnapshot
from actormesh_runtime.policy.decision import REASON_SUSPENDED
from tests.support.envelopes import BOB, JANE, JOHN, MIA, FakePublisher, make_deps, make_envelope


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


def _queue_answer(queue: QueueSnapshot) -> FakePublisher:
    """A publisher whose lookups the "history service" answers with `queue`."""
    return FakePublisher(answer=lambda _s, _p: LookupAnswer(queue=queue).model_dump_json().encode())


async def test_handoff_tells_the_wait_from_the_real_queue() -> None:
    envelope = _envelope(JANE, Urgency.HIGH)
    publisher = _queue_answer(QueueSnapshot(ahead=3, agents_active=2, handling_minutes=10.0))
    await EscalationRouter(make_deps(publisher=publisher)).handle(envelope)
    esc = envelope.escalation
    assert esc is not None
    assert esc.reference_id == reference_id(envelope.message_id)
    assert not esc.error_mode
    assert esc.reasons == ["explicit request for a human"]
    assert esc.estimated_wait_minutes == 20  # (3 ahead + this one) x 10 min / 2 agents
    assert esc.reply is not None
    assert esc.reference_id in esc.reply
    assert "3 conversations are ahead of yours" in esc.reply
    assert "2 people are answering" in esc.reply
    assert "about 20 minutes" in esc.reply
    assert "Hi Jane" in esc.reply
    assert check(esc.reply, JANE) == []  # calm and promise-free
    [(subject, question)] = publisher.requests
    assert subject == "actormesh.unit.escalations.lookup"
    assert esc.record is not None
    asked = EscalationLookup.model_validate_json(question)
    assert asked.priority == esc.record.priority
    assert asked.refs == [esc.reference_id], "names itself: a rerun is told the queue in front of it"


@pytest.mark.parametrize(
    ("queue", "says"),
    [
        pytest.param(
            QueueSnapshot(ahead=4, agents_active=0, handling_minutes=12.0),
            ["No one from our team is available right now", "4 conversations are ahead of yours"],
            id="nobody-available",
        ),
        pytest.param(
            QueueSnapshot(ahead=0, agents_active=1, handling_minutes=None),
            ["1 person is answering right now and yours is next in line"],
            id="no-measured-handling-time",
        ),
        pytest.param(None, ["can't see our queue right now"], id="history-silent"),
    ],
)
async def test_no_invented_wait(queue: QueueSnapshot | None, says: list[str]) -> None:
    publisher = _queue_answer(queue) if queue is not None else FakePublisher()
    envelope = _envelope(BOB)
    await EscalationRouter(make_deps(publisher=publisher)).handle(envelope)
    esc = envelope.escalation
    assert esc is not None
    assert esc.reply is not None
    assert esc.estimated_wait_minutes is None
    for part in says:
        assert part in esc.reply
    assert "minute" not in esc.reply


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
    first, again = envelope.escalation, copy.escalation
    assert first is not None
    assert again is not None
    assert first.record is not None
    assert again.record is not None
    # Same reference, reply and record but for its creation time (the store keeps the first).
    assert first.model_copy(update={"record": None}) == again.model_copy(update={"record": None})
    assert first.record.model_copy(update={"created_at": again.record.created_at}) == again.record


async def test_the_record_holds_what_the_mesh_knew() -> None:
    envelope = _envelope(JOHN, Urgency.HIGH)
    await EscalationRouter(make_deps()).handle(envelope)
    assert envelope.escalation is not None
    record = envelope.escalation.record
    assert record is not None
    assert record.ref == envelope.escalation.reference_id
    assert (record.session_id, record.message_id) == (envelope.session_id, envelope.message_id)
    assert record.customer.email == JOHN
    assert record.customer.tier == "premium"
    assert record.state == "open"
    assert "manager" in record.summary
    assert {o["order_id"] for o in record.facts.orders} == {"ORD-10001", "ORD-10002", "ORD-10003"}
    assert "TRK100000001" in {t["tracking_number"] for t in record.facts.tracking}


async def test_a_suspended_account_change_gets_a_handoff_with_a_record() -> None:
    envelope = make_envelope("Please cancel my order", MIA, with_context=True)
    envelope.decision = Decision(escalate=True, reasons=[REASON_SUSPENDED])
    await EscalationRouter(make_deps()).handle(envelope)
    esc = envelope.escalation
    assert esc is not None
    assert esc.record is not None
    assert esc.record.reason == "suspended_account"
    assert esc.reply is not None
    assert esc.reference_id in esc.reply

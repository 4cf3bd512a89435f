"""Escalation rules without a server: priority, the reason code, the state machine, the references a
message names, and the wait estimate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from actormesh_runtime.envelope import (
    ActionOutcome,
    ActionStatus,
    ActionType,
    Decision,
    GuardrailVerdict,
    Intent,
    IntentResult,
    Sentiment,
    SentimentLabel,
    Urgency,
)
from actormesh_runtime.escalations import (
    Customer,
    EscalationReason,
    EscalationRecord,
    EscalationState,
    Operation,
    QueueSnapshot,
    TransitionRefused,
    apply_transition,
    find_refs,
)
from actormesh_runtime.policy import decision as rules
from actormesh_runtime.policy.escalation import (
    MAX_FACT_ORDERS,
    SUMMARY_MAX_CHARS,
    estimated_wait_minutes,
    facts,
    priority,
    reason_code,
    summary,
)
from actormesh_runtime.priority import Priority
from tests.support.envelopes import JOHN, make_envelope

NEG, NEU = SentimentLabel.NEGATIVE, SentimentLabel.NEUTRAL
R = EscalationReason


@pytest.mark.parametrize(
    ("reason", "tier", "urgency", "label", "score", "expected"),
    [
        pytest.param(
            R.LEGAL_THREAT, "standard", Urgency.LOW, NEU, 0.0, Priority.URGENT, id="legal-always-urgent"
        ),
        pytest.param(R.UPSET_VIP, "vip", Urgency.HIGH, NEG, -0.3, Priority.URGENT, id="upset-vip-urgent"),
        pytest.param(R.GUARDRAIL, "standard", Urgency.LOW, NEU, 0.0, Priority.HIGH, id="guardrail-high"),
        pytest.param(
            R.HUMAN_REQUESTED, "standard", Urgency.LOW, NEU, 0.0, Priority.NORMAL, id="human-normal"
        ),
        pytest.param(R.HUMAN_REQUESTED, "vip", Urgency.LOW, NEU, 0.0, Priority.HIGH, id="human-vip-high"),
        pytest.param(
            R.HUMAN_REQUESTED, "premium", Urgency.HIGH, NEU, 0.0, Priority.HIGH, id="human-high-urgency"
        ),
        pytest.param(
            R.HUMAN_REQUESTED, "standard", Urgency.MEDIUM, NEG, -0.5, Priority.HIGH, id="human-unhappy"
        ),
        pytest.param(
            R.HUMAN_REQUESTED, "standard", Urgency.MEDIUM, NEG, -0.49, Priority.NORMAL, id="mildly-neg"
        ),
        pytest.param(
            R.HUMAN_REQUESTED, "vip", Urgency.HIGH, NEG, -0.8, Priority.URGENT, id="every-bump-clamps"
        ),
        pytest.param(R.ABUSE, "standard", Urgency.LOW, NEG, -0.9, Priority.HIGH, id="abuse-unhappy-high"),
        pytest.param(R.SUSPENDED_ACCOUNT, "standard", Urgency.LOW, NEU, 0.0, Priority.NORMAL, id="suspended"),
        pytest.param(R.ERROR, None, None, None, None, Priority.NORMAL, id="error-nothing-known"),
        pytest.param(
            R.LOW_CONFIDENCE, "standard", Urgency.LOW, NEU, 0.0, Priority.LOW, id="low-confidence-low"
        ),
        pytest.param(
            R.LOW_CONFIDENCE, "vip", Urgency.LOW, NEU, 0.0, Priority.NORMAL, id="low-confidence-vip"
        ),
        pytest.param(
            R.LOW_CONFIDENCE, None, Urgency.CRITICAL, NEU, 0.0, Priority.URGENT, id="critical-urgent"
        ),
    ],
)
def test_priority_rules(
    reason: EscalationReason,
    tier: str | None,
    urgency: Urgency | None,
    label: SentimentLabel | None,
    score: float | None,
    expected: Priority,
) -> None:
    assert priority(reason, tier=tier, urgency=urgency, sentiment=label, score=score) is expected


@pytest.mark.parametrize(
    ("reasons", "guardrail", "error_mode", "expected"),
    [
        pytest.param(
            [rules.REASON_HUMAN, rules.REASON_LEGAL], False, False, R.LEGAL_THREAT, id="legal-first"
        ),
        pytest.param([rules.REASON_HUMAN, rules.REASON_ABUSIVE], False, False, R.HUMAN_REQUESTED, id="human"),
        pytest.param([rules.REASON_ABUSIVE], False, False, R.ABUSE, id="abuse"),
        pytest.param([rules.REASON_VIP], False, False, R.UPSET_VIP, id="vip"),
        pytest.param([rules.REASON_SUSPENDED], False, False, R.SUSPENDED_ACCOUNT, id="suspended"),
        pytest.param([rules.low_confidence_reason(0.2, 0.45)], False, False, R.LOW_CONFIDENCE, id="low"),
        pytest.param([], True, False, R.GUARDRAIL, id="guardrail"),
        pytest.param([rules.REASON_LEGAL], False, True, R.ERROR, id="error-mode-wins"),
    ],
)
def test_reason_code(
    reasons: list[str], guardrail: bool, error_mode: bool, expected: EscalationReason
) -> None:
    envelope = make_envelope("help", JOHN, decision=Decision(escalate=True, reasons=reasons))
    if guardrail:
        envelope.guardrail = GuardrailVerdict(approved=False, reasons=["promise"], action="escalate")
    assert reason_code(envelope, error_mode=error_mode) is expected


def _record(state: EscalationState = EscalationState.OPEN, claimed_by: str | None = None) -> EscalationRecord:
    return EscalationRecord(
        ref="ESC-0123abcd",
        session_id="s",
        message_id="m",
        customer=Customer(email=JOHN, tier="premium"),
        reason=R.HUMAN_REQUESTED,
        priority=Priority.NORMAL,
        summary="x",
        state=state,
        claimed_by=claimed_by,
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
    )


OPEN, CLAIMED, RESOLVED = EscalationState.OPEN, EscalationState.CLAIMED, EscalationState.RESOLVED


@pytest.mark.parametrize(
    ("state", "holder", "op", "agent", "after", "refused"),
    [
        pytest.param(OPEN, None, "claim", "ann", CLAIMED, None, id="open-claim"),
        pytest.param(OPEN, None, "reply", "ann", None, "claim it before replying", id="open-reply"),
        pytest.param(OPEN, None, "resolve", "ann", RESOLVED, None, id="open-resolve"),
        pytest.param(CLAIMED, "ann", "claim", "ann", CLAIMED, None, id="reclaim-by-holder-is-a-no-op"),
        pytest.param(CLAIMED, "ann", "claim", "bob", None, "already claimed by ann", id="claim-taken"),
        pytest.param(CLAIMED, "ann", "reply", "ann", CLAIMED, None, id="holder-replies"),
        pytest.param(CLAIMED, "ann", "reply", "bob", None, "claimed by ann, not bob", id="other-replies"),
        pytest.param(CLAIMED, "ann", "resolve", "bob", RESOLVED, None, id="anyone-resolves"),
        pytest.param(RESOLVED, "ann", "reply", "ann", None, "is resolved", id="resolved-reply"),
        pytest.param(RESOLVED, "ann", "claim", "ann", None, "is resolved", id="resolved-claim"),
        pytest.param(RESOLVED, "ann", "resolve", "ann", None, "is resolved", id="resolved-resolve"),
    ],
)
def test_state_machine(
    state: EscalationState,
    holder: str | None,
    op: Operation,
    agent: str,
    after: EscalationState | None,
    refused: str | None,
) -> None:
    record = _record(state, holder)
    now = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
    if refused is not None:
        with pytest.raises(TransitionRefused, match=refused):
            apply_transition(record, op, agent, text="hi", now=now)
        return
    changed = apply_transition(record, op, agent, text="hi", now=now)
    assert changed.state is after
    assert record.state is state  # the input is never modified
    if op == "claim" and state is OPEN:
        assert (changed.claimed_by, changed.claimed_at) == (agent, now)
    if op == "reply":
        assert [(r.agent, r.text, r.at) for r in changed.replies] == [(agent, "hi", now)]
    if op == "resolve":
        assert (changed.resolved_at, changed.resolution_note) == (now, "hi")
    if holder == agent and op == "claim":
        assert changed is record


@pytest.mark.parametrize(
    ("text", "refs"),
    [
        pytest.param("What's happening with ESC-1234abcd?", ["ESC-1234abcd"], id="question"),
        pytest.param("any news on esc-1234ABCD", ["ESC-1234abcd"], id="any-case"),
        pytest.param(
            "ESC-1234abcd and ESC-0000ffff, ESC-1234abcd", ["ESC-1234abcd", "ESC-0000ffff"], id="dedup"
        ),
        pytest.param("my ref was ESC-1234abc or XESC-1234abcd9", [], id="not-a-reference"),
    ],
)
def test_references_in_a_message(text: str, refs: list[str]) -> None:
    assert find_refs(text) == refs


@pytest.mark.parametrize(
    ("queue", "minutes"),
    [
        pytest.param(QueueSnapshot(ahead=0, agents_active=1, handling_minutes=6.0), 6, id="next-in-line"),
        pytest.param(QueueSnapshot(ahead=5, agents_active=2, handling_minutes=10.0), 30, id="shared"),
        pytest.param(
            QueueSnapshot(ahead=0, agents_active=4, handling_minutes=0.5), 1, id="at-least-a-minute"
        ),
        pytest.param(QueueSnapshot(ahead=3, agents_active=0, handling_minutes=10.0), None, id="nobody"),
        pytest.param(QueueSnapshot(ahead=3, agents_active=2, handling_minutes=None), None, id="unmeasured"),
        pytest.param(None, None, id="queue-unknown"),
    ],
)
def test_wait_estimate(queue: QueueSnapshot | None, minutes: int | None) -> None:
    assert estimated_wait_minutes(queue) == minutes


def test_created_before_claimed_in_time() -> None:
    claimed = apply_transition(_record(), "claim", "ann", now=datetime(2026, 12, 1, 0, 3, tzinfo=UTC))
    assert claimed.claimed_at is not None
    assert claimed.claimed_at - claimed.created_at == timedelta(minutes=3)


def test_the_facts_carry_the_fields_docs_escalations_md_lists() -> None:
    envelope = make_envelope("Where is ORD-10002?", with_context=True)
    envelope.actions = [
        ActionOutcome(
            type=ActionType.TRACKING_LOOKUP, order_id="ORD-10002", status=ActionStatus.DONE, detail="d"
        )
    ]
    assert envelope.context is not None
    envelope.context.orders = [envelope.context.orders[0]] * (MAX_FACT_ORDERS + 2)

    found = facts(envelope)

    assert len(found.orders) == MAX_FACT_ORDERS == 10, "bounded, like the record's size"
    fields = {
        "order_id",
        "status",
        "placed_at",
        "items",
        "total",
        "carrier",
        "tracking_number",
        "delivered_at",
    }
    assert all(set(order) == fields for order in found.orders)
    assert all(set(item) == {"name", "quantity"} for order in found.orders for item in order["items"])
    assert [set(a) for a in found.actions] == [{"type", "order_id", "status", "detail"}]


@pytest.mark.parametrize("found", [True, False], ids=["known-customer", "unknown-customer"])
def test_the_summary_reads_as_docs_escalations_md_shows(found: bool) -> None:
    envelope = make_envelope("I want   a human", with_context=True)
    envelope.intent = IntentResult(intent=Intent.ESCALATION_REQUEST, confidence=0.9)
    envelope.sentiment = Sentiment(label=NEU, score=0.0, urgency=Urgency.MEDIUM)
    assert envelope.context is not None
    envelope.context.found = found
    who = f"{envelope.context.tier} customer" if found else "unknown customer"

    line = summary(envelope, R.HUMAN_REQUESTED)

    about = f"{who}; intent escalation_request; neutral, urgency medium"
    assert line == f'Customer asked for a person ({about}): "I want a human"'


def test_a_long_message_is_cut_to_the_summary_line_with_an_ellipsis() -> None:
    envelope = make_envelope("x", with_context=True)
    head = summary(envelope, R.HUMAN_REQUESTED).removesuffix('"x"')
    room = SUMMARY_MAX_CHARS - len(head) - 2  # the quotes

    envelope.message = "a" * room
    assert summary(envelope, R.HUMAN_REQUESTED) == f'{head}"{"a" * room}"', "it fits: not cut"
    envelope.message = "a" * (room + 1)
    cut = summary(envelope, R.HUMAN_REQUESTED)
    assert cut == f'{head}"{"a" * (room - 3)}..."'  # ASCII: the store's normalisation keeps it
    assert len(cut) == SUMMARY_MAX_CHARS

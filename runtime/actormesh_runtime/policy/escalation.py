"""Escalation policy: which reason, which priority, what the agent is told, how long the wait is. Pure.

escalation_router calls these to build the `EscalationRecord` a person will pick up; the tables are
in docs/escalations.md and tested in tests/unit/test_escalation_policy.py.

Priority (urgent > high > normal > low) starts from the reason and moves with the customer:

| reason | base |
|---|---|
| legal threat, upset VIP | urgent |
| guardrail (a draft failed twice on an urgent message) | high |
| human requested, abuse, suspended account, error | normal |
| low confidence | low |

then one step more urgent for each of: a VIP customer, high urgency, clearly negative sentiment
(score <= -0.5); critical urgency is always urgent.
"""

from __future__ import annotations

import math
from datetime import datetime

from actormesh_runtime.envelope import CustomerContext, Envelope, SentimentLabel, Urgency
from actormesh_runtime.escalations import (
    SUMMARY_MAX_CHARS,
    Customer,
    EscalationFacts,
    EscalationReason,
    EscalationRecord,
    QueueSnapshot,
)
from actormesh_runtime.policy import decision as rules
from actormesh_runtime.priority import PRIORITY_ORDER, Priority

BASE_PRIORITY: dict[EscalationReason, Priority] = {
    EscalationReason.LEGAL_THREAT: Priority.URGENT,
    EscalationReason.UPSET_VIP: Priority.URGENT,
    EscalationReason.GUARDRAIL: Priority.HIGH,
    EscalationReason.HUMAN_REQUESTED: Priority.NORMAL,
    EscalationReason.ABUSE: Priority.NORMAL,
    EscalationReason.SUSPENDED_ACCOUNT: Priority.NORMAL,
    EscalationReason.ERROR: Priority.NORMAL,
    EscalationReason.LOW_CONFIDENCE: Priority.LOW,
}
NEGATIVE_SCORE = -0.5
"""Sentiment at or below this compound score counts as clearly unhappy (one step more urgent)."""
MAX_FACT_ORDERS = 10

# Most serious first: a record has one reason code; the words of every rule stay in `reasons`.
_REASON_BY_RULE: tuple[tuple[str, EscalationReason], ...] = (
    (rules.REASON_LEGAL, EscalationReason.LEGAL_THREAT),
    (rules.REASON_VIP, EscalationReason.UPSET_VIP),
    (rules.REASON_HUMAN, EscalationReason.HUMAN_REQUESTED),
    (rules.REASON_SUSPENDED, EscalationReason.SUSPENDED_ACCOUNT),
    (rules.REASON_SUSPENDED_ACCOUNT, EscalationReason.SUSPENDED_ACCOUNT),
    (rules.REASON_ABUSIVE, EscalationReason.ABUSE),
)


def reason_code(envelope: Envelope, *, error_mode: bool) -> EscalationReason:
    """The one reason code of this escalation (the most serious rule that fired)."""
    if error_mode:
        return EscalationReason.ERROR
    decided = envelope.decision.reasons if envelope.decision else []
    for words, code in _REASON_BY_RULE:
        if words in decided:
            return code
    if envelope.guardrail is not None and envelope.guardrail.action == "escalate":
        return EscalationReason.GUARDRAIL
    return EscalationReason.LOW_CONFIDENCE


def priority(
    reason: EscalationReason,
    *,
    tier: str | None,
    urgency: Urgency | None,
    sentiment: SentimentLabel | None,
    score: float | None,
) -> Priority:
    """The queue priority from the reason, tier, urgency and sentiment (table in the module doc)."""
    if urgency is Urgency.CRITICAL:
        return Priority.URGENT
    rank = BASE_PRIORITY[reason].rank
    rank -= tier == "vip"
    rank -= urgency is Urgency.HIGH
    rank -= sentiment is SentimentLabel.NEGATIVE and score is not None and score <= NEGATIVE_SCORE
    return PRIORITY_ORDER[max(0, min(rank, len(PRIORITY_ORDER) - 1))]


def envelope_priority(envelope: Envelope, reason: EscalationReason) -> Priority:
    sentiment, ctx = envelope.sentiment, envelope.context
    return priority(
        reason,
        tier=ctx.tier if ctx is not None and ctx.found else None,
        urgency=sentiment.urgency if sentiment else None,
        sentiment=sentiment.label if sentiment else None,
        score=sentiment.score if sentiment else None,
    )


def facts(envelope: Envelope) -> EscalationFacts:
    """The orders, tracking and actions the mesh had, as plain data (the agent's starting point)."""
    ctx: CustomerContext | None = envelope.context
    orders = ctx.orders[:MAX_FACT_ORDERS] if ctx is not None and ctx.found else []
    return EscalationFacts(
        orders=[
            {
                "order_id": o.order_id,
                "status": o.status,
                "placed_at": o.placed_at,
                "items": [{"name": i.name, "quantity": i.quantity} for i in o.items],
                "total": o.total,
                "carrier": o.carrier,
                "tracking_number": o.tracking_number,
                "delivered_at": o.delivered_at,
            }
            for o in orders
        ],
        tracking=[o.tracking.model_dump(mode="json") for o in orders if o.tracking is not None],
        actions=[
            {"type": a.type.value, "order_id": a.order_id, "status": a.status.value, "detail": a.detail}
            for a in envelope.actions
        ],
    )


REASON_WORDS: dict[EscalationReason, str] = {
    EscalationReason.LEGAL_THREAT: "Legal threat",
    EscalationReason.ABUSE: "Abusive language",
    EscalationReason.UPSET_VIP: "VIP customer, urgent and unhappy",
    EscalationReason.HUMAN_REQUESTED: "Customer asked for a person",
    EscalationReason.SUSPENDED_ACCOUNT: "Suspended account needs a person (order change or the account)",
    EscalationReason.GUARDRAIL: "No safe automatic reply to an urgent message",
    EscalationReason.ERROR: "The mesh failed while handling the message",
    EscalationReason.LOW_CONFIDENCE: "The mesh did not understand the request",
}


def summary(envelope: Envelope, reason: EscalationReason) -> str:
    """One line for the queue: why, who, what they want, and their (screened) words."""
    ctx, intent, sentiment = envelope.context, envelope.intent, envelope.sentiment
    who = f"{ctx.tier or 'unknown-tier'} customer" if ctx is not None and ctx.found else "unknown customer"
    about = [who]
    if intent is not None:
        about.append(f"intent {intent.intent.value}")
    if sentiment is not None:
        about.append(f"{sentiment.label.value}, urgency {sentiment.urgency.value}")
    head = f"{REASON_WORDS[reason]} ({'; '.join(about)}): "
    words = " ".join(envelope.message.split())
    room = SUMMARY_MAX_CHARS - len(head) - 2
    # "...", not "…": the store normalises text (NFKC) before redacting it, which would lengthen it.
    quoted = words if len(words) <= room else words[: max(0, room - 3)] + "..."
    return f'{head}"{quoted}"'


def build_record(
    envelope: Envelope, ref: str, reasons: list[str], *, error_mode: bool, now: datetime
) -> EscalationRecord:
    """The record the history service stores for this escalation (state open)."""
    code = reason_code(envelope, error_mode=error_mode)
    ctx = envelope.context
    tier = ctx.tier if ctx is not None and ctx.found else None
    return EscalationRecord(
        ref=ref,
        session_id=envelope.session_id,
        message_id=envelope.message_id,
        customer=Customer(email=envelope.customer_email.strip().lower(), tier=tier),
        reason=code,
        reasons=reasons,
        priority=envelope_priority(envelope, code),
        summary=summary(envelope, code),
        facts=facts(envelope),
        created_at=now,
    )


# ---------------------------------------------------------------- the wait a customer is told


def estimated_wait_minutes(queue: QueueSnapshot | None) -> int | None:
    """Minutes until an agent is likely to pick this one up, or None when there is no honest number.

    (ahead + 1) escalations shared among the agents who replied in the last hour, each taking the
    mean claim-to-resolve time of the last day. No queue (history service silent), no agent active
    or no resolved escalation to measure → None: the reply then says what it knows instead.
    """
    if queue is None or queue.agents_active == 0 or queue.handling_minutes is None:
        return None
    return max(1, math.ceil((queue.ahead + 1) * queue.handling_minutes / queue.agents_active))

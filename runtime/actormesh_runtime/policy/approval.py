"""Which action outcomes wait for a person's approval, and the approval records they become. Pure.

Every `pending_review` outcome of an approvable action (a standard-tier cancellation, every refund
request) that carries an idempotency key becomes one `approvals.ApprovalRecord`; response_aggregator
sends them inside the history event, so they are stored with the turns, once (the id derives from the
idempotency key). Priority follows the customer like an escalation's: normal, one step more urgent for
a VIP, for high urgency and for clearly negative sentiment; critical urgency is urgent.
"""

from __future__ import annotations

from datetime import datetime

from actormesh_runtime.approvals import APPROVABLE, ApprovalRecord, OrderFacts, new_approval
from actormesh_runtime.envelope import ActionOutcome, ActionStatus, Envelope
from actormesh_runtime.escalations import EscalationReason
from actormesh_runtime.policy.escalation import envelope_priority


def waits_for_approval(outcome: ActionOutcome) -> bool:
    """A pending outcome of an approvable action, with the key and order its record needs."""
    return (
        outcome.status is ActionStatus.PENDING_REVIEW
        and outcome.type.value in APPROVABLE
        and outcome.idempotency_key is not None
        and outcome.order_id is not None
    )


def approval_records(envelope: Envelope, now: datetime) -> list[ApprovalRecord]:
    """The approval requests this envelope's actions filed (none when nothing waits for a person)."""
    if not any(waits_for_approval(outcome) for outcome in envelope.actions):
        return []  # most conversations: no orders to index, no priority to rank
    ctx = envelope.context
    orders = {o.order_id: o for o in ctx.orders} if ctx is not None and ctx.found else {}
    tier = ctx.tier if ctx is not None and ctx.found else None
    # The same customer-driven bumps as an escalation that starts at normal priority.
    priority = envelope_priority(envelope, EscalationReason.HUMAN_REQUESTED).value
    records = []
    for outcome in envelope.actions:
        if not waits_for_approval(outcome) or outcome.idempotency_key is None or outcome.order_id is None:
            continue
        order = orders.get(outcome.order_id)
        facts = OrderFacts(
            order_id=outcome.order_id,
            status=order.status if order else None,
            total=order.total if order else None,
            items=[{"name": i.name, "quantity": i.quantity, "unit_price": i.unit_price} for i in order.items]
            if order
            else [],
        )
        records.append(
            new_approval(
                idempotency_key=outcome.idempotency_key,
                session_id=envelope.session_id,
                message_id=envelope.message_id,
                customer_email=envelope.customer_email.strip().lower(),
                customer_tier=tier,
                action=outcome.type.value,
                order=facts,
                priority=priority,  # type: ignore[arg-type]
                created_at=now,
                request_id=outcome.data.get("request_id"),
                customer_words=envelope.message[:2000],
                ref=envelope.escalation.reference_id if envelope.escalation else None,
            )
        )
    return records

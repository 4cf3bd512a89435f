"""Approval requests: side effects the store's policy leaves to a person, and their life cycle. Pure.

When execution_coordinator files a cancellation request (a standard-tier cancellation) or a refund
request, the action's outcome is `pending_review`: nothing has changed yet, a person decides. Each such
outcome becomes one `ApprovalRecord` (its id is derived from the action's idempotency key, so a
redelivered envelope finds the record it already made). An agent approves it — the mutation then runs
once, under `mutation_key(record)`, however often approve is clicked or the command redelivered — or
denies it with a reason. Refunds may be approved for a different amount, up to the order total.

Each priority has a time limit (`TIME_LIMITS`). A request still pending when its limit passes is
re-escalated (`reescalate`: one step more urgent, a new deadline, an audit entry); it is never
approved by default. Every change appends an `AuditEntry` (who, when, what, why).

A low floor like `escalations`: pydantic and the standard library only, so the envelope's history
event may carry records later without an import cycle (action names are the envelope's `ActionType`
values). The history service stores the records; the agent API and the console show and decide them.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from actormesh_runtime.priority import PRIORITY_ORDER, Priority
from actormesh_runtime.wire_enum import WireEnum

APPROVAL_ID_PATTERN = r"APR-[0-9a-f]{8,16}"
"""Accepted: 8 to 16 hex digits; this release mints 8 (`approval_id`). Up to 16 so that a later release
may mint longer ids while this one still runs (docs/approvals.md, "Approval ids")."""
MAX_ID_ATTEMPTS = 16
"""Candidate ids per idempotency key (`approval_id` attempts 0..15) before a request is unstorable."""
REASON_MAX_CHARS = 2000

ApprovalAction = Literal["cancel_order", "create_refund_request"]
CANCEL, REFUND = "cancel_order", "create_refund_request"
APPROVABLE: frozenset[str] = frozenset({CANCEL, REFUND})
"""The actions (`ActionType` values) whose `pending_review` outcome waits for a person."""

TIME_LIMITS: dict[Priority, timedelta] = {
    Priority.URGENT: timedelta(minutes=15),
    Priority.HIGH: timedelta(hours=1),
    Priority.NORMAL: timedelta(hours=4),
    Priority.LOW: timedelta(hours=24),
}
"""How long a request may wait at each priority before it is re-escalated. A customer waiting on a
refund or a cancellation hears back within a working afternoon at normal priority; an urgent one
(a VIP, an upset customer) within a quarter of an hour."""

REFUSED = "refused"
"""An approved action's result when it could not be carried out (`ApprovalOutcome.status`)."""
FAILED = "failed"
"""An approved action's result when the executor gave up on it: no reply it could read, however often
it asked (`bus.approval_executor`). The change may have been made, so a failed refund still counts
against the order's total (`approved_refunds`) until a person has looked, unless it failed before the
mutation request was sent (`NOT_SENT`)."""
NOT_SENT = "not sent"
"""Audited after a `FAILED` result whose mutation request was never sent (`ApprovalOutcome.sent`
False): nothing was paid, so such a refund does not count against the order's total."""

SYSTEM = "system"
"""The `who` of audit entries nobody clicked (creation, re-escalation)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApprovalState(WireEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"


Verdict = Literal["approve", "deny"]


class OrderFacts(_Model):
    """What the decision needs to know about the order."""

    order_id: str
    status: str | None = None
    total: float | None = None
    items: list[dict[str, object]] = Field(default_factory=list)


class Decision(_Model):
    verdict: Verdict
    by: str
    at: datetime
    amount: float | None = None
    """Refunds: the approved amount (the order total unless the agent chose less)."""
    reason: str | None = None


class AuditEntry(_Model):
    who: str
    at: datetime
    what: str
    why: str | None = None


class ApprovalRecord(_Model):
    id: str = Field(pattern=f"^{APPROVAL_ID_PATTERN}$")
    ref: str | None = None
    """The escalation of the same conversation, if there is one."""
    session_id: str
    message_id: str
    customer_email: str
    customer_tier: Literal["standard", "premium", "vip"] | None = None
    action: ApprovalAction
    order: OrderFacts
    request_id: str | None = None
    """The commerce API's CXR-/RFR- record the request was filed as."""
    idempotency_key: str
    customer_words: str = ""
    priority: Priority
    state: ApprovalState = ApprovalState.PENDING
    created_at: datetime
    deadline_at: datetime
    escalations: int = Field(0, ge=0, description="Times re-escalated after its deadline passed")
    decision: Decision | None = None
    audit: list[AuditEntry] = Field(default_factory=list)


class DecisionRefused(Exception):
    """Already decided (HTTP 409); the message says how and by whom."""


class DecisionForbidden(Exception):
    """This agent may not decide this request (HTTP 403): it is their own customer account's."""


class InvalidDecision(ValueError):
    """A decision that names a bad value (HTTP 422); `field` is the body field at fault."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def approval_id(idempotency_key: str, attempt: int = 0) -> str:
    """Stable per action: the same pending_review outcome, redelivered, maps to the same record.

    Attempt 0 is what execution_coordinator mints; the history store, finding that id held by another
    key's request (32 bits collide), stores the request under attempt 1, 2, … (SHA-256 of
    f"{idempotency_key}:{attempt}"), the same order every time, so a redelivery finds it again."""
    seed = idempotency_key if attempt == 0 else f"{idempotency_key}:{attempt}"
    return "APR-" + hashlib.sha256(seed.encode()).hexdigest()[:8]


def normal_email(email: str) -> str:
    """A customer's email as the history store keeps and compares it: trimmed, in lower case (as the
    escalations are stored, and as erasure asks)."""
    return email.strip().lower()


def executed_what(status: str, sent: bool | None = None) -> str:
    """The audit entry's `what` for an approved action's result (`ApprovalStore.record_execution`)."""
    return f"executed: {status} ({NOT_SENT})" if status == FAILED and sent is False else f"executed: {status}"


def mutation_key(record: ApprovalRecord) -> str:
    """The Idempotency-Key the approved mutation is sent with: one key per approval, so the commerce
    API applies it once however often approve runs (a double click, a redelivered command)."""
    return f"{record.idempotency_key}:approved"


def filing_problem(record: ApprovalRecord, *, session_id: str, customer_email: str) -> str | None:
    """Why `record`, arriving in a history event of that conversation, is not a request as
    `new_approval` files it; None when it is.

    Any actor's NATS user may publish history events: a record that came decided, re-escalated or
    audited already, or of another conversation, would be a decision nobody made or a request filed
    into someone else's chat (the sweep hands an approved, unexecuted record to the executor)."""
    if record.state is not ApprovalState.PENDING or record.decision is not None:
        return "it is decided already"
    if record.escalations or [(e.who, e.what) for e in record.audit] != [(SYSTEM, "requested")]:
        return "its audit trail is not a new request's"
    # The email as compared elsewhere: a producer may have kept its case.
    if record.session_id != session_id or normal_email(record.customer_email) != normal_email(customer_email):
        return "it is another conversation's"
    return None


def time_limit(priority: Priority) -> timedelta:
    return TIME_LIMITS[priority]


def new_approval(
    *,
    idempotency_key: str,
    session_id: str,
    message_id: str,
    customer_email: str,
    action: str,
    order: OrderFacts,
    priority: Priority,
    created_at: datetime,
    customer_tier: Literal["standard", "premium", "vip"] | None = None,
    request_id: str | None = None,
    customer_words: str = "",
    ref: str | None = None,
) -> ApprovalRecord:
    """A pending request, due `time_limit(priority)` after `created_at`; raises for an action no person
    approves (a return label, a note: those run at once or are refused)."""
    if action not in APPROVABLE:
        raise ValueError(f"{action} is not an action that waits for approval")
    return ApprovalRecord(
        id=approval_id(idempotency_key),
        ref=ref,
        session_id=session_id,
        message_id=message_id,
        customer_email=customer_email,
        customer_tier=customer_tier,
        action=CANCEL if action == CANCEL else REFUND,
        order=order,
        request_id=request_id,
        idempotency_key=idempotency_key,
        customer_words=customer_words,
        priority=priority,
        created_at=created_at,
        deadline_at=created_at + time_limit(priority),
        audit=[AuditEntry(who=SYSTEM, at=created_at, what="requested", why=_requested(action, order))],
    )


def _requested(action: str, order: OrderFacts) -> str:
    what = "cancellation" if action == CANCEL else "refund"
    return f"{what} of {order.order_id} filed for review by the store's policy"


def check_decision(
    record: ApprovalRecord,
    verdict: Verdict,
    *,
    amount: float | None,
    reason: str | None,
    refunded: float = 0.0,
) -> float | None:
    """The amount the decision carries (refund approvals), or raise: `DecisionRefused` (409) when the
    request is no longer pending, `InvalidDecision` (422) naming the field otherwise.

    `refunded`: what other approved refunds of the same order pay out already (`ApprovalStore`); a
    refund is approved for at most the order total less that, and by default for all of the rest."""
    if record.state is not ApprovalState.PENDING:
        assert record.decision is not None
        raise DecisionRefused(
            f"{record.id} was already {record.state.value} by {record.decision.by} at "
            f"{record.decision.at.isoformat()}"
        )
    if verdict == "deny":
        if reason is None or not reason.strip():
            raise InvalidDecision("reason", "a denial needs a reason (the customer is told it)")
        if amount is not None:
            raise InvalidDecision("amount", "a denial has no amount")
        return None
    if record.action != REFUND:
        if amount is not None:
            raise InvalidDecision("amount", "only a refund is approved for an amount")
        return None
    total = record.order.total
    # In the cents that would be paid: 0.004 once passed "more than 0" and became a final,
    # irreversible approval for 0.00; NaN passed every comparison and was stored as no amount at all.
    if amount is not None and not math.isfinite(amount):
        raise InvalidDecision("amount", "must be a number of at least 0.01")
    if amount is None:
        if total is None:
            raise InvalidDecision("amount", "the order total is unknown: name the amount to refund")
        left = _cents(total) - _cents(refunded)
        if left < 1:
            raise InvalidDecision("amount", f"nothing is left to refund: {_already(total, refunded)}")
        return left / 100
    cents = _cents(round(amount, 2))
    if cents < 1:
        raise InvalidDecision("amount", "must be more than 0 (at least 0.01)")
    if total is not None and cents > (left := _cents(total) - _cents(refunded)):
        if refunded <= 0:
            raise InvalidDecision("amount", f"must not exceed the order total ({total:.2f})")
        raise InvalidDecision(
            "amount", f"must not exceed {max(left, 0) / 100:.2f}: {_already(total, refunded)}"
        )
    return cents / 100


def approved_refunds(others: Iterable[ApprovalRecord], order_id: str) -> float:
    """What the approved refunds among `others` pay out for `order_id`, or will once they have run (a
    refund the commerce API refused when it ran pays nothing, nor one that `FAILED` before its request
    was sent; any other that failed may have paid, and counts)."""
    paid_nothing = {executed_what(REFUSED), executed_what(FAILED, sent=False)}
    return sum(
        r.decision.amount or 0.0
        for r in others
        if r.action == REFUND
        and r.order.order_id == order_id
        and r.state is ApprovalState.APPROVED
        and r.decision is not None
        and not any(e.what in paid_nothing for e in r.audit)
    )


def _cents(value: float) -> int:
    return round(value * 100)


def _already(total: float, refunded: float) -> str:
    return f"{refunded:.2f} of the order total ({total:.2f}) is approved for refund already"


def decide(
    record: ApprovalRecord,
    verdict: Verdict,
    agent: str,
    *,
    amount: float | None = None,
    reason: str | None = None,
    now: datetime | None = None,
    refunded: float = 0.0,
) -> ApprovalRecord:
    """The record after the decision (a new object). Raises `DecisionForbidden`, `DecisionRefused` or
    `InvalidDecision`. Nobody decides a request of their own customer account (the agent's name is
    their token's email address)."""
    if normal_email(agent) == normal_email(record.customer_email):
        raise DecisionForbidden(
            f"{record.id} is a request of your own customer account: another agent decides it"
        )
    approved_amount = check_decision(record, verdict, amount=amount, reason=reason, refunded=refunded)
    at = now or datetime.now(UTC)
    why = reason.strip() if reason and reason.strip() else None
    decision = Decision(verdict=verdict, by=agent, at=at, amount=approved_amount, reason=why)
    what = "approved" if verdict == "approve" else "denied"
    if approved_amount is not None:
        what += f" for {approved_amount:.2f}"
    state = ApprovalState.APPROVED if verdict == "approve" else ApprovalState.DENIED
    audit = [*record.audit, AuditEntry(who=agent, at=at, what=what, why=why)]
    return record.model_copy(update={"state": state, "decision": decision, "audit": audit})


def overdue(record: ApprovalRecord, now: datetime) -> bool:
    """Still pending after its deadline."""
    return record.state is ApprovalState.PENDING and now >= record.deadline_at


def more_urgent(priority: Priority) -> Priority:
    return PRIORITY_ORDER[max(0, PRIORITY_ORDER.index(priority) - 1)]


def reescalate(record: ApprovalRecord, now: datetime) -> ApprovalRecord:
    """An overdue request one step more urgent, with a new deadline from `now`; never a decision.

    Unchanged when it is not overdue (a decision that raced the timer wins)."""
    if not overdue(record, now):
        return record
    priority = more_urgent(record.priority)
    limit = time_limit(record.priority)
    entry = AuditEntry(
        who=SYSTEM,
        at=now,
        what=f"re-escalated to {priority}",
        why=f"no decision within {_words(limit)} at {record.priority} priority",
    )
    return record.model_copy(
        update={
            "priority": priority,
            "deadline_at": now + time_limit(priority),
            "escalations": record.escalations + 1,
            "audit": [*record.audit, entry],
        }
    )


def _words(limit: timedelta) -> str:
    minutes = int(limit.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


def customer_message(record: ApprovalRecord) -> str:
    """What the customer is told when a person decided (an agent turn written by that person)."""
    assert record.decision is not None
    order = record.order.order_id
    if record.action == CANCEL:
        if record.decision.verdict == "approve":
            return f"Your cancellation of {order} was approved: the order is cancelled."
        return f"Your cancellation request for {order} was declined: {record.decision.reason}"
    if record.decision.verdict == "approve":
        return f"Your refund request for {order} was approved for {record.decision.amount:.2f}."
    return f"Your refund request for {order} was declined: {record.decision.reason}"


# ---------------------------------------------------------------- messages between the processes


class ApprovalCommand(_Model):
    """`approvals.execute`: run this approved action (execution_coordinator)."""

    approval: ApprovalRecord


class ApprovalOutcome(_Model):
    """`approvals.outcome`: what running it did (the history service records it)."""

    approval_id: str
    status: Literal["done", "refused", "failed"]
    detail: str
    """What the customer is told (a refusal's or failure's words; `customer_message` when done)."""
    reason: str | None = None
    """Why it failed, for the audit trail and the agents (`failed` only): not told to the customer."""
    sent: bool | None = None
    """`failed` only: False when it failed before the mutation request was sent, so nothing was
    changed; None (the default, and every result of the releases before) when it may have been."""

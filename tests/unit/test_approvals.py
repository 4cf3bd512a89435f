"""Approval requests (issue 12 point 6), pure: the state machine, the amount rules, the time limits
and re-escalation. Nothing here touches a store or a network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from actormesh_runtime.approvals import (
    FAILED,
    TIME_LIMITS,
    ApprovalRecord,
    ApprovalState,
    AuditEntry,
    DecisionForbidden,
    DecisionRefused,
    InvalidDecision,
    OrderFacts,
    Verdict,
    approval_id,
    approved_refunds,
    customer_message,
    decide,
    executed_what,
    filing_problem,
    mutation_key,
    new_approval,
    overdue,
    reescalate,
)
from actormesh_runtime.envelope import ActionType
from actormesh_runtime.priority import Priority

T0 = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)
KEY = "am-create_refund_request-0123456789abcdef"


def _request(
    action: ActionType = ActionType.CREATE_REFUND_REQUEST,
    *,
    priority: Priority = "normal",
    total: float | None = 120.0,
) -> ApprovalRecord:
    return new_approval(
        idempotency_key=KEY if action is ActionType.CREATE_REFUND_REQUEST else "am-cancel_order-feed",
        session_id="sess-1",
        message_id="msg-1",
        customer_email="jane.smith@example.com",
        customer_tier="standard",
        action=action,
        order=OrderFacts(order_id="ORD-20001", status="processing", total=total),
        priority=priority,
        created_at=T0,
        request_id="RFR-1",
        customer_words="I want my money back for ORD-20001",
    )


def test_a_request_starts_pending_with_its_deadline_and_an_audit_entry() -> None:
    record = _request()
    assert record.state is ApprovalState.PENDING
    assert record.deadline_at == T0 + TIME_LIMITS["normal"]
    assert [(e.who, e.what) for e in record.audit] == [("system", "requested")]
    assert record.id == approval_id(KEY)


def test_the_same_action_always_maps_to_the_same_record() -> None:
    # A redelivered envelope carries the same idempotency key: no second request.
    assert approval_id(KEY) == approval_id(KEY)
    assert approval_id(KEY) != approval_id(KEY + "x")


@pytest.mark.parametrize(
    "action", [ActionType.CREATE_RETURN_LABEL, ActionType.ADD_NOTE, ActionType.TRACKING_LOOKUP], ids=str
)
def test_only_cancellations_and_refunds_wait_for_a_person(action: ActionType) -> None:
    with pytest.raises(ValueError, match="not an action that waits"):
        _request(action)


def test_approving_a_refund_defaults_to_the_order_total_and_is_audited() -> None:
    decided = decide(_request(), "approve", "alex@shop.example", now=T0 + timedelta(minutes=5))
    assert decided.state is ApprovalState.APPROVED
    assert decided.decision is not None
    assert decided.decision.amount == 120.0
    assert (decided.audit[-1].who, decided.audit[-1].what) == ("alex@shop.example", "approved for 120.00")
    assert customer_message(decided) == "Your refund request for ORD-20001 was approved for 120.00."


def test_a_refund_may_be_approved_for_less_never_for_more() -> None:
    assert decide(_request(), "approve", "a", amount=40.5).decision.amount == 40.5  # type: ignore[union-attr]
    with pytest.raises(InvalidDecision, match=r"amount: must not exceed the order total \(120.00\)") as exc:
        decide(_request(), "approve", "a", amount=120.01)
    assert exc.value.field == "amount"
    with pytest.raises(InvalidDecision, match="amount: must be more than 0"):
        decide(_request(), "approve", "a", amount=0)


@pytest.mark.parametrize("amount", [0.004, 0.001, 1e-9])
def test_a_refund_of_less_than_a_cent_is_refused_not_approved_for_nothing(amount: float) -> None:
    with pytest.raises(InvalidDecision, match="amount: must be more than 0") as exc:
        decide(_request(), "approve", "a", amount=amount)
    assert exc.value.field == "amount"
    assert decide(_request(), "approve", "a", amount=0.005).decision.amount == 0.01  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("action", "verdict", "amount", "reason", "field"),
    [
        pytest.param(ActionType.CANCEL_ORDER, "approve", 10.0, None, "amount", id="cancel-with-amount"),
        pytest.param(
            ActionType.CREATE_REFUND_REQUEST, "deny", None, None, "reason", id="deny-without-reason"
        ),
        pytest.param(ActionType.CREATE_REFUND_REQUEST, "deny", None, "  ", "reason", id="deny-blank-reason"),
        pytest.param(ActionType.CREATE_REFUND_REQUEST, "deny", 5.0, "no", "amount", id="deny-with-amount"),
    ],
)
def test_a_bad_decision_names_its_field(
    action: ActionType, verdict: str, amount: float | None, reason: str | None, field: str
) -> None:
    with pytest.raises(InvalidDecision) as exc:
        decide(_request(action), verdict, "a", amount=amount, reason=reason)  # type: ignore[arg-type]
    assert exc.value.field == field


def test_a_refund_with_an_unknown_total_needs_an_amount() -> None:
    with pytest.raises(InvalidDecision, match="amount: the order total is unknown"):
        decide(_request(total=None), "approve", "a")
    assert decide(_request(total=None), "approve", "a", amount=15).decision.amount == 15  # type: ignore[union-attr]


@pytest.mark.parametrize("first", ["approve", "deny"])
@pytest.mark.parametrize("second", ["approve", "deny"])
def test_a_decided_request_cannot_be_decided_again(first: str, second: str) -> None:
    # A double click, two agents at once, a redelivered command: the second decision is a 409.
    decided = decide(_request(), first, "alex", reason="duplicate order", now=T0)  # type: ignore[arg-type]
    with pytest.raises(DecisionRefused, match=f"already {decided.state.value} by alex"):
        decide(decided, second, "sam", reason="again")  # type: ignore[arg-type]


def test_a_denied_cancellation_tells_the_customer_why() -> None:
    denied = decide(_request(ActionType.CANCEL_ORDER), "deny", "alex", reason="  it has already shipped ")
    assert denied.state is ApprovalState.DENIED
    assert denied.audit[-1].why == "it has already shipped"
    assert customer_message(denied) == (
        "Your cancellation request for ORD-20001 was declined: it has already shipped"
    )
    approved = decide(_request(ActionType.CANCEL_ORDER), "approve", "alex")
    assert (
        customer_message(approved) == "Your cancellation of ORD-20001 was approved: the order is cancelled."
    )


def test_the_mutation_key_is_one_per_request() -> None:
    record = _request()
    assert mutation_key(record) == mutation_key(decide(record, "approve", "a"))
    assert mutation_key(record) != mutation_key(_request(ActionType.CANCEL_ORDER))


@pytest.mark.parametrize(
    ("priority", "limit", "raised"),
    [
        pytest.param("low", timedelta(hours=24), "normal", id="low"),
        pytest.param("normal", timedelta(hours=4), "high", id="normal"),
        pytest.param("high", timedelta(hours=1), "urgent", id="high"),
        pytest.param("urgent", timedelta(minutes=15), "urgent", id="urgent-stays-urgent"),
    ],
)
def test_an_overdue_request_is_re_escalated_never_approved(
    priority: Priority, limit: timedelta, raised: Priority
) -> None:
    record = _request(priority=priority)
    assert not overdue(record, T0 + limit - timedelta(seconds=1))
    assert reescalate(record, T0 + limit - timedelta(seconds=1)) == record
    late = T0 + limit
    again = reescalate(record, late)
    assert again.state is ApprovalState.PENDING
    assert again.decision is None
    assert (again.priority, again.escalations) == (raised, 1)
    assert again.deadline_at == late + TIME_LIMITS[raised]
    assert again.audit[-1].who == "system"
    assert again.audit[-1].what == f"re-escalated to {raised}"


def test_a_decided_request_is_never_re_escalated() -> None:
    decided = decide(_request(priority="urgent"), "deny", "alex", reason="fraud check failed", now=T0)
    much_later = T0 + timedelta(days=3)
    assert not overdue(decided, much_later)
    assert reescalate(decided, much_later) == decided


def test_re_escalation_repeats_while_nobody_decides() -> None:
    record = _request(priority="low")
    now = T0
    for _ in range(4):
        now = record.deadline_at
        record = reescalate(record, now)
    assert record.priority == "urgent"
    assert record.escalations == 4
    assert record.state is ApprovalState.PENDING


@pytest.mark.parametrize("amount", [float("nan"), float("inf"), float("-inf")], ids=str)
def test_an_amount_that_is_not_a_number_is_refused(amount: float) -> None:
    # Over NATS (history.query) nothing but this check stands between the amount and the decision: NaN
    # passed every comparison and was stored as no amount at all (a refund of nothing, final).
    with pytest.raises(InvalidDecision) as refused:
        decide(_request(), "approve", "alex@shop.example", amount=amount)
    assert refused.value.field == "amount"


def test_refunds_of_one_order_together_stay_within_its_total() -> None:
    record = _request()  # total 120.00
    with pytest.raises(InvalidDecision, match=r"must not exceed 20\.00: 100\.00 of the order total"):
        decide(record, "approve", "alex@shop.example", amount=20.01, refunded=100.0)
    rest = decide(record, "approve", "alex@shop.example", refunded=100.0)
    assert rest.decision is not None
    assert rest.decision.amount == 20.0
    with pytest.raises(InvalidDecision, match="nothing is left to refund"):
        decide(record, "approve", "alex@shop.example", refunded=120.0)


def test_what_other_approved_refunds_pay_out() -> None:
    first = decide(_request(), "approve", "alex@shop.example", amount=30)
    refused = decide(_request().model_copy(update={"id": "APR-00000001"}), "approve", "a", amount=40)
    refused = refused.model_copy(
        update={"audit": [*refused.audit, AuditEntry(who="a", at=T0, what="executed: refused")]}
    )
    other_order = decide(
        _request().model_copy(update={"order": OrderFacts(order_id="ORD-9", total=50.0)}), "approve", "a"
    )
    denied = decide(_request(), "deny", "a", reason="no")
    assert approved_refunds([first, refused, other_order, denied, _request()], "ORD-20001") == 30.0


@pytest.mark.parametrize("agent", ["jane.smith@example.com", " Jane.Smith@Example.com "])
@pytest.mark.parametrize("verdict", ["approve", "deny"])
def test_nobody_decides_a_request_of_their_own_account(agent: str, verdict: Verdict) -> None:
    with pytest.raises(DecisionForbidden):
        decide(_request(), verdict, agent, reason="mine")


def test_only_a_new_request_of_its_own_conversation_may_be_filed() -> None:
    record = _request()
    where = {"session_id": "sess-1", "customer_email": "Jane.Smith@example.com"}
    assert filing_problem(record, **where) is None
    approved = decide(record, "approve", "alex@shop.example")
    assert filing_problem(approved, **where) == "it is decided already"
    raised = reescalate(record, T0 + timedelta(hours=5))
    assert filing_problem(raised, **where) == "its audit trail is not a new request's"
    assert filing_problem(record, session_id="other", customer_email=where["customer_email"]) is not None
    assert filing_problem(record, session_id="sess-1", customer_email="bob@example.com") is not None


def _executed(record: ApprovalRecord, what: str) -> ApprovalRecord:
    return record.model_copy(update={"audit": [*record.audit, AuditEntry(who="a", at=T0, what=what)]})


def test_a_failed_refund_counts_unless_its_request_was_surely_never_sent() -> None:
    approved = decide(_request(), "approve", "alex@shop.example", amount=30)
    may_have_paid = _executed(approved, executed_what(FAILED))  # also every result of older releases
    never_sent = _executed(approved, executed_what(FAILED, sent=False))

    assert may_have_paid.audit[-1].what == "executed: failed"
    assert approved_refunds([may_have_paid], "ORD-20001") == 30.0
    assert approved_refunds([never_sent], "ORD-20001") == 0.0
    assert executed_what(FAILED, sent=None) == "executed: failed"
    assert executed_what("done", sent=False) == "executed: done"

"""Approval requests without a server: which outcomes become requests, and their storage in a real
SQLite file — created once, decided once, a result recorded once, overdue ones re-escalated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from actormesh_runtime.approvals import ApprovalState, DecisionRefused, InvalidDecision
from actormesh_runtime.envelope import (
    ActionOutcome,
    ActionStatus,
    ActionType,
)
from actormesh_runtime.history.store import HistoryStore
from actormesh_runtime.policy.approval import approval_records
from tests.support.envelopes import BOB, JANE, JOHN, make_envelope
from tests.support.history_events import (
    filed,
)

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("email", "order", "action", "status", "priority"),
    [
        pytest.param(
            BOB, "ORD-30001", ActionType.CANCEL_ORDER, ActionStatus.PENDING_REVIEW, "normal", id="cancel"
        ),
        pytest.param(
            JOHN,
            "ORD-10001",
            ActionType.CREATE_REFUND_REQUEST,
            ActionStatus.PENDING_REVIEW,
            "normal",
            id="refund",
        ),
        pytest.param(
            JANE, "ORD-20001", ActionType.CREATE_REFUND_REQUEST, ActionStatus.PENDING_REVIEW, "high", id="vip"
        ),
        pytest.param(
            JANE, "ORD-20001", ActionType.CANCEL_ORDER, ActionStatus.DONE, None, id="done-needs-no-one"
        ),
        pytest.param(
            JOHN,
            "ORD-10001",
            ActionType.CREATE_RETURN_LABEL,
            ActionStatus.PENDING_REVIEW,
            None,
            id="not-approvable",
        ),
    ],
)
def test_which_outcomes_wait_for_a_person(
    email: str, order: str, action: ActionType, status: ActionStatus, priority: str | None
) -> None:
    event = filed(email, order, action, status)
    if priority is None:
        assert event.approvals == []
        return
    [record] = event.approvals
    assert (record.action, record.order.order_id, record.priority) == (action.value, order, priority)
    assert record.customer_email == email
    assert record.customer_tier == {BOB: "standard", JOHN: "premium", JANE: "vip"}[email]
    assert record.order.total is not None
    assert record.idempotency_key == f"key-{order}"
    assert record.deadline_at - record.created_at >= timedelta(minutes=15)
    assert approval_records(make_envelope("hi", email), NOW) == []


async def test_created_once_decided_once_executed_once(store: HistoryStore) -> None:
    event = filed(BOB, "ORD-30001", ActionType.CANCEL_ORDER, ActionStatus.PENDING_REVIEW, session="bob")
    [request] = event.approvals
    await store.add_events([event])
    await store.add_events([event.model_copy(deep=True)])  # redelivered
    page, _ = await store.approvals.page(None, 50, None)
    assert [r.id for r in page] == [request.id]

    approved = await store.approvals.decide(request.id, "approve", "ann", amount=None, reason=None)
    assert approved.state is ApprovalState.APPROVED
    with pytest.raises(DecisionRefused, match="already approved by ann"):
        await store.approvals.decide(request.id, "deny", "bob", amount=None, reason="no")
    assert [r.id for r in await store.approvals.approved_unexecuted(datetime.now(UTC))] == [request.id]

    done = await store.approvals.record_execution(request.id, "done", "done")
    assert done is not None
    assert await store.approvals.record_execution(request.id, "done", "done") is None  # a second result
    assert await store.approvals.approved_unexecuted(datetime.now(UTC)) == []
    turns = await store.conversation("bob")
    people = [(t.author, t.text) for t in turns if t.author]
    assert people == [("ann", "Your cancellation of ORD-30001 was approved: the order is cancelled.")]
    stored = await store.approvals.get(request.id)
    assert stored is not None
    assert [e.what for e in stored.audit] == ["requested", "approved", "executed: done"]


async def test_a_denial_is_told_and_needs_a_reason(store: HistoryStore) -> None:
    event = filed(
        JOHN, "ORD-10001", ActionType.CREATE_REFUND_REQUEST, ActionStatus.PENDING_REVIEW, session="j"
    )
    [request] = event.approvals
    await store.add_events([event])
    with pytest.raises(InvalidDecision, match="reason"):
        await store.approvals.decide(request.id, "deny", "ann", amount=None, reason=" ")
    denied = await store.approvals.decide(request.id, "deny", "ann", amount=None, reason="refunded on 1 Dec")
    assert denied.state is ApprovalState.DENIED
    turns = await store.conversation("j")
    assert turns[-1].author == "ann"
    assert turns[-1].text == "Your refund request for ORD-10001 was declined: refunded on 1 Dec"
    assert await store.approvals.pending_counts() == {"urgent": 0, "high": 0, "normal": 0, "low": 0}


async def test_overdue_requests_are_reescalated_in_queue_order(store: HistoryStore) -> None:
    normal = filed(BOB, "ORD-30001", ActionType.CANCEL_ORDER, ActionStatus.PENDING_REVIEW, session="a")
    vip = filed(JANE, "ORD-20001", ActionType.CREATE_REFUND_REQUEST, ActionStatus.PENDING_REVIEW, session="b")
    await store.add_events([normal, vip])
    page, _ = await store.approvals.page(ApprovalState.PENDING, 50, None)
    assert [r.priority for r in page] == ["high", "normal"]  # most urgent first
    created = normal.approvals[0].created_at
    assert await store.approvals.reescalate_overdue(created + timedelta(hours=3)) != []  # the VIP's 1 h
    raised = await store.approvals.reescalate_overdue(created + timedelta(hours=4, minutes=1))
    by_id = {r.id: r for r in raised}
    record, vip_again = by_id[normal.approvals[0].id], by_id[vip.approvals[0].id]
    assert (record.priority, record.escalations, record.state) == ("high", 1, ApprovalState.PENDING)
    # Urgent cannot rise further: it is raised again every 15 minutes (counted), never decided.
    assert (vip_again.priority, vip_again.escalations, vip_again.decision) == ("urgent", 2, None)
    assert await store.approvals.pending_counts() == {"urgent": 1, "high": 1, "normal": 0, "low": 0}


def test_without_a_known_customer_the_request_names_no_tier_and_no_order_facts() -> None:
    unknown = make_envelope("please handle ORD-10001", JOHN, with_context=True)
    assert unknown.context is not None
    unknown.context.found = False
    unknown.actions = [
        ActionOutcome(
            type=ActionType.CREATE_REFUND_REQUEST,
            order_id="ORD-10001",
            status=ActionStatus.PENDING_REVIEW,
            detail="filed",
            idempotency_key="key-x",
        )
    ]
    [record] = approval_records(unknown, NOW)
    assert (record.customer_tier, record.order.status, record.order.items) == (None, None, [])

"""Execution policy as pure functions: tiers, order states, the 30-day window, targeting and ownership."""

from __future__ import annotations

from datetime import timedelta

import pytest

from actormesh_runtime.actors.execution_coordinator import idempotency_key, precheck
from actormesh_runtime.envelope import (
    ActionStatus,
    ActionType,
    CustomerContext,
    Intent,
    IntentResult,
    Order,
    OrderItem,
    Screening,
)
from actormesh_runtime.policy.decision import decide, orders_in_question
from actormesh_runtime.policy.orders import (
    NO_ELIGIBLE_ORDER,
    Plan,
    is_eligible,
    orders_by_item,
    plan_action,
    plan_cancel,
    plan_return,
    select_by_item,
    select_target,
)
from tests.support.commerce import NOW, context_for

JOHN = context_for("john.doe@example.com")
JANE = context_for("jane.smith@example.com")
BOB = context_for("bob.wilson@example.com")
MIA = context_for("mia.park@example.com")


def order(status: str, *, delivered_days_ago: float | None = None, tracking: str | None = None) -> Order:
    delivered = (
        (NOW - timedelta(days=delivered_days_ago)).isoformat() if delivered_days_ago is not None else None
    )
    return Order(
        order_id="ORD-55555",
        customer_id="CUST-1001",
        status=status,
        placed_at=(NOW - timedelta(days=60)).isoformat(),
        items=[OrderItem(name="Desk Lamp", unit_price=30.0)],
        total=30.0,
        tracking_number=tracking,
        delivered_at=delivered,
    )


# ---------------------------------------------------------------- cancellation by tier and state


@pytest.mark.parametrize(
    ("status", "tier", "kind", "says"),
    [
        pytest.param("pending", "premium", "execute", "", id="premium-pending-executes"),
        pytest.param("confirmed", "vip", "execute", "", id="vip-confirmed-executes"),
        pytest.param("processing", "vip", "execute", "", id="vip-processing-executes"),
        pytest.param("processing", "standard", "request", "", id="standard-files-request"),
        pytest.param("pending", "standard", "request", "", id="standard-pending-request"),
        pytest.param("pending", None, "request", "", id="unknown-tier-request"),
        pytest.param(
            "shipped", "vip", "refuse", "return it within 30 days", id="shipped-refused-offers-return"
        ),
        pytest.param("delivered", "premium", "refuse", "already been delivered", id="delivered-refused"),
        pytest.param("cancelled", "premium", "refuse", "already cancelled", id="already-cancelled"),
        pytest.param("return_started", "premium", "refuse", "return is already", id="return-in-progress"),
    ],
)
def test_cancel_policy(status: str, tier: str | None, kind: str, says: str) -> None:
    plan = plan_cancel(order(status), tier)  # type: ignore[arg-type]
    assert plan.kind == kind
    assert says in plan.detail


# ---------------------------------------------------------------- the 30-day return window


@pytest.mark.parametrize(
    ("status", "days", "kind", "says"),
    [
        pytest.param("delivered", 0, "execute", "", id="delivered-today"),
        pytest.param("delivered", 12, "execute", "", id="delivered-12-days"),
        pytest.param("delivered", 30, "execute", "", id="day-30-still-in-window"),
        pytest.param("delivered", 30.5, "refuse", "within 30 days", id="day-30-and-a-half-out"),
        pytest.param("delivered", 31, "refuse", "delivered 31 days ago", id="day-31-out"),
        pytest.param("delivered", 45, "refuse", "no longer eligible", id="delivered-45-days"),
        pytest.param("shipped", None, "refuse", "not been delivered yet", id="not-delivered-yet"),
        pytest.param("processing", None, "refuse", "cancelled instead", id="not-shipped-offers-cancel"),
        pytest.param("cancelled", None, "refuse", "nothing to return", id="cancelled"),
        pytest.param("return_started", 3, "refuse", "already issued", id="label-already-issued"),
    ],
)
def test_return_window(status: str, days: float | None, kind: str, says: str) -> None:
    plan = plan_return(order(status, delivered_days_ago=days), NOW)
    assert plan.kind == kind
    assert says in plan.detail


@pytest.mark.parametrize(
    ("action", "status", "tracking", "expected"),
    [
        pytest.param(
            ActionType.CREATE_REFUND_REQUEST, "delivered", None, Plan("request"), id="refund-always-request"
        ),
        pytest.param(
            ActionType.CREATE_REFUND_REQUEST, "processing", None, Plan("request"), id="refund-unshipped"
        ),
        pytest.param(
            ActionType.TRACKING_LOOKUP, "shipped", "TRK123456789", Plan("execute"), id="tracking-lookup"
        ),
        pytest.param(ActionType.ADD_NOTE, "delivered", None, Plan("execute"), id="note"),
    ],
)
def test_other_actions(action: ActionType, status: str, tracking: str | None, expected: Plan) -> None:
    assert plan_action(action, order(status, tracking=tracking), tier="premium", now=NOW) == expected


def test_tracking_without_a_shipment_is_skipped() -> None:
    plan = plan_action(ActionType.TRACKING_LOOKUP, order("processing"), tier="vip", now=NOW)
    assert plan.kind == "skip"
    assert "not shipped" in plan.detail


# ---------------------------------------------------------------- targeting and ownership


@pytest.mark.parametrize(
    ("context", "action", "named", "tracking", "target", "problem", "candidates"),
    [
        pytest.param(JANE, ActionType.CANCEL_ORDER, (), (), "ORD-20001", None, (), id="unique-eligible"),
        pytest.param(JOHN, ActionType.CANCEL_ORDER, (), (), None, "none_eligible", (), id="none-eligible"),
        pytest.param(
            JOHN,
            ActionType.CREATE_RETURN_LABEL,
            (),
            (),
            "ORD-10001",
            None,
            (),
            id="return-only-recent-delivery",
        ),
        pytest.param(
            JOHN,
            ActionType.CREATE_REFUND_REQUEST,
            (),
            (),
            None,
            "ambiguous",
            ("ORD-10002", "ORD-10001", "ORD-10003"),
            id="several-eligible-ask",
        ),
        pytest.param(JANE, ActionType.TRACKING_LOOKUP, (), (), "ORD-20002", None, (), id="unique-in-transit"),
        pytest.param(
            JOHN,
            ActionType.CANCEL_ORDER,
            ("ORD-10002",),
            (),
            "ORD-10002",
            None,
            (),
            id="named-ineligible-still-targeted",
        ),
        pytest.param(
            JOHN,
            ActionType.CANCEL_ORDER,
            ("ORD-20001",),
            (),
            None,
            "not_owned",
            (),
            id="named-other-customers-order",
        ),
        pytest.param(
            JOHN,
            ActionType.TRACKING_LOOKUP,
            (),
            ("TRK200000001",),
            None,
            "not_owned",
            (),
            id="named-other-customers-tracking",
        ),
        pytest.param(
            JOHN,
            ActionType.TRACKING_LOOKUP,
            (),
            ("TRK100000001",),
            "ORD-10001",
            None,
            (),
            id="named-own-tracking",
        ),
        pytest.param(JOHN, ActionType.ADD_NOTE, (), (), None, None, (), id="note-needs-no-order"),
        pytest.param(
            JOHN, ActionType.ADD_NOTE, ("ORD-20001",), (), None, None, (), id="note-ignores-foreign-order"
        ),
        pytest.param(
            BOB, ActionType.CREATE_RETURN_LABEL, (), (), None, "none_eligible", (), id="nothing-delivered"
        ),
    ],
)
def test_select_target(
    context: CustomerContext,
    action: ActionType,
    named: tuple[str, ...],
    tracking: tuple[str, ...],
    target: str | None,
    problem: str | None,
    candidates: tuple[str, ...],
) -> None:
    result = select_target(action, context.orders, named_order_ids=named, named_tracking=tracking, now=NOW)
    assert (result.order_id, result.problem, result.candidates) == (target, problem, candidates)
    assert result.needs_clarification is (problem == "ambiguous")
    if problem == "not_owned":
        assert result.named in (*named, *tracking)


@pytest.mark.parametrize(
    ("context", "action", "message", "target", "candidates"),
    [
        pytest.param(
            JANE,
            ActionType.CANCEL_ORDER,
            "Please cancel my keyboard",
            "ORD-20002",
            (),
            id="item-beats-the-unique-eligible-other-order",
        ),
        pytest.param(
            JANE,
            ActionType.CREATE_RETURN_LABEL,
            "I want to return my keyboard",
            "ORD-20002",
            (),
            id="item-named-though-not-yet-delivered",
        ),
        pytest.param(
            JOHN,
            ActionType.CREATE_REFUND_REQUEST,
            "I want a refund for my headphones",
            "ORD-10001",
            (),
            id="item-picks-among-several-eligible",
        ),
        pytest.param(
            JOHN,
            ActionType.CREATE_REFUND_REQUEST,
            "Refund the headphones and the laptop stand",
            None,
            ("ORD-10002", "ORD-10001"),
            id="several-items-narrow-the-question",
        ),
        pytest.param(
            JOHN,
            ActionType.CREATE_REFUND_REQUEST,
            "I was charged twice",
            None,
            ("ORD-10002", "ORD-10001", "ORD-10003"),
            id="no-item-named",
        ),
        pytest.param(
            JOHN,
            ActionType.CREATE_RETURN_LABEL,
            "Please return my headphones",
            "ORD-10001",
            (),
            id="return-by-item",
        ),
        pytest.param(
            JANE,
            ActionType.CANCEL_ORDER,
            "Cancel the gaming mouse please",
            "ORD-20001",
            (),
            id="cancel-by-item",
        ),
        pytest.param(
            JOHN,
            ActionType.CREATE_RETURN_LABEL,
            "Return my laptop stand and my notebook set",
            None,
            ("ORD-10002", "ORD-10003"),
            id="items-named-none-eligible-asks-never-another-order",
        ),
        pytest.param(
            JOHN,
            ActionType.CREATE_RETURN_LABEL,
            "Return my headphones and my notebook set",
            "ORD-10001",
            (),
            id="items-named-one-eligible",
        ),
    ],
)
def test_select_target_by_item(
    context: CustomerContext,
    action: ActionType,
    message: str,
    target: str | None,
    candidates: tuple[str, ...],
) -> None:
    # The order the customer means by its item is the one acted on (or refused), never another.
    result = select_target(action, context.orders, message=message, now=NOW)
    assert (result.order_id, result.candidates) == (target, candidates)


def test_every_order_action_explains_no_eligible_order() -> None:
    for action in ActionType:
        if action is not ActionType.ADD_NOTE:
            status, detail = NO_ELIGIBLE_ORDER[action]
            assert status in ("refused", "skipped")
            assert detail


# ---------------------------------------------------------------- account gate and idempotency keys


@pytest.mark.parametrize(
    ("context", "action", "status"),
    [
        pytest.param(
            CustomerContext(found=False, email="x@example.com"),
            ActionType.CANCEL_ORDER,
            ActionStatus.SKIPPED,
            id="unknown-customer-skipped",
        ),
        pytest.param(MIA, ActionType.CANCEL_ORDER, ActionStatus.REFUSED, id="suspended-no-changes"),
        pytest.param(MIA, ActionType.CREATE_REFUND_REQUEST, ActionStatus.REFUSED, id="suspended-no-refund"),
        pytest.param(MIA, ActionType.TRACKING_LOOKUP, None, id="suspended-may-track"),
        pytest.param(MIA, ActionType.ADD_NOTE, None, id="suspended-note-ok"),
        pytest.param(JOHN, ActionType.CANCEL_ORDER, None, id="active-proceeds"),
    ],
)
def test_account_precheck(context: CustomerContext, action: ActionType, status: ActionStatus | None) -> None:
    outcome = precheck(action, context)
    assert (outcome.status if outcome else None) == status


@pytest.mark.parametrize(
    ("account_status", "said"),
    [
        ("closed", "Your account is closed"),
        ("banned", "Your account is banned"),
        ("pending_verification", "Your account is pending verification"),
        ("", "Your account is not active"),
        (None, "Your account is not active"),
    ],
)
@pytest.mark.parametrize(
    "action",
    [ActionType.CANCEL_ORDER, ActionType.CREATE_RETURN_LABEL, ActionType.CREATE_REFUND_REQUEST],
)
def test_an_account_that_is_not_active_gets_no_order_change(
    account_status: str | None, said: str, action: ActionType
) -> None:
    """Before: only "suspended" was refused here; a status the rules do not know passed as active."""
    context = JANE.model_copy(update={"account_status": account_status})
    outcome = precheck(action, context)
    assert outcome is not None
    assert outcome.status is ActionStatus.REFUSED
    assert outcome.detail.startswith(said)
    assert precheck(ActionType.TRACKING_LOOKUP, context) is None
    assert precheck(ActionType.ADD_NOTE, context) is None


def test_idempotency_key_is_stable_and_distinct() -> None:
    key = idempotency_key("msg-1", ActionType.CANCEL_ORDER, "ORD-20001")
    assert key == idempotency_key("msg-1", ActionType.CANCEL_ORDER, "ORD-20001")
    others = {
        idempotency_key("msg-2", ActionType.CANCEL_ORDER, "ORD-20001"),
        idempotency_key("msg-1", ActionType.CREATE_REFUND_REQUEST, "ORD-20001"),
        idempotency_key("msg-1", ActionType.CANCEL_ORDER, "ORD-30001"),
        idempotency_key("msg-1", ActionType.ADD_NOTE, None),
    }
    assert key not in others
    assert len(others) == 4
    assert len(key) <= 200
    assert key.startswith("am-cancel_order-")


# ---------------------------------------------------------------- which orders a question is about


def test_a_refund_cannot_be_requested_for_a_cancelled_order() -> None:
    assert not is_eligible(ActionType.CREATE_REFUND_REQUEST, order("cancelled"), NOW)
    assert is_eligible(ActionType.CREATE_REFUND_REQUEST, order("delivered", delivered_days_ago=90), NOW)


def test_an_item_is_found_in_singular_or_plural() -> None:
    # "laptop stands" names the order with a "Laptop Stand"; "lamps" the one with a "Desk Lamp".
    assert [o.order_id for o in orders_by_item(JOHN.orders, "the laptop stands are wobbly")] == ["ORD-10002"]
    assert orders_by_item([order("delivered")], "both lamps flicker") == [order("delivered")]
    assert orders_by_item([order("delivered")], "the lampshade") == []


@pytest.mark.parametrize(
    ("intent", "expected"),
    [
        pytest.param(Intent.PRODUCT_ISSUE, ["delivered"], id="product-issue-delivered-only"),
        pytest.param(Intent.GENERAL_QUESTION, ["delivered", "shipped", "cancelled"], id="no-rule-all"),
        pytest.param(Intent.CANCELLATION_REQUEST, [], id="cancel-only-cancellable"),
    ],
)
def test_orders_in_question(intent: Intent, expected: list[str]) -> None:
    orders = [order("delivered", delivered_days_ago=90), order("shipped"), order("cancelled")]
    assert [o.status for o in orders_in_question(intent, orders, NOW)] == expected


def test_without_a_customer_context_nothing_is_planned() -> None:
    intent = IntentResult(intent=Intent.ORDER_STATUS, confidence=0.9, method="rules")
    decision = decide(
        sentiment=None, intent=intent, context=None, screening=Screening(), threshold=0.45, now=NOW
    )
    assert (decision.escalate, decision.planned_actions, decision.target_order_id) == (False, [], None)


@pytest.mark.parametrize(
    ("context", "message", "target", "candidates"),
    [
        pytest.param(JOHN, "Where are my headphones?", "ORD-10001", (), id="one-order-matches"),
        pytest.param(JANE, "Is the keyboard coming?", "ORD-20002", (), id="other-customer-one-match"),
        pytest.param(
            JOHN,
            "What about my notebook set and my laptop stand?",
            None,
            ("ORD-10002", "ORD-10003"),
            id="several-orders-match-ask",
        ),
        pytest.param(JOHN, "Where is my stuff?", None, (), id="no-item-named"),
        pytest.param(JOHN, "Is the gaming mouse coming?", None, (), id="another-customers-item"),
    ],
)
def test_select_by_item(
    context: CustomerContext, message: str, target: str | None, candidates: tuple[str, ...]
) -> None:
    result = select_by_item(context.orders, message)
    assert (result.order_id, result.candidates) == (target, candidates)
    assert result.needs_clarification is bool(candidates)

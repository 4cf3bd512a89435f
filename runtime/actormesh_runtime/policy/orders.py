"""Which order an action targets, and what the store policy allows for that order. Pure functions.

decision_router calls `select_target` to fill `Decision.target_order_id`/`needs_clarification`;
execution_coordinator calls it again (same inputs, same answer) and then `plan_action` for the
verdict on the chosen order. Times come from the envelope's `created_at`, so a replayed envelope
gets the same answers. Tested table-driven in tests/unit/test_execution_policy.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from actormesh_runtime.envelope import ActionType, CustomerContext, Order
from actormesh_runtime.store_policy import CANCELLABLE_STATUSES, RETURN_WINDOW, RETURN_WITHIN

IN_TRANSIT = frozenset({"shipped"})
KNOWN_STATUSES = CANCELLABLE_STATUSES | IN_TRANSIT | {"delivered", "cancelled", "return_started"}
"""Order states the rules below know; any other one is never guessed at (`unknown_state`)."""
EXECUTES_CANCELLATION = frozenset({"premium", "vip"})
"""Tiers whose cancellations are executed; other tiers file a request for review."""

Tier = Literal["standard", "premium", "vip"]
Problem = Literal["not_owned", "none_eligible", "ambiguous"]
PlanKind = Literal["execute", "request", "refuse", "skip"]


@dataclass(frozen=True)
class Targeting:
    order_id: str | None = None
    problem: Problem | None = None
    named: str | None = None
    """The id the customer named when it is not on their account (problem == "not_owned")."""
    candidates: tuple[str, ...] = ()
    """The eligible orders when several could be meant (problem == "ambiguous")."""

    @property
    def needs_clarification(self) -> bool:
        return self.problem == "ambiguous"


@dataclass(frozen=True)
class Plan:
    """What to do with one action on one order: call the API (execute/request) or explain why not."""

    kind: PlanKind
    detail: str = ""


ORDERS_UNAVAILABLE = "orders: unavailable"
"""How `CustomerContext.errors` says the orders could not be read: no order is known, so none may be
called missing, not the customer's, or not eligible (context_retriever writes it)."""


ORDERS_UNAVAILABLE_DETAIL = (
    "We couldn't load your orders just now, so nothing was changed; please try again in a few minutes."
)
"""execution_coordinator's outcome for an order action when the orders are unavailable."""


def orders_unavailable(context: CustomerContext | None) -> bool:
    return context is not None and any(e.startswith(ORDERS_UNAVAILABLE) for e in context.errors)


MAX_CONTEXT_ORDERS = 100
"""Orders a context carries (the newest): thousands would outgrow the bus's message limit, and every
order a customer can still cancel or return is a recent one."""
ORDERS_TRUNCATED = "orders: only the newest"
"""How an older context_retriever said, in `CustomerContext.errors`, that older orders were left out
(now `CustomerContext.orders_total`); still read, for envelopes it wrote that are in flight during a
rollout."""


def orders_truncated(context: CustomerContext | None) -> bool:
    """Older orders were left out of the context: an order named but not found may be an older one
    of theirs, so it is "not among your recent orders", never "not on your account"."""
    if context is None:
        return False
    return context.orders_total is not None or any(e.startswith(ORDERS_TRUNCATED) for e in context.errors)


def not_found_sentence(order_ref: str, context: CustomerContext | None) -> str:
    """What the customer is told about an order they named that is not in the context."""
    if orders_truncated(context):
        return (
            f"We could not find {order_ref} among your {MAX_CONTEXT_ORDERS} most recent orders; "
            "our support team can look further back."
        )
    return f"We could not find {order_ref} on your account."


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 time; one without an offset (or a bare date) is taken as UTC, as the APIs state
    their times, because comparing it with the envelope's aware clock would raise."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def within_return_window(order: Order, now: datetime) -> bool:
    delivered = parse_time(order.delivered_at)
    return order.status == "delivered" and delivered is not None and now - delivered <= RETURN_WINDOW


PRODUCED_STATUS: dict[ActionType, str] = {
    ActionType.CANCEL_ORDER: "cancelled",
    ActionType.CREATE_RETURN_LABEL: "return_started",
}
"""The order status an executed action leaves behind."""


def already_done(action: ActionType, order: Order) -> bool:
    """`order` is in the state `action` produces. On a rerun of a message (a later delivery: a retry,
    or a fused or direct chain run again from its first step) that may be this very message's own
    doing, so the order stays a target and the API is asked again with the same idempotency key: it
    answers with what it did then, or refuses if someone else did it (execution_coordinator)."""
    return PRODUCED_STATUS.get(action) == order.status


def is_eligible(action: ActionType, order: Order, now: datetime) -> bool:
    """Could `action` apply to `order` at all? Used to find the unique eligible order."""
    if action is ActionType.CANCEL_ORDER:
        return order.status in CANCELLABLE_STATUSES
    if action is ActionType.CREATE_RETURN_LABEL:
        return within_return_window(order, now)
    if action is ActionType.CREATE_REFUND_REQUEST:
        return order.status != "cancelled"
    if action is ActionType.TRACKING_LOOKUP:
        return order.tracking_number is not None and order.status in IN_TRANSIT
    return True


def _stem(word: str) -> str:
    return word[:-1] if word.endswith("s") else word


def _words(text: str) -> set[str]:
    return {_stem(w) for w in re.findall(r"[a-z]{4,}", text.lower())}


def orders_by_item(orders: Sequence[Order], message: str) -> list[Order]:
    """Orders with an item the message names ("my headphones" -> the order with Wireless Headphones)."""
    said = _words(message)
    return [o for o in orders if any(_words(item.name) & said for item in o.items)]


def select_target(
    action: ActionType,
    orders: Sequence[Order],
    *,
    named_order_ids: Sequence[str] = (),
    named_tracking: Sequence[str] = (),
    message: str = "",
    now: datetime,
    rerun: bool = False,
) -> Targeting:
    """The order named in the message if it is the customer's, else the unique eligible one.

    Named means by order id or tracking number, else by item ("my keyboard"): one order whose items
    the message names is the target even when the action will be refused for it (so the refusal is
    about the order the customer meant); several narrow the eligible orders to those. On a `rerun`,
    an order already in the state the action produces counts as eligible (`already_done`).
    `orders` must already be the customer's own orders (context_retriever guarantees it); a named
    id outside them is refused without saying whether it exists.
    """
    by_tracking = {o.tracking_number: o.order_id for o in orders if o.tracking_number}
    owned = {o.order_id for o in orders}
    named = [*named_order_ids, *named_tracking]
    for ref in named:
        order_id = ref if ref in owned else by_tracking.get(ref)
        if order_id is not None:
            return Targeting(order_id=order_id)
    if action is ActionType.ADD_NOTE:
        return Targeting()  # a note belongs to the customer; an order is optional
    if named:
        return Targeting(problem="not_owned", named=named[0])
    mentioned = [o.order_id for o in orders_by_item(orders, message)]
    if len(mentioned) == 1:
        return Targeting(order_id=mentioned[0])
    eligible = [
        o.order_id for o in orders if is_eligible(action, o, now) or (rerun and already_done(action, o))
    ]
    if mentioned:
        # Items of several orders named: only those orders are meant, never another one. When none
        # of them is eligible, ask which was meant, so the refusal is about the right order.
        eligible = [oid for oid in eligible if oid in mentioned] or mentioned
    if len(eligible) == 1:
        return Targeting(order_id=eligible[0])
    if not eligible:
        return Targeting(problem="none_eligible")
    return Targeting(problem="ambiguous", candidates=tuple(eligible))


def select_by_item(orders: Sequence[Order], message: str) -> Targeting:
    """For questions with no action (where is it?): the one order whose items the message names,
    or a question listing the several that match. No item named: `Targeting()` (nothing decided)."""
    mentioned = tuple(o.order_id for o in orders_by_item(orders, message))
    if len(mentioned) == 1:
        return Targeting(order_id=mentioned[0])
    if mentioned:
        return Targeting(problem="ambiguous", candidates=mentioned)
    return Targeting()


def unknown_state(order: Order, change: str) -> Plan:
    """A status the rules do not know: say it as the API gave it and change nothing, rather than
    guess that it shipped or has not arrived."""
    status = order.status.replace("_", " ").strip() or "in an unknown state"
    return Plan(
        "refuse",
        f"{order.order_id} is currently {status}, so we can't {change} from this chat; "
        "our support team can help with it.",
    )


def plan_cancel(order: Order, tier: Tier | None) -> Plan:
    oid = order.order_id
    if order.status not in KNOWN_STATUSES:
        return unknown_state(order, "cancel it")
    if order.status in CANCELLABLE_STATUSES:
        return Plan("execute") if tier in EXECUTES_CANCELLATION else Plan("request")
    if order.status == "cancelled":
        return Plan("refuse", f"{oid} is already cancelled.")
    if order.status == "return_started":
        return Plan("refuse", f"A return is already in progress for {oid}.")
    if order.status == "delivered":
        return Plan(
            "refuse",
            f"{oid} has already been delivered, so it can no longer be cancelled; "
            f"you can return it {RETURN_WITHIN} instead.",
        )
    return Plan(
        "refuse",
        f"{oid} has already shipped, so it can no longer be cancelled; once it "
        f"arrives you can return it {RETURN_WITHIN}.",
    )


def plan_return(order: Order, now: datetime) -> Plan:
    oid = order.order_id
    if within_return_window(order, now):
        return Plan("execute")
    if order.status not in KNOWN_STATUSES:
        return unknown_state(order, "create a return label for it")
    delivered = parse_time(order.delivered_at)
    if order.status == "delivered" and delivered is not None:
        days = (now - delivered).days
        return Plan(
            "refuse",
            f"{oid} was delivered {days} days ago; returns are accepted {RETURN_WITHIN}, "
            "so it is no longer eligible for a return.",
        )
    if order.status == "delivered":
        # Delivered, but no delivery date we can read: the window cannot be judged either way.
        return Plan(
            "refuse",
            f"We can't see when {oid} was delivered, so we can't create a return label for it from "
            "this chat; our support team can help with it.",
        )
    if order.status == "return_started":
        return Plan("refuse", f"A return label was already issued for {oid}.")
    if order.status == "cancelled":
        return Plan("refuse", f"{oid} was cancelled, so there is nothing to return.")
    if order.status in CANCELLABLE_STATUSES:
        return Plan("refuse", f"{oid} has not shipped yet, so it can be cancelled instead of returned.")
    return Plan("refuse", f"{oid} has not been delivered yet; a return label can be created once it arrives.")


def plan_refund(order: Order) -> Plan:
    # Refunds are never executed by the agent: always a request for a person to review.
    return Plan("request")


def plan_tracking(order: Order) -> Plan:
    if order.tracking_number is None:
        return Plan("skip", f"{order.order_id} has not shipped yet, so there is no tracking information.")
    return Plan("execute")


def plan_action(action: ActionType, order: Order, *, tier: Tier | None, now: datetime) -> Plan:
    """The verdict for one action on one (owned) order."""
    if action is ActionType.CANCEL_ORDER:
        return plan_cancel(order, tier)
    if action is ActionType.CREATE_RETURN_LABEL:
        return plan_return(order, now)
    if action is ActionType.CREATE_REFUND_REQUEST:
        return plan_refund(order)
    if action is ActionType.TRACKING_LOOKUP:
        return plan_tracking(order)
    return Plan("execute")


NO_ELIGIBLE_ORDER: dict[ActionType, tuple[Literal["refused", "skipped"], str]] = {
    ActionType.CANCEL_ORDER: (
        "refused",
        "None of your orders can still be cancelled: orders can be "
        "cancelled only before they ship (pending, confirmed or processing).",
    ),
    ActionType.CREATE_RETURN_LABEL: (
        "refused",
        f"None of your orders is eligible for a return: returns are accepted {RETURN_WITHIN}.",
    ),
    ActionType.CREATE_REFUND_REQUEST: (
        "skipped",
        "We could not find an order to attach a refund request to.",
    ),
    ActionType.TRACKING_LOOKUP: ("skipped", "None of your orders is currently in transit."),
}
"""Outcome status and detail when no order of the customer is eligible and none was named."""

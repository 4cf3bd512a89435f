"""decision_router's policy: escalate to a human, plan actions, or just answer. Pure functions.

Escalate when any of: an explicit request for a human (sentiment flag or the escalation_request
intent); a legal threat; abusive language; a VIP customer with high/critical urgency and negative
sentiment; intent confidence below the configured threshold (or no intent at all). Otherwise the
intent may need actions (cancellation, return, refund/billing, tracking for delivery problems) and a
complaint gets a note on the account; an order change on an account that is not active (suspended,
or any status these rules do not know), or a question about the account itself, goes to a person.
A message flagged as prompt injection never plans an action, and neither does one from an unknown
customer. Tested in tests/unit/test_decision_router.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from actormesh_runtime.envelope import (
    ActionType,
    CustomerContext,
    Decision,
    Intent,
    IntentResult,
    Order,
    Screening,
    Sentiment,
    SentimentLabel,
    Urgency,
)
from actormesh_runtime.escalations import FollowUp
from actormesh_runtime.policy.orders import is_eligible, select_by_item, select_target

REASON_HUMAN = "customer asked for a human"
REASON_LEGAL = "legal threat"
REASON_ABUSIVE = "abusive language"
REASON_VIP = "VIP customer, urgent and unhappy"
REASON_NO_INTENT = "intent unknown"
REASON_SUSPENDED = "suspended account asks for an order change"
REASON_SUSPENDED_ACCOUNT = "suspended account asks about the account"
NOTE_INJECTION = "prompt injection flagged: no actions"
NOTE_UNKNOWN_CUSTOMER = "customer not found: no actions"

ACTIONS_BY_INTENT: dict[Intent, tuple[ActionType, ...]] = {
    Intent.CANCELLATION_REQUEST: (ActionType.CANCEL_ORDER,),
    Intent.RETURN_REQUEST: (ActionType.CREATE_RETURN_LABEL,),
    Intent.BILLING_ISSUE: (ActionType.CREATE_REFUND_REQUEST,),
    Intent.DELIVERY_ISSUE: (ActionType.TRACKING_LOOKUP,),
}
ACTIVE_ACCOUNT_STATUSES = frozenset({"active"})
"""Account statuses whose orders the agent changes by itself. Any other one, "suspended" or one these
rules do not know ("closed", "banned", "frozen", none at all), is a restricted account: order changes
and questions about the account go to a person. Guessing that an unknown status is an active one
cancelled orders and filed refunds on accounts the store had shut."""
URGENT = frozenset({Urgency.HIGH, Urgency.CRITICAL})
READ_ONLY_ACTIONS = frozenset({ActionType.TRACKING_LOOKUP, ActionType.ADD_NOTE})


def orders_in_question(intent: Intent, orders: Sequence[Order], now: datetime) -> list[Order]:
    """The customer's orders a message of this intent could be about, by the rules the actions use.

    response_generator lists these when it must ask which order is meant, so a reply never offers
    an order the action would refuse (e.g. a return for an order delivered outside the return window).
    """
    actions = ACTIONS_BY_INTENT.get(intent)
    if actions:
        return [o for o in orders if is_eligible(actions[0], o, now)]
    if intent is Intent.PRODUCT_ISSUE:
        # No action to judge by; a faulty item is in a delivered order, and the warranty outlives
        # the return window, so every delivered order counts.
        return [o for o in orders if o.status == "delivered"]
    return list(orders)


def account_restricted(context: CustomerContext | None) -> bool:
    """A known customer whose account is not one of `ACTIVE_ACCOUNT_STATUSES`."""
    return context is not None and context.found and status_restricted(context.account_status)


def status_restricted(status: str | None) -> bool:
    """An account status that is not one of `ACTIVE_ACCOUNT_STATUSES` (none at all included)."""
    return status not in ACTIVE_ACCOUNT_STATUSES


def account_status_words(status: str | None) -> str:
    """An account status as a reply says it ("pending verification"; "not active" when there is none):
    the execution's refusal, the approved action's refusal and the account template say it alike."""
    return (status or "").replace("_", " ").strip() or "not active"


def low_confidence_reason(confidence: float, threshold: float) -> str:
    return f"low intent confidence ({confidence:.2f} < {threshold:.2f})"


def escalation_reasons(
    sentiment: Sentiment | None,
    intent: IntentResult | None,
    tier: str | None,
    threshold: float,
    *,
    following_up: bool = False,
) -> list[str]:
    """Every rule that fires, in a fixed order; empty means no escalation.

    `following_up`: the message asks about an escalation of the customer's that is still open. It is
    with a person already and the question is answered from its record, so asking for a person and
    not being understood (the message is about a reference) open no second one; a legal threat,
    abuse or an upset VIP still do.
    """
    reasons: list[str] = []
    if not following_up and (
        (sentiment is not None and sentiment.wants_human)
        or (intent is not None and intent.intent is Intent.ESCALATION_REQUEST)
    ):
        reasons.append(REASON_HUMAN)
    if sentiment is not None:
        if sentiment.legal_threat:
            reasons.append(REASON_LEGAL)
        if sentiment.abusive:
            reasons.append(REASON_ABUSIVE)
        if tier == "vip" and sentiment.urgency in URGENT and sentiment.label is SentimentLabel.NEGATIVE:
            reasons.append(REASON_VIP)
    if following_up:
        return reasons
    if intent is None:
        reasons.append(REASON_NO_INTENT)
    elif intent.confidence < threshold:
        reasons.append(low_confidence_reason(intent.confidence, threshold))
    return reasons


def planned_actions(intent: IntentResult, sentiment: Sentiment | None) -> list[ActionType]:
    """Actions the intent (and a complaint) call for, before any safety gate."""
    actions = list(ACTIONS_BY_INTENT.get(intent.intent, ()))
    if sentiment is not None and sentiment.complaint:
        actions.append(ActionType.ADD_NOTE)
    return actions


ITEM_QUESTIONS = frozenset({Intent.ORDER_STATUS, Intent.GENERAL_QUESTION})
"""Intents without an action whose question may be about an order named only by its items
("where are my headphones?"); the intents with actions resolve items in `select_target`."""


def _answer_only(
    intent: IntentResult, context: CustomerContext | None, notes: list[str], message: str
) -> Decision:
    """No action: still say which order an item-only question is about, or that we must ask."""
    named = intent.entities.order_ids or intent.entities.tracking_numbers
    if intent.intent not in ITEM_QUESTIONS or named or context is None or not context.found:
        return Decision(escalate=False, reasons=notes)
    target = select_by_item(context.orders, message)
    return Decision(
        escalate=False,
        reasons=notes,
        target_order_id=target.order_id,
        needs_clarification=target.needs_clarification,
        candidate_order_ids=list(target.candidates),
    )


def decide(
    *,
    sentiment: Sentiment | None,
    intent: IntentResult | None,
    context: CustomerContext | None,
    screening: Screening,
    threshold: float,
    now: datetime,
    message: str = "",
    followups: Sequence[FollowUp] = (),
    rerun: bool = False,
) -> Decision:
    tier = context.tier if context is not None else None
    following_up = any(f.pending for f in followups)
    reasons = escalation_reasons(sentiment, intent, tier, threshold, following_up=following_up)
    if reasons:
        return Decision(escalate=True, reasons=reasons)
    if intent is None:
        return Decision(escalate=False)
    actions = planned_actions(intent, sentiment)
    notes: list[str] = []
    if actions and screening.prompt_injection:
        actions, notes = [], [NOTE_INJECTION]
    elif actions and (context is None or not context.found):
        actions, notes = [], [NOTE_UNKNOWN_CUSTOMER]
    if account_restricted(context) and not screening.prompt_injection:
        # Only a person can change orders on, or lift, a suspended (or otherwise not active)
        # account: hand over (with a reference) rather than refuse and leave the customer nowhere
        # to go.
        if set(actions) - READ_ONLY_ACTIONS:
            return Decision(escalate=True, reasons=[REASON_SUSPENDED])
        if intent.intent is Intent.ACCOUNT_ISSUE:
            return Decision(escalate=True, reasons=[REASON_SUSPENDED_ACCOUNT])
    if not actions or context is None:
        if screening.prompt_injection:
            return Decision(escalate=False, reasons=notes)
        return _answer_only(intent, context, notes, message)
    primary = next((a for a in actions if a is not ActionType.ADD_NOTE), actions[0])
    target = select_target(
        primary,
        context.orders,
        named_order_ids=intent.entities.order_ids,
        named_tracking=intent.entities.tracking_numbers,
        message=message,
        now=now,
        rerun=rerun,
    )
    return Decision(
        escalate=False,
        reasons=notes,
        planned_actions=actions,
        target_order_id=target.order_id,
        needs_clarification=target.needs_clarification,
        candidate_order_ids=list(target.candidates),
    )

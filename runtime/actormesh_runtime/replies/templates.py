"""Template replies: one per intent, built only from the facts in the envelope; they always work.

Called by response_generator (the draft, and the reference reply given to an LLM), by
guardrail_validator (the safe replacement after a second rejection) and by escalation_router.
No template promises a refund, an amount or an outcome, and none quotes personal data.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from actormesh_runtime.envelope import Envelope, Intent, Order
from actormesh_runtime.replies import facts as f

CAPABILITIES = "order status, deliveries, returns, cancellations, billing and account questions"
INJECTION_REPLY = (
    f"I'm the store's support assistant and can help with {CAPABILITIES}. What can I help you with today?"
)


def _greeting(envelope: Envelope) -> str:
    ctx = envelope.context
    name = (ctx.name or "").split(" ")[0] if ctx and ctx.found else ""
    return f"Hi {name}." if name else "Hi."


def _clarifying(envelope: Envelope) -> bool:
    return bool(envelope.decision and envelope.decision.needs_clarification)


def _orders_block(orders: list[Order]) -> str:
    return " ".join(f.order_sentence(o) for o in orders)


def _clarify(envelope: Envelope, intent: Intent, what: str) -> str:
    candidates = f.clarification_candidates(envelope, intent)
    listed = "; ".join(f.order_label(o) for o in candidates)
    return (
        f"I can help {what}, but you have more than one order it could apply to: {listed}. "
        "Which order do you mean?"
    )


def _orders_or_ask(envelope: Envelope, intent: Intent, what: str) -> str:
    """Relevant orders, or a question; `what` completes "I can help ..."."""
    if _clarifying(envelope):
        return _clarify(envelope, intent, what)
    relevant = f.relevant_orders(envelope)
    if relevant:
        return _orders_block(relevant)
    candidates = f.clarification_candidates(envelope, intent)
    if len(candidates) == 1:
        return _orders_block(candidates)
    if candidates:
        return _clarify(envelope, intent, what)
    return "I don't see any orders on your account yet."


def _order_status(envelope: Envelope) -> str:
    if f.relevant_orders(envelope):
        return _orders_block(f.relevant_orders(envelope))
    orders = list(f.customer_orders(envelope).values())
    if not orders:
        return "I don't see any orders on your account yet."
    active = [o for o in orders if o.status.lower() not in ("delivered", "cancelled")] or orders
    return "Here is where your orders stand: " + _orders_block(active)


def _delivery_issue(envelope: Envelope) -> str:
    body = _orders_or_ask(envelope, Intent.DELIVERY_ISSUE, "with the delivery")
    return f"I'm sorry your delivery is causing trouble. {body}"


def _product_issue(envelope: Envelope) -> str:
    body = _orders_or_ask(envelope, Intent.PRODUCT_ISSUE, "with the item")
    return (
        f"I'm sorry the item isn't right. {body} {f.POLICY_RETURNS} {f.POLICY_WARRANTY} "
        "If you'd like a return label, just tell me the order number."
    )


def _return_request(envelope: Envelope) -> str:
    if envelope.actions and not _clarifying(envelope):
        return ""  # the action sentence already says what happened and why
    return f"{_orders_or_ask(envelope, Intent.RETURN_REQUEST, 'with a return')} {f.POLICY_RETURNS}"


def _cancellation_request(envelope: Envelope) -> str:
    if envelope.actions and not _clarifying(envelope):
        return ""
    return _orders_or_ask(envelope, Intent.CANCELLATION_REQUEST, "with a cancellation")


def _billing_issue(envelope: Envelope) -> str:
    if _clarifying(envelope):
        return _clarify(envelope, Intent.BILLING_ISSUE, "with the billing question")
    if envelope.actions:
        return ""
    return (
        "Our billing team handles charges and refund reviews. If you tell me the order number, "
        "I can file a review request for it."
    )


def _account_issue(envelope: Envelope) -> str:
    ctx = envelope.context
    if ctx and ctx.found and (ctx.account_status or "active") != "active":
        return (
            f"Your account is currently {ctx.account_status}. A member of our support team can review it "
            "with you; reply here if you'd like me to pass this on."
        )
    return (
        'You can reset your password with the "Forgot password" link on the sign-in page. '
        "For other account changes, tell me what you need and I'll point you in the right direction."
    )


def _compliment(envelope: Envelope) -> str:
    return (
        "Thank you so much for the kind words; I'll pass them on to the team. "
        "Is there anything else I can do?"
    )


def _general_question(envelope: Envelope) -> str:
    text = envelope.message.lower()
    answers = []
    if re.search(r"\breturn", text):
        answers.append(f.POLICY_RETURNS)
    if re.search(r"\b(ship|shipping|delivery)\b", text):
        answers.append(f.POLICY_SHIPPING)
    if re.search(r"\bwarrant", text):
        answers.append(f.POLICY_WARRANTY)
    if not answers:
        return f"I can help with {CAPABILITIES}. What can I help you with today?"
    return " ".join(answers) + " Is there anything else I can help with?"


def _escalation_request(envelope: Envelope) -> str:
    return "I understand you'd like to talk to a person; I'll pass your conversation to our support team."


_BY_INTENT: dict[Intent, Callable[[Envelope], str]] = {
    Intent.ORDER_STATUS: _order_status,
    Intent.DELIVERY_ISSUE: _delivery_issue,
    Intent.PRODUCT_ISSUE: _product_issue,
    Intent.RETURN_REQUEST: _return_request,
    Intent.CANCELLATION_REQUEST: _cancellation_request,
    Intent.BILLING_ISSUE: _billing_issue,
    Intent.ACCOUNT_ISSUE: _account_issue,
    Intent.ESCALATION_REQUEST: _escalation_request,
    Intent.COMPLIMENT: _compliment,
    Intent.GENERAL_QUESTION: _general_question,
}
_NEEDS_ACCOUNT = frozenset(
    set(Intent) - {Intent.COMPLIMENT, Intent.GENERAL_QUESTION, Intent.ESCALATION_REQUEST}
)


def _account_caveat(envelope: Envelope, intent: Intent) -> str:
    """Unknown customer / missing context / foreign order ids: said plainly, nothing invented."""
    ctx = envelope.context
    notes = []
    if ctx is not None and not ctx.found:
        notes.append(
            f"I couldn't find an account for {envelope.customer_email}. Please write to us from the "
            "email address you ordered with, so I can look up your orders."
        )
    elif ctx is None and intent in _NEEDS_ACCOUNT:
        notes.append("I can't look up your account details right now, so please try again in a few minutes.")
    elif ctx is not None and ctx.errors:
        notes.append("Some of our systems didn't answer just now, so a few details may be missing.")
    foreign = f.foreign_order_ids(envelope)
    if foreign and ctx is not None and ctx.found:
        notes.append(f"I couldn't find {', '.join(foreign)} on your account.")
    return " ".join(notes)


def compose(envelope: Envelope) -> str:
    """The template reply for this envelope: greeting, caveats, intent body, then action outcomes."""
    if envelope.screening.prompt_injection:
        return INJECTION_REPLY
    intent = envelope.intent.intent if envelope.intent else Intent.GENERAL_QUESTION
    caveat = _account_caveat(envelope, intent)
    ctx = envelope.context
    has_account = ctx is not None and ctx.found
    body = _BY_INTENT[intent](envelope) if has_account or intent not in _NEEDS_ACCOUNT else ""
    actions = " ".join(f.action_sentences(envelope))
    parts = [_greeting(envelope), caveat, body, actions]
    return " ".join(p.strip() for p in parts if p.strip())


def safe_reply(envelope: Envelope) -> str:
    """The reply of last resort: no order data, no actions claimed, nothing to reject."""
    return (
        f"{_greeting(envelope)} thanks for your message. I can help with {CAPABILITIES}. "
        f"{f.POLICY_RETURNS} Could you tell me a bit more about what you need?"
    )


def escalation_reply(envelope: Envelope, reference_id: str, wait_minutes: int) -> str:
    return (
        f"{_greeting(envelope)} I understand, and I'm sorry for the trouble. I've passed your conversation "
        f"to a member of our support team; your reference is {reference_id}. The current estimated wait is "
        f"about {wait_minutes} minutes, and they will see everything you've told me, so you won't need to "
        "repeat it."
    )


def error_reply(envelope: Envelope, reference_id: str) -> str:
    return (
        f"{_greeting(envelope)} I'm sorry, something went wrong on our side while handling your message. "
        f"Your reference is {reference_id}; our support team can look into it, and you're welcome to try "
        "again in a few minutes."
    )

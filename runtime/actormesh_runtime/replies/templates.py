"""Template replies: one per intent, built only from the facts in the envelope; they always work.

Called by response_generator (the draft, and the reference reply given to an LLM), by
guardrail_validator (the safe replacement after a second rejection) and by escalation_router.
No template promises a refund, an amount or an outcome, and none quotes personal data.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from actormesh_runtime.envelope import Envelope, Intent, Order
from actormesh_runtime.escalations import EscalationState, FollowUp, QueueSnapshot
from actormesh_runtime.policy.decision import account_restricted, account_status_words
from actormesh_runtime.policy.escalation import estimated_wait_minutes
from actormesh_runtime.policy.orders import (
    MAX_CONTEXT_ORDERS,
    orders_truncated,
    orders_unavailable,
    within_return_window,
)
from actormesh_runtime.replies import facts as f
from actormesh_runtime.store_policy import RETURNS_SENTENCE, SHIPPING_SENTENCE, WARRANTY_SENTENCE

REDACTION_WORDS = {"card": "card number", "ssn": "Social Security number"}
CAPABILITIES = "order status, deliveries, returns, cancellations, billing and account questions"
ORDERS_UNAVAILABLE_NOTE = (
    "I can't load your orders right now, so I can't check or change them; please try again in a few minutes."
)
INJECTION_REPLY = (
    f"I'm the store's support assistant and can help with {CAPABILITIES}. What can I help you with today?"
)


def _greeting(envelope: Envelope) -> str:
    ctx = envelope.context
    name = (ctx.name or "").split(" ")[0] if ctx and ctx.found else ""
    return f"Hi {name}." if name else "Hi."


def _clarifying(envelope: Envelope) -> bool:
    return bool(envelope.decision and envelope.decision.needs_clarification)


def _no_orders(envelope: Envelope) -> str:
    """No order to show: none exist, or (said by the caveat instead) none could be read."""
    if orders_unavailable(envelope.context):
        return ""
    return "I don't see any orders on your account yet."


def _orders_block(orders: list[Order]) -> str:
    return " ".join(f.order_sentence(o) for o in orders)


# What each intent's reply leads with, what "I can help ..." says, and what follows the question.
_CLARIFY: dict[Intent, tuple[str, str, str]] = {
    Intent.DELIVERY_ISSUE: ("I'm sorry your delivery is causing trouble.", "with the delivery", ""),
    Intent.PRODUCT_ISSUE: ("I'm sorry the item isn't right.", "with the item", ""),
    Intent.RETURN_REQUEST: ("", "with a return", RETURNS_SENTENCE),
    Intent.CANCELLATION_REQUEST: ("", "with a cancellation", ""),
    Intent.BILLING_ISSUE: ("I'm sorry about the trouble with your payment.", "with the billing question", ""),
}


def _clarify(envelope: Envelope, intent: Intent, candidates: list[Order] | None = None) -> str:
    """Ask which order is meant, listing the candidates the decision/outcome (or policy) names."""
    lead, what, tail = _CLARIFY.get(intent, ("", "with that", ""))
    listed = "; ".join(f.order_label(o) for o in candidates or f.clarification_candidates(envelope, intent))
    question = (
        f"I can help {what}, but you have more than one order it could apply to: {listed}. "
        "Which order do you mean?"
    )
    return " ".join(p for p in (lead, question, tail) if p)


def _orders_in_play(envelope: Envelope, intent: Intent) -> list[Order]:
    """The relevant orders, else the candidates (policy), else every order of the customer."""
    relevant = f.relevant_orders(envelope)
    if relevant:
        return relevant
    return f.clarification_candidates(envelope, intent) or list(f.customer_orders(envelope).values())


def _orders_or_ask(envelope: Envelope, intent: Intent) -> str:
    """The relevant orders, the one candidate, or a question listing the candidates."""
    if f.relevant_orders(envelope):
        return _orders_block(f.relevant_orders(envelope))
    candidates = _orders_in_play(envelope, intent)
    if len(candidates) == 1:
        return _orders_block(candidates)
    if candidates:
        return _clarify(envelope, intent, candidates)
    return _no_orders(envelope)


def _return_offer(envelope: Envelope, orders: list[Order]) -> str:
    """Offer a return label only for what policy would accept (delivered within the return window)."""
    returnable = [o for o in orders if within_return_window(o, envelope.created_at)]
    if not returnable:
        return ""
    if len(orders) == 1:
        return f'If you\'d like to send it back, just reply "return {returnable[0].order_id}".'
    if len(returnable) == 1:
        oid = returnable[0].order_id
        return f'{oid} can still be returned; to send it back, just reply "return {oid}".'
    return "If you'd like a return label, tell me the order number."


def _order_status(envelope: Envelope) -> str:
    if f.relevant_orders(envelope):
        return _orders_block(f.relevant_orders(envelope))
    orders = list(f.customer_orders(envelope).values())
    if not orders:
        return _no_orders(envelope)
    active = [o for o in orders if o.status.lower() not in ("delivered", "cancelled")] or orders
    return "Here is where your orders stand: " + _orders_block(active)


def _delivery_issue(envelope: Envelope) -> str:
    body = _orders_or_ask(envelope, Intent.DELIVERY_ISSUE)
    lead = _CLARIFY[Intent.DELIVERY_ISSUE][0]
    return body if body.startswith(lead) else f"{lead} {body}"


def _product_issue(envelope: Envelope) -> str:
    body = _orders_or_ask(envelope, Intent.PRODUCT_ISSUE)
    lead = _CLARIFY[Intent.PRODUCT_ISSUE][0]
    body = body if body.startswith(lead) else f"{lead} {body}"
    offer = _return_offer(envelope, _orders_in_play(envelope, Intent.PRODUCT_ISSUE))
    return f"{body} {RETURNS_SENTENCE} {WARRANTY_SENTENCE} {offer}".strip()


def _return_request(envelope: Envelope) -> str:
    if envelope.actions:
        return ""  # the action sentence already says what happened and why
    body = _orders_or_ask(envelope, Intent.RETURN_REQUEST)
    return body if body.endswith(RETURNS_SENTENCE) else f"{body} {RETURNS_SENTENCE}"


def _cancellation_request(envelope: Envelope) -> str:
    if envelope.actions:
        return ""
    return _orders_or_ask(envelope, Intent.CANCELLATION_REQUEST)


def _billing_issue(envelope: Envelope) -> str:
    if envelope.actions:
        return ""
    return (
        "Our billing team handles charges and refund reviews. If you tell me the order number, "
        "I can file a review request for it."
    )


def _account_issue(envelope: Envelope) -> str:
    ctx = envelope.context
    if ctx is not None and account_restricted(ctx):
        # No status is not an active one (policy.decision.ACTIVE_ACCOUNT_STATUSES).
        words = account_status_words(ctx.account_status)
        return f"Your account is currently {words}, so I can't make changes to it or its orders here."
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
        answers.append(RETURNS_SENTENCE)
    if re.search(r"\b(ship|shipping|delivery)\b", text):
        answers.append(SHIPPING_SENTENCE)
    if re.search(r"\bwarrant", text):
        answers.append(WARRANTY_SENTENCE)
    # An item of one of their orders named without the usual words ("where are my headphones?"):
    # the decision resolved it to that order, so answer about it rather than generically.
    about = f.relevant_orders(envelope)
    if about:
        answers.append(_orders_block(about))
        if re.search(r"\breturn|\bsend\b.{0,30}\bback\b", text):
            answers.append(_return_offer(envelope, about))
    if not answers:
        return f"I can help with {CAPABILITIES}. What can I help you with today?"
    return " ".join(a for a in answers if a) + " Is there anything else I can help with?"


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
    if intent not in _NEEDS_ACCOUNT:
        pass  # a policy question, a compliment or a handoff needs no account: nothing to caveat
    elif ctx is not None and not ctx.found:
        notes.append(
            f"I couldn't find an account for {envelope.customer_email}. Please write to us from the "
            "email address you ordered with, so I can look up your orders."
        )
    elif ctx is None:
        notes.append("I can't look up your account details right now, so please try again in a few minutes.")
    elif orders_unavailable(ctx):
        notes.append(ORDERS_UNAVAILABLE_NOTE)
    elif ctx is not None and f.systems_failed(ctx):
        notes.append("Some of our systems didn't answer just now, so a few details may be missing.")
    foreign = f.foreign_order_ids(envelope)
    if foreign and ctx is not None and ctx.found and orders_truncated(ctx):
        notes.append(
            f"I couldn't find {', '.join(foreign)} among your {MAX_CONTEXT_ORDERS} most recent orders; "
            "please check the order number, or our support team can look further back."
        )
    elif foreign and ctx is not None and ctx.found:
        notes.append(f"I couldn't find {', '.join(foreign)} on your account; please check the order number.")
    return " ".join(notes)


def _screening_note(envelope: Envelope) -> str:
    """Tell the customer what was removed from their message, without repeating any of it."""
    removed = envelope.screening.redactions
    if not removed:
        return ""
    what = " and ".join(dict.fromkeys(REDACTION_WORDS[r] for r in removed))
    return (
        f"For your security, I removed the {what} from your message; "
        "please don't share details like that in chat, as we never need them."
    )


def compose(envelope: Envelope) -> str:
    """The template reply for this envelope: greeting, caveats, intent body, then action outcomes."""
    if envelope.screening.prompt_injection:
        return INJECTION_REPLY
    intent = envelope.intent.intent if envelope.intent else Intent.GENERAL_QUESTION
    caveat = _account_caveat(envelope, intent)
    ctx = envelope.context
    has_account = ctx is not None and ctx.found
    if envelope.followups:
        # A follow-up on a reference is answered from its record, not from the intent's template.
        body, caveat = " ".join(followup_sentences(envelope.followups)), ""
    elif not has_account and intent in _NEEDS_ACCOUNT:
        body = ""
    elif _clarifying(envelope):
        body = _clarify(envelope, intent)  # whatever the intent: no action was taken, so ask
    else:
        body = _BY_INTENT[intent](envelope)
    actions = " ".join(f.action_sentences(envelope))
    parts = [_greeting(envelope), _screening_note(envelope), caveat, body, actions]
    return " ".join(p.strip() for p in parts if p.strip())


def safe_reply(envelope: Envelope) -> str:
    """The reply of last resort: no order data, no actions claimed, nothing to reject."""
    return (
        f"{_greeting(envelope)} thanks for your message. I can help with {CAPABILITIES}. "
        f"{RETURNS_SENTENCE} Could you tell me a bit more about what you need?"
    )


def escalation_reply(envelope: Envelope, reference_id: str, queue: QueueSnapshot | None) -> str:
    return (
        f"{_greeting(envelope)} I understand, and I'm sorry for the trouble. I've passed your conversation "
        f"to a member of our support team; your reference is {reference_id}. "
        f"{wait_sentence(queue, reference_id)} "
        "They will see everything you've told me, so you won't need to repeat it."
    )


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def wait_sentence(queue: QueueSnapshot | None, reference_id: str) -> str:
    """The wait, from the real queue; when there is no honest number, what we do know instead."""
    if queue is None:
        return (
            "I can't see our queue right now, so I can't estimate the wait; "
            f"you can ask about {reference_id} here at any time."
        )
    if queue.agents_active == 0:
        return f"{queue_sentence(queue)} You can ask about {reference_id} at any time."
    return queue_sentence(queue)


def queue_sentence(queue: QueueSnapshot) -> str:
    """Where a conversation stands in the queue and the wait, from the real figures only."""
    place = (
        "yours is next in line"
        if queue.ahead == 0
        else f"{_count(queue.ahead, 'conversation is', 'conversations are')} ahead of yours"
    )
    if queue.agents_active == 0:
        return (
            f"No one from our team is available right now, so I can't promise a time; {place}, and the "
            "answer will appear here."
        )
    agents = _count(queue.agents_active, "person is", "people are")
    minutes = estimated_wait_minutes(queue)
    if minutes is None:
        return f"{agents} answering right now and {place}."
    wait = _count(minutes, "minute", "minutes")
    return f"{agents} answering right now and {place}, so the estimated wait is about {wait}."


_STATE_WORDS = {
    EscalationState.OPEN: "is waiting for the next available member of our team",
    EscalationState.CLAIMED: "is being handled by a member of our team",
    EscalationState.RESOLVED: "has been resolved",
}


def followup_sentences(followups: list[FollowUp]) -> list[str]:
    """What a customer is told about the references they asked about (only their own are found)."""
    sentences = []
    for item in followups:
        if item.lookup_failed:
            sentences.append(f"I can't look up {item.ref} right now; please ask again in a few minutes.")
            continue
        if not item.found or item.state is None:
            sentences.append(f"I couldn't find {item.ref} for your account; please check the reference.")
            continue
        text = f"Your request {item.ref} {_STATE_WORDS[item.state]}."
        if item.state is EscalationState.OPEN and item.queue is not None:
            text += " " + queue_sentence(item.queue)
        if item.last_reply:
            text += f' Their latest reply was: "{item.last_reply}"'
        elif item.state is not EscalationState.RESOLVED:
            text += " Nobody has replied yet; the answer will appear here in this chat."
        sentences.append(text)
    return sentences


def error_reply(envelope: Envelope, reference_id: str) -> str:
    return (
        f"{_greeting(envelope)} I'm sorry, something went wrong on our side while handling your message. "
        f"Your reference is {reference_id}; our support team can look into it, and you're welcome to try "
        "again in a few minutes."
    )

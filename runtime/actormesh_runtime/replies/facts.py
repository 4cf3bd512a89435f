"""Sentences stating the real data in an envelope: orders, tracking and action outcomes.

Pure functions of the envelope. response_generator's templates are built from them and the same
sentences are the "facts" an LLM prompt is given, so a template reply and an LLM reply quote
exactly the same order ids, carriers, tracking numbers and dates.
"""

from __future__ import annotations

from actormesh_runtime.envelope import (
    ActionOutcome,
    ActionStatus,
    ActionType,
    CustomerContext,
    Envelope,
    Intent,
    Order,
)
from actormesh_runtime.policy import orders as policy_orders
from actormesh_runtime.policy.decision import orders_in_question
from actormesh_runtime.store_policy import CANCELLABLE_STATUSES, RETURNS_SENTENCE

ORDERS_UNAVAILABLE_FACT = (
    "The customer's orders could not be loaded right now: nothing about them is known and nothing was "
    "changed; do not say they have no orders or that an order is not theirs."
)
_STATUS_WORDS = {"return_started": "being returned", "cancelled": "cancelled"}


def systems_failed(ctx: CustomerContext) -> bool:
    """Some call failed: errors other than the deliberate cut to the newest orders."""
    return any(not e.startswith(policy_orders.ORDERS_TRUNCATED) for e in ctx.errors)


def _human(value: str) -> str:
    return value.replace("_", " ").strip()


def _mid_sentence(value: str) -> str:
    """A carrier's "Address correction needed" inside our sentence: lower-case a capitalised word."""
    first = value.split(" ", 1)[0]
    return value[0].lower() + value[1:] if first.istitle() and len(first) > 1 else value


def _date(value: str | None) -> str | None:
    """ISO timestamps shown as their date; anything else as given."""
    if not value:
        return None
    return value[:10] if len(value) >= 10 and value[4:5] == "-" and value[7:8] == "-" else value


def items_text(order: Order) -> str:
    parts = [f"{i.name} x{i.quantity}" if i.quantity > 1 else i.name for i in order.items]
    return ", ".join(parts) if parts else "no items listed"


def order_label(order: Order) -> str:
    return f"{order.order_id} ({items_text(order)})"


def _tracking_sentence(order: Order) -> str:
    tracking = order.tracking
    if tracking is None:
        return ""
    text = f" Latest tracking status from {tracking.carrier}: {_human(tracking.status)}"
    if tracking.detail:
        text += f" ({_mid_sentence(tracking.detail)})"
    if tracking.estimated_delivery and order.status != "delivered":
        text += f"; estimated delivery {_date(tracking.estimated_delivery)}"
    return text + "."


def order_sentence(order: Order) -> str:
    """One or two sentences: status, carrier, tracking number, dates."""
    status = order.status.lower()
    label = order_label(order)
    if status in CANCELLABLE_STATUSES:
        return (
            f"{label} is {_human(status)}; it was placed on {_date(order.placed_at)} and has not shipped yet."
        )
    shipping = ""
    if order.carrier or order.tracking_number:
        shipping = f" with {order.carrier or 'the carrier'}"
        if order.tracking_number:
            shipping += f", tracking number {order.tracking_number}"
    if status == "shipped":
        when = f" on {_date(order.shipped_at)}" if order.shipped_at else ""
        return f"{label} shipped{when}{shipping}.{_tracking_sentence(order)}"
    if status == "delivered":
        when = f" on {_date(order.delivered_at)}" if order.delivered_at else ""
        return f"{label} was delivered{when}{shipping}."
    wording = _STATUS_WORDS.get(status, _human(status))
    return f"{label} is {wording}{shipping}.{_tracking_sentence(order)}"


def _label_ref(outcome: ActionOutcome) -> str:
    """The label's id, and its link followed by words (so no period sticks to the URL)."""
    label, url = outcome.data.get("label_id"), outcome.data.get("label_url")
    ref = f" (label {label})" if label else ""
    return f"{ref}; you can print it from {url} and ship the items back to us" if url else ref


def fallback_sentence(outcome: ActionOutcome) -> str:
    """Our own words for an outcome that came without a detail; never more than the outcome says."""
    oid = outcome.order_id or "your order"
    words: dict[tuple[ActionType, ActionStatus], str] = {
        (ActionType.CANCEL_ORDER, ActionStatus.DONE): f"{oid} has been cancelled.",
        (ActionType.CANCEL_ORDER, ActionStatus.PENDING_REVIEW): (
            f"A cancellation request for {oid} has been filed for review; "
            "the order stays as it is until then."
        ),
        (ActionType.CREATE_RETURN_LABEL, ActionStatus.DONE): (
            f"A return label for {oid} has been created{_label_ref(outcome)}."
        ),
        (ActionType.CREATE_RETURN_LABEL, ActionStatus.REFUSED): (
            f"A return label for {oid} could not be created. {RETURNS_SENTENCE}"
        ),
        (ActionType.CREATE_REFUND_REQUEST, ActionStatus.PENDING_REVIEW): (
            f"A refund request for {oid} has been filed for review by our billing team."
        ),
        (ActionType.ADD_NOTE, ActionStatus.DONE): "Your feedback has been recorded for our team.",
        (ActionType.TRACKING_LOOKUP, ActionStatus.DONE): (
            f"Latest tracking for {oid}: {_human(outcome.data.get('status', 'no status yet'))}."
        ),
    }
    default = f"{_human(outcome.type.value).capitalize()} for {oid}: {_human(outcome.status.value)}."
    return words.get((outcome.type, outcome.status), default)


def action_sentence(outcome: ActionOutcome) -> str:
    """The outcome's own detail (execution_coordinator words it for the customer), else our fallback."""
    detail = outcome.detail.strip()
    if not detail:
        return fallback_sentence(outcome)
    return detail if detail[-1] in ".!?" else detail + "."


def action_sentences(envelope: Envelope) -> list[str]:
    """One sentence per outcome, minus what the rest of the reply already says."""
    ctx = envelope.context
    clarifying = bool(envelope.decision and envelope.decision.needs_clarification)
    unknown = ctx is None or not ctx.found
    shown = {o.order_id for o in relevant_orders(envelope)}
    foreign = set(foreign_order_ids(envelope)) if ctx is not None and ctx.found else set()
    no_orders = policy_orders.orders_unavailable(ctx)
    sentences: list[str] = []
    for outcome in envelope.actions:
        if outcome.status is ActionStatus.SKIPPED and (clarifying or unknown or no_orders):
            continue  # the reply already asks which order / says there is no account / no order list
        if outcome.type is ActionType.TRACKING_LOOKUP and outcome.order_id in shown:
            continue  # the order sentence already quotes its tracking
        if outcome.data.get("not_owned") in foreign:
            continue  # the account caveat already says the order is not theirs
        sentences.append(action_sentence(outcome))
    return list(dict.fromkeys(sentences))


def customer_orders(envelope: Envelope) -> dict[str, Order]:
    ctx = envelope.context
    if ctx is None or not ctx.found:
        return {}
    return {o.order_id: o for o in ctx.orders}


def named_order_ids(envelope: Envelope) -> list[str]:
    return list(envelope.intent.entities.order_ids) if envelope.intent else []


def foreign_order_ids(envelope: Envelope) -> list[str]:
    """Order ids the customer named that are not theirs: we say so and show nothing about them."""
    if policy_orders.orders_unavailable(envelope.context):
        return []  # the orders could not be read: a named order may well be theirs
    mine = customer_orders(envelope)
    return [oid for oid in named_order_ids(envelope) if oid not in mine]


def relevant_orders(envelope: Envelope) -> list[Order]:
    """The decision's target, else the orders named (by id or tracking number) that are the customer's."""
    mine = customer_orders(envelope)
    target = envelope.decision.target_order_id if envelope.decision else None
    if target and target in mine:
        return [mine[target]]
    named = [mine[oid] for oid in named_order_ids(envelope) if oid in mine]
    if named:
        return named
    tracking = set(envelope.intent.entities.tracking_numbers) if envelope.intent else set()
    by_tracking = [o for o in mine.values() if o.tracking_number and o.tracking_number in tracking]
    return by_tracking or orders_by_item(envelope, list(mine.values()))


def orders_by_item(envelope: Envelope, orders: list[Order]) -> list[Order]:
    """Orders with an item the message names: the policy's own matching, so reply and action agree."""
    return policy_orders.orders_by_item(orders, envelope.message)


def decided_candidates(envelope: Envelope) -> list[str]:
    """The order ids execution_coordinator (else decision_router) found equally eligible, in order."""
    for outcome in envelope.actions:
        listed = outcome.data.get("candidates", "")
        if outcome.status is ActionStatus.SKIPPED and listed:
            return [oid.strip() for oid in listed.split(",") if oid.strip()]
    return list(envelope.decision.candidate_order_ids) if envelope.decision else []


def clarification_candidates(envelope: Envelope, intent: Intent) -> list[Order]:
    """Orders to list when the reply must ask which one the customer means.

    The ones the decision/outcome named when there are any, else the policy's own eligibility
    rules (`policy.decision.orders_in_question`): the reply never re-derives eligibility.
    """
    mine = customer_orders(envelope)
    decided = [mine[oid] for oid in decided_candidates(envelope) if oid in mine]
    if decided:
        return decided
    return orders_in_question(intent, list(mine.values()), envelope.created_at)


def facts(envelope: Envelope) -> list[str]:
    """Everything a reply may state, one fact per line (the LLM prompt's "Facts")."""
    ctx = envelope.context
    lines: list[str] = []
    if ctx is None:
        lines.append("The customer's account details are not available right now.")
    elif not ctx.found:
        lines.append(f"No customer account exists for {envelope.customer_email}.")
    else:
        lines.append(
            f"Customer: {ctx.name or 'unknown name'}, {ctx.tier or 'standard'} tier, "
            f"account {ctx.account_status or 'of unknown status'}."
        )
        shown = relevant_orders(envelope) or list(ctx.orders)
        lines.extend(order_sentence(o) for o in shown)
        if policy_orders.orders_unavailable(ctx):
            lines.append(ORDERS_UNAVAILABLE_FACT)
        elif not ctx.orders:
            lines.append("The customer has no orders.")
        if policy_orders.orders_truncated(ctx):
            lines.append(
                f"Only the customer's {policy_orders.MAX_CONTEXT_ORDERS} most recent orders are shown; "
                "they have older ones."
            )
        if systems_failed(ctx):
            lines.append("Some order or tracking systems did not answer; details may be incomplete.")
    for oid in foreign_order_ids(envelope):
        if policy_orders.orders_truncated(ctx):
            lines.append(f"{oid} is not among the customer's most recent orders; say nothing else about it.")
        else:
            lines.append(f"{oid} is not an order on this customer's account; say nothing else about it.")
    if envelope.decision and envelope.decision.needs_clarification:
        intent = envelope.intent.intent if envelope.intent else Intent.GENERAL_QUESTION
        listed = "; ".join(order_label(o) for o in clarification_candidates(envelope, intent))
        lines.append(f"Several orders could be meant ({listed}): ask the customer which order they mean.")
    lines.extend(f"Action taken: {s}" for s in action_sentences(envelope))
    return lines

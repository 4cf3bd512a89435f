"""execution_coordinator: carries out the planned actions against the commerce APIs, exactly once.

Writes `envelope.actions`: one `ActionOutcome` per planned action (done | pending_review | refused |
skipped, with a detail the reply can quote). Targeting and eligibility are the pure functions of
actormesh_runtime.policy.orders, evaluated on the envelope's context at the envelope's creation
time, so a redelivered envelope plans the same calls; each call carries an Idempotency-Key derived
from message id + action + order, so the API applies it once and replays its first answer.
Refunds are only ever requests for review; tracking lookups are read-only.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import Any, ClassVar

from actormesh_runtime.actors.commerce_base import CommerceActor
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.clients.commerce import ApiRejected, OrderMutation
from actormesh_runtime.envelope import (
    ActionOutcome,
    ActionStatus,
    ActionType,
    CustomerContext,
    Envelope,
    Order,
)
from actormesh_runtime.policy.decision import READ_ONLY_ACTIONS, account_restricted, account_status_words
from actormesh_runtime.policy.orders import (
    NO_ELIGIBLE_ORDER,
    ORDERS_UNAVAILABLE_DETAIL,
    Plan,
    already_done,
    not_found_sentence,
    orders_unavailable,
    plan_action,
    select_target,
)

NOTE_EXCERPT_CHARS = 500


def idempotency_key(message_id: str, action: ActionType, order_id: str | None) -> str:
    """Stable per (message, action, order): a redelivered envelope sends the same key."""
    digest = hashlib.sha256(f"{message_id}|{action.value}|{order_id or '-'}".encode()).hexdigest()
    return f"am-{action.value}-{digest[:40]}"


def _outcome(
    action: ActionType, status: ActionStatus, detail: str, order_id: str | None = None, /, **data: Any
) -> ActionOutcome:
    """`data` becomes `ActionOutcome.data` (None values dropped), except `idempotency_key`."""
    key = data.pop("idempotency_key", None)
    clean = {k: str(v) for k, v in data.items() if v is not None}
    return ActionOutcome(
        type=action, order_id=order_id, status=status, detail=detail, idempotency_key=key, data=clean
    )


def precheck(action: ActionType, context: CustomerContext | None) -> ActionOutcome | None:
    """Outcomes decided by the account alone (unknown, or not active), before any order is looked at."""
    if context is None or not context.found or context.customer_id is None:
        return _outcome(
            action,
            ActionStatus.SKIPPED,
            "We could not find an account for this email address, so nothing was changed.",
        )
    mutating = action not in READ_ONLY_ACTIONS
    if mutating and account_restricted(context):
        # decision_router hands these to a person already; this holds for an envelope that reached
        # here by another way (a replayed dead letter, a router of an older version).
        return _outcome(
            action,
            ActionStatus.REFUSED,
            f"Your account is {account_status_words(context.account_status)}, so order changes need a"
            " member of our support team.",
        )
    return None


class ExecutionCoordinator(CommerceActor):
    name: ClassVar[ActorName] = ActorName.EXECUTION_COORDINATOR

    async def handle(self, envelope: Envelope) -> None:
        decision = envelope.decision
        if decision is None or not decision.planned_actions:
            return
        outcomes = await asyncio.gather(*(self._one(envelope, a) for a in decision.planned_actions))
        envelope.actions = list(outcomes)

    async def _one(self, envelope: Envelope, action: ActionType) -> ActionOutcome:
        context = envelope.context
        early = precheck(action, context)
        if early is not None or context is None:
            return early or _outcome(action, ActionStatus.SKIPPED, "No customer context.")
        if action is not ActionType.ADD_NOTE and orders_unavailable(context):
            # No order list: every order would look missing or ineligible. Say what is true instead.
            return _outcome(action, ActionStatus.SKIPPED, ORDERS_UNAVAILABLE_DETAIL)
        entities = envelope.intent.entities if envelope.intent else None
        target = select_target(
            action,
            context.orders,
            named_order_ids=entities.order_ids if entities else (),
            named_tracking=entities.tracking_numbers if entities else (),
            message=envelope.message,
            now=envelope.created_at,
            rerun=envelope.headers.rerun,
        )
        if action is ActionType.ADD_NOTE:
            return await self._note(envelope, context, target.order_id)
        if target.problem == "not_owned":
            return _outcome(
                action,
                ActionStatus.REFUSED,
                not_found_sentence(target.named or "that order", context),
                not_owned=target.named,
            )
        if target.problem == "ambiguous":
            listed = ", ".join(target.candidates)
            return _outcome(
                action,
                ActionStatus.SKIPPED,
                f"Several orders could be meant ({listed}); please tell us which one.",
                candidates=listed,
            )
        order = next((o for o in context.orders if o.order_id == target.order_id), None)
        if order is None:
            status, detail = NO_ELIGIBLE_ORDER[action]
            return _outcome(action, ActionStatus(status), detail)
        return await self._on_order(envelope, context, action, order)

    async def _on_order(
        self, envelope: Envelope, context: CustomerContext, action: ActionType, order: Order
    ) -> ActionOutcome:
        plan = plan_action(action, order, tier=context.tier, now=envelope.created_at)
        oid = order.order_id
        refusal = plan.detail
        if envelope.headers.rerun and already_done(action, order):
            # A rerun (retry, or a chain run again from its first step) reads the order as this
            # message's first run may have left it: ask the API again with the same key, which
            # answers with what it did then (the label, the cancellation) or refuses (409) if it
            # was someone else's doing. Refusing from the state read here told the customer
            # "already issued" and lost the label their own message had created.
            plan = Plan("execute")
        if plan.kind == "refuse":
            return _outcome(action, ActionStatus.REFUSED, plan.detail, oid)
        if plan.kind == "skip":
            return _outcome(action, ActionStatus.SKIPPED, plan.detail, oid)
        if action is ActionType.TRACKING_LOOKUP:
            return await self._tracking(order)
        key = idempotency_key(envelope.message_id, action, oid)
        mutations: dict[ActionType, OrderMutation] = {
            ActionType.CANCEL_ORDER: "cancel" if plan.kind == "execute" else "cancellation-request",
            ActionType.CREATE_RETURN_LABEL: "return-label",
            ActionType.CREATE_REFUND_REQUEST: "refund-request",
        }
        mutation = mutations[action]
        client, cache = self._access.require()
        reason = f"Customer request via chat (message {envelope.message_id})"
        try:
            body = await client.mutate_order(
                oid, mutation, customer_id=context.customer_id or "", reason=reason, key=key
            )
        except ApiRejected as exc:
            if exc.status_code not in (404, 409):
                raise
            detail = f"We could not find {oid} on your account." if exc.status_code == 404 else exc.detail
            if exc.status_code == 409 and refusal:  # the refusal the state read here implied
                detail = refusal
            return _outcome(action, ActionStatus.REFUSED, detail, oid, idempotency_key=key)
        finally:
            if mutation in ("cancel", "return-label"):
                # Also when no answer came (timeouts): the order may have changed all the same, and
                # a cached context would go on showing its old status. A 409 says it changed too.
                await cache.invalidate(context.email)
        return _done(action, mutation, oid, body, key)

    async def _tracking(self, order: Order) -> ActionOutcome:
        client, _ = self._access.require()
        action, oid = ActionType.TRACKING_LOOKUP, order.order_id
        info = await client.tracking(order.tracking_number or "")
        if info is None or info.tracking_number != order.tracking_number:
            return _outcome(
                action, ActionStatus.SKIPPED, f"No tracking information is available yet for {oid}.", oid
            )
        status = info.status.replace("_", " ")
        detail = f"{info.carrier} shipment {info.tracking_number} for {oid}: {status}"
        repeats = info.detail is None or info.detail.lower() == status.lower()
        detail += "." if repeats else f" ({info.detail})."
        return _outcome(
            action,
            ActionStatus.DONE,
            detail,
            oid,
            tracking_number=info.tracking_number,
            carrier=info.carrier,
            status=info.status,
            estimated_delivery=info.estimated_delivery,
            delivered_at=info.delivered_at,
        )

    async def _note(
        self, envelope: Envelope, context: CustomerContext, order_id: str | None
    ) -> ActionOutcome:
        client, _ = self._access.require()
        action = ActionType.ADD_NOTE
        key = idempotency_key(envelope.message_id, action, order_id)
        intent = envelope.intent.intent.value if envelope.intent else "unknown"
        text = (
            f"Complaint via chat (message {envelope.message_id}, intent {intent}): "
            f"{envelope.message[:NOTE_EXCERPT_CHARS]}"
        )
        body = await client.add_note(context.customer_id or "", text, order_id=order_id, key=key)
        return _outcome(
            action,
            ActionStatus.DONE,
            "Your feedback has been recorded on your account for our team.",
            order_id,
            idempotency_key=key,
            note_id=body.get("id"),
        )


def label_link(value: object) -> str | None:
    """The API's label URL if it is a plain http(s) link; anything else is never shown to a customer."""
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s<>\"']+", value):
        return None
    return value


def _done(
    action: ActionType, mutation: OrderMutation, oid: str, body: dict[str, Any], key: str
) -> ActionOutcome:
    """The outcome of a mutation the API accepted, worded for the customer (no amounts, no promises)."""
    record = body.get("id")
    if mutation == "cancel" and str(body.get("status", "")).strip().lower() != "cancelled":
        # Accepted but not (yet) cancelled, e.g. a 202 "cancellation_pending": saying "has been
        # cancelled" would claim what the API did not.
        return _outcome(
            action,
            ActionStatus.SKIPPED,
            f"We asked for {oid} to be cancelled, but our order system has not confirmed the "
            "cancellation yet; our support team can check on it for you.",
            oid,
            idempotency_key=key,
            order_status=body.get("status"),
        )
    if mutation == "cancel":
        return _outcome(
            action,
            ActionStatus.DONE,
            f"{oid} has been cancelled.",
            oid,
            idempotency_key=key,
            order_status="cancelled",
        )
    if mutation == "cancellation-request":
        return _outcome(
            action,
            ActionStatus.PENDING_REVIEW,
            f"A cancellation request for {oid} has been filed and is pending review; the order "
            "stays as it is until our team approves it.",
            oid,
            idempotency_key=key,
            request_id=record,
        )
    if mutation == "return-label":
        carrier, return_by = body.get("carrier"), str(body.get("return_by") or "")[:10]
        url = label_link(body.get("label_url"))
        # The link is what the customer needs to act on; a space follows it so no punctuation sticks.
        # A field the API left out is left out of the sentence, never printed as "None".
        label = f"A {carrier} return label" if carrier else "A return label"
        steps = [f"you can print it from {url}"] if url else []
        steps += [f"please ship the items by {return_by}"] if return_by else []
        then = f"; {' and '.join(steps)}." if steps else "."
        return _outcome(
            action,
            ActionStatus.DONE,
            f"{label} for {oid} has been created{then}",
            oid,
            idempotency_key=key,
            label_id=record,
            carrier=carrier,
            return_by=body.get("return_by"),
            label_url=url,
        )
    return _outcome(
        action,
        ActionStatus.PENDING_REVIEW,
        f"A refund request for {oid} has been filed for review by our billing team; they will "
        "contact you with the outcome.",
        oid,
        idempotency_key=key,
        request_id=record,
    )

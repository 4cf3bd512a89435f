"""context_retriever: the customer's profile, orders and tracking, cached per customer with a TTL.

Writes `envelope.context`. Profile first (its id keys the orders), then orders, then the tracking of
every shipped order concurrently. Every order is checked against the profile's customer id and
every shipment against its order, so no other customer's data can enter the envelope. A failing
profile lookup raises `UpstreamUnavailable` (redelivery retries it); failing orders or tracking
calls leave a partial context with `errors` filled in, which is then not cached (orders failing are
`policy.orders.ORDERS_UNAVAILABLE`: the orders are unknown, not absent). A long order history is cut
to the newest `MAX_CONTEXT_ORDERS` (`orders_total` says how many there were): complete, and cached.

It also writes `envelope.followups` when the message names escalation references (`ESC-…`): their
state, asked of the history service for this customer only (someone else's reference looks exactly
like a missing one), never cached.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import ClassVar

from actormesh_runtime.actors.commerce_base import CommerceActor
from actormesh_runtime.actors.lookup import ask_history
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.clients.commerce import CommerceClient, CustomerRecord
from actormesh_runtime.envelope import CustomerContext, Envelope, Order
from actormesh_runtime.errors import ActorMeshError
from actormesh_runtime.escalations import EscalationLookup, FollowUp, find_refs
from actormesh_runtime.policy.orders import MAX_CONTEXT_ORDERS, ORDERS_UNAVAILABLE, parse_time

log = logging.getLogger(__name__)

MAX_TRACKED_ORDERS = 5
"""Tracking is fetched for at most this many orders (newest first) to bound the fan-out."""
MAX_FOLLOWUPS = 5
LOOKUP_TIMEOUT_S = 2.0


def own_orders(customer_id: str, orders: list[Order]) -> tuple[list[Order], list[str]]:
    """Keep only orders of `customer_id`; report (without their contents) how many were dropped."""
    kept = [o for o in orders if o.customer_id == customer_id]
    dropped = len(orders) - len(kept)
    errors = [f"orders: dropped {dropped} order(s) not belonging to the customer"] if dropped else []
    return kept, errors


_UNDATED = datetime.min.replace(tzinfo=UTC)


def placed(order: Order) -> datetime:
    """When the order was placed, for "newest first". As a time, not as text: the APIs may state it
    in any offset, and "2026-01-01T20:00:00-08:00" is later than "2026-01-02T01:00:00+00:00" though
    it sorts before it. A date that does not parse counts as the oldest."""
    return parse_time(order.placed_at) or _UNDATED


def newest(orders: list[Order]) -> tuple[list[Order], int | None]:
    """At most `MAX_CONTEXT_ORDERS`, newest first, and how many there were when some were left out
    (`CustomerContext.orders_total`), so the replies know older orders exist. Before, a customer with
    a few thousand orders made an envelope too large for the bus: not even the error path could carry
    it, and the request got no answer. The cut is no failure: it is not one of `errors`, which would
    keep every such customer out of the cache."""
    if len(orders) <= MAX_CONTEXT_ORDERS:
        return orders, None
    return sorted(orders, key=placed, reverse=True)[:MAX_CONTEXT_ORDERS], len(orders)


def tracked_orders(orders: list[Order]) -> list[Order]:
    """Orders whose shipment is worth looking up: they have a tracking number; newest first."""
    with_tracking = [o for o in orders if o.tracking_number]
    return sorted(with_tracking, key=placed, reverse=True)[:MAX_TRACKED_ORDERS]


class ContextRetriever(CommerceActor):
    name: ClassVar[ActorName] = ActorName.CONTEXT_RETRIEVER

    async def handle(self, envelope: Envelope) -> None:
        client, cache = self._access.require()
        email = envelope.customer_email.strip().lower()
        envelope.followups = await self.follow_ups(envelope.message, email)
        cached = await cache.read(email)
        if cached.context is not None:
            envelope.context = cached.context
            return
        context = await self.fetch(client, email)
        await cache.put(context, cached.generation)
        envelope.context = context

    async def follow_ups(self, message: str, email: str) -> list[FollowUp]:
        """The state of the references the message names, as this customer may know it."""
        refs = find_refs(message)[:MAX_FOLLOWUPS]
        if not refs:
            return []
        question = EscalationLookup(op="status", refs=refs, customer_email=email)
        try:
            answer = await ask_history(self.deps, question, timeout_s=LOOKUP_TIMEOUT_S)
        except Exception as exc:  # the reply says the lookup failed; the rest of the message is answered
            log.info("escalation lookup failed", extra={"error": f"{type(exc).__name__}: {exc}"[:200]})
            return [FollowUp(ref=ref, found=False, lookup_failed=True) for ref in refs]
        return answer.followups

    async def fetch(self, client: CommerceClient, email: str) -> CustomerContext:
        """Build the context from the APIs (no cache)."""
        profile = await client.customer_by_email(email)
        if profile is None:
            return CustomerContext(found=False, email=email)
        if profile.email.strip().lower() != email:
            # The API answered with someone else: never use it.
            return CustomerContext(found=False, email=email, errors=["customers: profile email mismatch"])
        fetched, errors = await self._orders(client, profile)
        orders, total = newest(fetched)
        errors += await self._attach_tracking(client, orders)
        return CustomerContext(
            found=True,
            customer_id=profile.customer_id,
            name=profile.name,
            email=email,
            tier=profile.tier,
            account_status=profile.status,
            orders=orders,
            orders_total=total,
            errors=errors,
        )

    @staticmethod
    async def _orders(client: CommerceClient, profile: CustomerRecord) -> tuple[list[Order], list[str]]:
        try:
            fetched = await client.orders_of(profile.customer_id)
        except ActorMeshError as exc:
            return [], [f"{ORDERS_UNAVAILABLE} ({exc})"]
        return own_orders(profile.customer_id, fetched)

    @staticmethod
    async def _attach_tracking(client: CommerceClient, orders: list[Order]) -> list[str]:
        targets = tracked_orders(orders)
        results = await asyncio.gather(
            *(client.tracking(o.tracking_number or "") for o in targets), return_exceptions=True
        )
        errors: list[str] = []
        for order, result in zip(targets, results, strict=True):
            if isinstance(result, ActorMeshError):
                errors.append(f"tracking {order.tracking_number}: {result}")
            elif isinstance(result, BaseException):
                raise result
            elif result is None:
                errors.append(f"tracking {order.tracking_number}: not found")
            elif result.tracking_number == order.tracking_number:
                order.tracking = result
            else:
                errors.append(f"tracking {order.tracking_number}: answer for another shipment ignored")
        return errors

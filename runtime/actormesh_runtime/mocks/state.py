"""In-memory state shared by the three mock apps: the tables, created records, idempotent replies.

Every mutation checks the order's state first (the transition rules below) and raises `Conflict`
when it is not allowed. The apps (mocks.apps) wrap mutations with `IdempotencyStore`, so a repeated
`Idempotency-Key` returns the first reply and never applies the effect twice.

Transitions: pending|confirmed|processing --cancel--> cancelled;
delivered (within the return window, `store_policy`) --return label--> return_started.
Cancellation and refund requests are records with status `pending_review`; they never change the order.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from actormesh_runtime.mocks.data import Dataset, MockOrder, build_dataset, iso
from actormesh_runtime.store_policy import CANCELLABLE_STATUSES, RETURN_WINDOW, RETURN_WINDOW_DAYS


class MockError(Exception):
    """A refusal the API returns as an HTTP error with `detail`."""

    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(MockError):
    status_code = 404


class Conflict(MockError):
    """The order's current state does not allow this change."""

    status_code = 409


class KeyReused(MockError):
    """The same Idempotency-Key was sent with a different request."""

    status_code = 422


@dataclass(frozen=True)
class StoredReply:
    fingerprint: str
    status_code: int
    body: dict[str, Any]


@dataclass
class IdempotencyStore:
    """Replies by Idempotency-Key. Refusals (4xx) are stored too: the same key always gets the same reply."""

    replies: dict[str, StoredReply] = field(default_factory=dict)

    @staticmethod
    def fingerprint(method: str, path: str, body: dict[str, Any]) -> str:
        canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def lookup(self, key: str, fingerprint: str) -> StoredReply | None:
        stored = self.replies.get(key)
        if stored is not None and stored.fingerprint != fingerprint:
            raise KeyReused(f"Idempotency-Key {key!r} was already used for a different request")
        return stored

    def remember(self, key: str, reply: StoredReply) -> None:
        self.replies[key] = reply


@dataclass
class MockState:
    """Everything the mock APIs know. `reset()` restores the demo tables and forgets all records."""

    data: Dataset = field(default_factory=build_dataset)
    idempotency: IdempotencyStore = field(default_factory=IdempotencyStore)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Created return labels, cancellation/refund requests and notes, by id."""
    effects: int = 0
    """How many mutations took effect: tests use it to prove 'exactly once'."""
    _counter: int = 0

    def reset(self, now: datetime | None = None) -> None:
        self.data = build_dataset(now)
        self.idempotency = IdempotencyStore()
        self.records = {}
        self.effects = 0
        self._counter = 0

    def snapshot(self) -> dict[str, Any]:
        """Every effect applied so far, for checks from outside the process (`GET /_test/state`)."""
        return {
            "effects": self.effects,
            "records": list(self.records.values()),
            "idempotency": {key: reply.status_code for key, reply in self.idempotency.replies.items()},
            "orders": {oid: order.status for oid, order in self.data.orders.items()},
        }

    # ------------------------------------------------------------ reads

    def customer_by_email(self, email: str) -> dict[str, Any]:
        wanted = email.strip().lower()
        for customer in self.data.customers.values():
            if customer.email == wanted:
                return customer.model_dump()
        raise NotFound(f"no customer with email {wanted}")

    def customer(self, customer_id: str) -> dict[str, Any]:
        customer = self.data.customers.get(customer_id)
        if customer is None:
            raise NotFound(f"no customer {customer_id}")
        return customer.model_dump()

    def orders_of(self, customer_id: str) -> list[dict[str, Any]]:
        orders = [o for o in self.data.orders.values() if o.customer_id == customer_id]
        return [o.model_dump() for o in sorted(orders, key=lambda o: o.placed_at, reverse=True)]

    def order(self, order_id: str) -> dict[str, Any]:
        return self._order(order_id).model_dump()

    def tracking(self, number: str) -> dict[str, Any]:
        found = self.data.tracking.get(number)
        if found is None:
            raise NotFound(f"no shipment {number}")
        return found.model_dump()

    # ------------------------------------------------------------ mutations

    def cancel(self, order_id: str, customer_id: str, reason: str) -> dict[str, Any]:
        order = self._owned(order_id, customer_id)
        self._require_cancellable(order)
        order.status = "cancelled"
        order.cancelled_at = iso(datetime.now(UTC))
        self.effects += 1
        return {
            "order_id": order_id,
            "status": "cancelled",
            "cancelled_at": order.cancelled_at,
            "reason": reason,
        }

    def cancellation_request(self, order_id: str, customer_id: str, reason: str) -> dict[str, Any]:
        order = self._owned(order_id, customer_id)
        self._require_cancellable(order)
        return self._record(
            "CXR",
            order_id,
            customer_id,
            kind="cancellation_request",
            reason=reason,
            status="pending_review",
            order_status=order.status,
        )

    def return_label(self, order_id: str, customer_id: str, reason: str) -> dict[str, Any]:
        order = self._owned(order_id, customer_id)
        if order.status == "return_started":
            raise Conflict(f"a return label was already issued for {order_id}")
        if order.status != "delivered" or order.delivered_at is None:
            raise Conflict(f"{order_id} is {order.status}; a return label needs a delivered order")
        delivered = datetime.fromisoformat(order.delivered_at)
        return_by = delivered + RETURN_WINDOW
        if datetime.now(UTC) > return_by:
            raise Conflict(
                f"{order_id} was delivered more than {RETURN_WINDOW_DAYS} days ago; "
                "the return window has closed"
            )
        order.status = "return_started"
        carrier = order.carrier or "UPS"
        return self._record(
            "RL",
            order_id,
            customer_id,
            kind="return_label",
            reason=reason,
            status="issued",
            carrier=carrier,
            return_by=iso(return_by),
            label_url=f"https://returns.example.com/labels/{order_id}",
        )

    def refund_request(self, order_id: str, customer_id: str, reason: str) -> dict[str, Any]:
        order = self._owned(order_id, customer_id)
        # Refunds are decided by people: this only files a request and never names an amount.
        return self._record(
            "RFR",
            order_id,
            customer_id,
            kind="refund_request",
            reason=reason,
            status="pending_review",
            order_status=order.status,
        )

    def refund(self, order_id: str, customer_id: str, amount: float, reason: str) -> dict[str, Any]:
        order = self._owned(order_id, customer_id)
        if amount > order.total:
            raise Conflict(f"a refund of {amount:.2f} exceeds the total of {order_id} ({order.total:.2f})")
        # All refunds of an order together, as a back office keeps count: two approvals of one order
        # (two requests, or two meshes selling from one shop) never pay out more than was paid.
        refunded = sum(
            float(r["amount"])
            for r in self.records.values()
            if r.get("kind") == "refund" and r.get("order_id") == order_id
        )
        if round((refunded + amount) * 100) > round(order.total * 100):
            raise Conflict(
                f"a refund of {amount:.2f} exceeds what is left of {order_id} "
                f"({order.total - refunded:.2f} of {order.total:.2f})"
            )
        return self._record(
            "RF",
            order_id,
            customer_id,
            kind="refund",
            reason=reason,
            status="issued",
            amount=round(amount, 2),
        )

    def add_note(self, customer_id: str, text: str, order_id: str | None) -> dict[str, Any]:
        if customer_id not in self.data.customers:
            raise NotFound(f"no customer {customer_id}")
        if order_id is not None:
            self._owned(order_id, customer_id)
        return self._record("NOTE", order_id, customer_id, kind="note", text=text, status="saved")

    # ------------------------------------------------------------ helpers

    def _order(self, order_id: str) -> MockOrder:
        order = self.data.orders.get(order_id)
        if order is None:
            raise NotFound(f"no order {order_id}")
        return order

    def _owned(self, order_id: str, customer_id: str) -> MockOrder:
        order = self.data.orders.get(order_id)
        # Same reply for "missing" and "someone else's": the API never confirms another customer's order.
        if order is None or order.customer_id != customer_id:
            raise NotFound(f"no order {order_id} for customer {customer_id}")
        return order

    @staticmethod
    def _require_cancellable(order: MockOrder) -> None:
        if order.status not in CANCELLABLE_STATUSES:
            raise Conflict(
                f"{order.order_id} is {order.status}; only pending, confirmed or processing "
                "orders can be cancelled"
            )

    def _record(self, prefix: str, order_id: str | None, customer_id: str, **fields: Any) -> dict[str, Any]:
        self._counter += 1
        record_id = f"{prefix}-{self._counter:05d}"
        record = {
            "id": record_id,
            "order_id": order_id,
            "customer_id": customer_id,
            "created_at": iso(datetime.now(UTC)),
            **fields,
        }
        self.records[record_id] = record
        self.effects += 1
        return dict(record)

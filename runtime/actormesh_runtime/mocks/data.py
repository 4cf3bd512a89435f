"""The fixed, mutually consistent demo data behind the mock APIs (the tables in the runtime-core issue).

Dates are relative to `now`, so "delivered 12 days ago" stays true whenever the demo runs.
`build_dataset(now)` builds a fresh copy; `MockState.reset()` calls it again to restore the tables.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

OrderStatus = Literal[
    "pending", "confirmed", "processing", "shipped", "delivered", "cancelled", "return_started"
]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MockCustomer(_Record):
    customer_id: str
    email: str
    name: str
    tier: Literal["standard", "premium", "vip"]
    status: Literal["active", "suspended"]
    member_since: str


class MockItem(_Record):
    name: str
    quantity: int = 1
    unit_price: float


class MockOrder(_Record):
    order_id: str
    customer_id: str
    status: OrderStatus
    placed_at: str
    items: list[MockItem]
    total: float
    carrier: str | None = None
    tracking_number: str | None = None
    shipped_at: str | None = None
    delivered_at: str | None = None
    cancelled_at: str | None = None


class TrackingEvent(_Record):
    at: str
    status: str
    location: str


class MockTracking(_Record):
    tracking_number: str
    order_id: str
    carrier: str
    status: Literal["in_transit", "out_for_delivery", "delivered", "exception"]
    detail: str | None = None
    estimated_delivery: str | None = None
    delivered_at: str | None = None
    events: list[TrackingEvent] = Field(default_factory=list)


class Dataset(_Record):
    customers: dict[str, MockCustomer]
    orders: dict[str, MockOrder]
    tracking: dict[str, MockTracking]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _order(
    order_id: str,
    customer_id: str,
    status: OrderStatus,
    placed: datetime,
    items: list[MockItem],
    **dates: datetime | str | None,
) -> MockOrder:
    fields = {k: iso(v) if isinstance(v, datetime) else v for k, v in dates.items()}
    total = round(sum(i.unit_price * i.quantity for i in items), 2)
    return MockOrder(
        order_id=order_id,
        customer_id=customer_id,
        status=status,
        placed_at=iso(placed),
        items=items,
        total=total,
        **fields,
    )


def _customers(now: datetime) -> list[MockCustomer]:
    def since(days: int) -> str:
        return iso(now - timedelta(days=days))

    return [
        MockCustomer(customer_id="CUST-1001", email="john.doe@example.com", name="John Doe",
                     tier="premium", status="active", member_since=since(900)),
        MockCustomer(customer_id="CUST-1002", email="jane.smith@example.com", name="Jane Smith",
                     tier="vip", status="active", member_since=since(1500)),
        MockCustomer(customer_id="CUST-1003", email="bob.wilson@example.com", name="Bob Wilson",
                     tier="standard", status="active", member_since=since(200)),
        MockCustomer(customer_id="CUST-1004", email="mia.park@example.com", name="Mia Park",
                     tier="standard", status="suspended", member_since=since(60)),
    ]  # fmt: skip


def _orders(now: datetime) -> list[MockOrder]:
    def ago(days: float) -> datetime:
        return now - timedelta(days=days)

    return [
        _order("ORD-10001", "CUST-1001", "delivered", ago(16),
               [MockItem(name="Wireless Headphones", unit_price=99.99),
                MockItem(name="Phone Case", unit_price=19.99)],
               carrier="FedEx", tracking_number="TRK100000001", shipped_at=ago(15), delivered_at=ago(12)),
        _order("ORD-10002", "CUST-1001", "shipped", ago(5),
               [MockItem(name="Laptop Stand", unit_price=79.99),
                MockItem(name="USB-C Hub", quantity=2, unit_price=44.99)],
               carrier="UPS", tracking_number="TRK100000002", shipped_at=ago(3)),
        _order("ORD-10003", "CUST-1001", "delivered", ago(50),
               [MockItem(name="Notebook Set", quantity=2, unit_price=24.99)],
               carrier="USPS", tracking_number="TRK100000003", shipped_at=ago(48), delivered_at=ago(45)),
        _order("ORD-20001", "CUST-1002", "processing", ago(1),
               [MockItem(name="Gaming Mouse", unit_price=59.99),
                MockItem(name="Mouse Pad", unit_price=19.99)]),
        _order("ORD-20002", "CUST-1002", "shipped", ago(8),
               [MockItem(name="Mechanical Keyboard", unit_price=149.00)],
               carrier="FedEx", tracking_number="TRK200000001", shipped_at=ago(6)),
        _order("ORD-30001", "CUST-1003", "pending", now - timedelta(hours=2),
               [MockItem(name="Coffee Maker", unit_price=149.00)]),
    ]  # fmt: skip


def _tracking(now: datetime) -> list[MockTracking]:
    def ago(days: float) -> str:
        return iso(now - timedelta(days=days))

    def ev(days: float, status: str, location: str) -> TrackingEvent:
        return TrackingEvent(at=ago(days), status=status, location=location)

    return [
        MockTracking(tracking_number="TRK100000001", order_id="ORD-10001", carrier="FedEx",
                     status="delivered", detail="Delivered to front door", delivered_at=ago(12),
                     events=[ev(15, "picked_up", "Memphis, TN"), ev(12, "delivered", "Austin, TX")]),
        MockTracking(tracking_number="TRK100000002", order_id="ORD-10002", carrier="UPS",
                     status="out_for_delivery", detail="On the delivery vehicle",
                     estimated_delivery=iso(now.replace(hour=20, minute=0, second=0, microsecond=0)),
                     events=[ev(3, "picked_up", "Louisville, KY"),
                             ev(0.2, "out_for_delivery", "Austin, TX")]),
        MockTracking(tracking_number="TRK100000003", order_id="ORD-10003", carrier="USPS",
                     status="delivered", detail="Delivered to mailbox", delivered_at=ago(45),
                     events=[ev(48, "accepted", "Chicago, IL"), ev(45, "delivered", "Austin, TX")]),
        MockTracking(tracking_number="TRK200000001", order_id="ORD-20002", carrier="FedEx",
                     status="exception", detail="Address correction needed",
                     events=[ev(6, "picked_up", "Newark, NJ"),
                             ev(2, "exception", "Denver, CO: address correction needed")]),
    ]  # fmt: skip


def build_dataset(now: datetime | None = None) -> Dataset:
    """A fresh copy of the demo tables, dated relative to `now` (default: the current time, UTC)."""
    moment = now or datetime.now(UTC)
    return Dataset(
        customers={c.customer_id: c for c in _customers(moment)},
        orders={o.order_id: o for o in _orders(moment)},
        tracking={t.tracking_number: t for t in _tracking(moment)},
    )

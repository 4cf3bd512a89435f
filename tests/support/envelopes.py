"""Envelope builders for actor tests: the mock store's customers as contexts, and a recording Publisher.

The contexts mirror the fixed mock data of issue 2 (dates relative to a fixed "now"), so actor
tests read like the real conversations without any server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from actormesh_runtime.envelope import (
    CustomerContext,
    Envelope,
    FinalResult,
    HistoryEvent,
    MethodSummary,
    Order,
    OrderItem,
    TrackingInfo,
)
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.screening import screen
from actormesh_runtime.settings import RuntimeSettings

JOHN = "john.doe@example.com"
JANE = "jane.smith@example.com"
BOB = "bob.wilson@example.com"
MIA = "mia.park@example.com"


@dataclass
class FakePublisher:
    """Records what an actor publishes; `fail` makes every publish raise (a broken bus)."""

    core: list[tuple[str, bytes]] = field(default_factory=list)
    stream: list[tuple[str, bytes, str]] = field(default_factory=list)
    requests: list[tuple[str, bytes]] = field(default_factory=list)
    fail: bool = False
    held: set[str] = field(default_factory=set)
    """Message ids the stream already holds: a publish with one of them is a duplicate."""
    answer: Callable[[str, bytes], bytes] | None = None
    """Answers `request`; None: nobody answers (like a NATS request without responders)."""

    async def publish_core(self, subject: str, payload: bytes) -> None:
        if self.fail:
            raise ConnectionError("bus down")
        self.core.append((subject, payload))

    async def publish_stream(self, subject: str, payload: bytes, *, msg_id: str) -> bool:
        if self.fail:
            raise ConnectionError("bus down")
        self.stream.append((subject, payload, msg_id))
        new = msg_id not in self.held
        self.held.add(msg_id)
        return new

    async def request(self, subject: str, payload: bytes, *, timeout_s: float) -> bytes:
        self.requests.append((subject, payload))
        if self.fail or self.answer is None:
            raise ConnectionError("no responders")
        return self.answer(subject, payload)


def make_deps(settings: RuntimeSettings | None = None, publisher: FakePublisher | None = None) -> ActorDeps:
    return ActorDeps(
        settings=settings or RuntimeSettings(mesh_name="unit"),
        publisher=publisher or FakePublisher(),
        whole_mesh=True,  # as `actormesh dev`: a process-local cache is coherent
    )


def _order(oid: str, cust: str, status: str, items: list[tuple[str, int, float]], **extra: Any) -> Order:
    order_items = [OrderItem(name=n, quantity=q, unit_price=p) for n, q, p in items]
    return Order(
        order_id=oid,
        customer_id=cust,
        status=status,
        placed_at=extra.pop("placed_at", "2026-11-01T10:00:00Z"),
        items=order_items,
        total=round(sum(i.quantity * i.unit_price for i in order_items), 2),
        **extra,
    )


def john_orders() -> list[Order]:
    return [
        _order(
            "ORD-10001",
            "CUST-1001",
            "delivered",
            [("Wireless Headphones", 1, 99.99), ("Phone Case", 1, 19.99)],
            carrier="FedEx",
            tracking_number="TRK100000001",
            delivered_at="2026-11-15T12:00:00Z",
            tracking=TrackingInfo(
                tracking_number="TRK100000001",
                carrier="FedEx",
                status="delivered",
                delivered_at="2026-11-15T12:00:00Z",
            ),
        ),
        _order(
            "ORD-10002",
            "CUST-1001",
            "shipped",
            [("Laptop Stand", 1, 79.99), ("USB-C Hub", 2, 44.99)],
            carrier="UPS",
            tracking_number="TRK100000002",
            shipped_at="2026-11-24T09:00:00Z",
            tracking=TrackingInfo(
                tracking_number="TRK100000002",
                carrier="UPS",
                status="out_for_delivery",
                estimated_delivery="2026-11-27",
            ),
        ),
        _order(
            "ORD-10003",
            "CUST-1001",
            "delivered",
            [("Notebook Set", 2, 24.99)],
            carrier="USPS",
            tracking_number="TRK100000003",
            delivered_at="2026-10-13T12:00:00Z",
        ),
    ]


def jane_orders() -> list[Order]:
    return [
        _order(
            "ORD-20001",
            "CUST-1002",
            "processing",
            [("Gaming Mouse", 1, 59.99), ("Mouse Pad", 1, 19.99)],
            placed_at="2026-11-26T10:00:00Z",
        ),
        _order(
            "ORD-20002",
            "CUST-1002",
            "shipped",
            [("Mechanical Keyboard", 1, 149.00)],
            carrier="FedEx",
            tracking_number="TRK200000001",
            shipped_at="2026-11-21T09:00:00Z",
            tracking=TrackingInfo(
                tracking_number="TRK200000001",
                carrier="FedEx",
                status="exception",
                detail="address correction needed",
            ),
        ),
    ]


def context_for(email: str) -> CustomerContext:
    """The context context_retriever would produce for one of the mock customers (or an unknown one)."""
    table: dict[str, tuple[str, str, str, str, list[Order]]] = {
        JOHN: ("CUST-1001", "John Doe", "premium", "active", john_orders()),
        JANE: ("CUST-1002", "Jane Smith", "vip", "active", jane_orders()),
        BOB: (
            "CUST-1003",
            "Bob Wilson",
            "standard",
            "active",
            [_order("ORD-30001", "CUST-1003", "pending", [("Coffee Maker", 1, 149.00)])],
        ),
        MIA: ("CUST-1004", "Mia Park", "standard", "suspended", []),
    }
    if email not in table:
        return CustomerContext(found=False, email=email)
    cid, name, tier, status, orders = table[email]
    return CustomerContext(
        found=True, customer_id=cid, name=name, email=email, tier=tier, account_status=status, orders=orders
    )  # type: ignore[arg-type]


def make_envelope(
    message: str, email: str = JOHN, *, with_context: bool = False, **sections: Any
) -> Envelope:
    """A fresh envelope for `message` (screened as the gateway would), with any sections preset."""
    text, screening = screen(message)
    envelope = Envelope.start(
        session_id="sess-test",
        customer_email=email,
        message=text,
        screening=screening,
        budget_s=30,
        message_id=sections.pop("message_id", None),
    )
    if with_context:
        envelope.context = context_for(email)
    for key, value in sections.items():
        setattr(envelope, key, value)
    return envelope


def ready_for_reply(message: str, email: str = JOHN, *, context: CustomerContext | None = None) -> Envelope:
    """An envelope as response_generator receives it: the customer's context (`context`, else the mock
    store's), the rules' intent, no handoff, the slip at the generator."""
    from actormesh_runtime.actors.intent_analyzer import classify
    from actormesh_runtime.catalog import DEFAULT_ROUTE, ActorName
    from actormesh_runtime.envelope import Decision

    envelope = make_envelope(message, email, with_context=context is None)
    if context is not None:
        envelope.context = context
    envelope.intent = classify(envelope.message)
    envelope.decision = Decision(escalate=False)
    envelope.slip.index = DEFAULT_ROUTE.index(ActorName.RESPONSE_GENERATOR)
    return envelope


def final_result(message_id: str, session_id: str = "s", response: str = "ok") -> FinalResult:
    """A minimal answer to `message_id` (no intent, actions or trace): what reply routing reads."""
    return FinalResult(
        message_id=message_id, session_id=session_id, response=response, intent=None,
        intent_confidence=None, sentiment=None, urgency=None, escalated=False, reference_id=None, actions=[],
        flags=[], method=MethodSummary(intent="rules", response="template"), trace=[], processing_ms=1.0,
    )  # fmt: skip


def history_event(message_id: str, session_id: str) -> HistoryEvent:
    """One finished turn of John's, as the aggregator publishes it to the history stream."""
    now = datetime.now(UTC)
    result = final_result(message_id, session_id, "Your order is on its way.")
    return HistoryEvent(
        message_id=message_id, session_id=session_id, customer_email=JOHN, customer_message="where is it?",
        received_at=now, completed_at=now, result=result,
    )  # fmt: skip

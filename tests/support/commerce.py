"""Helpers for commerce tests: envelope-shaped data built from the mock tables, and in-process clients.

`context_for(email, now)` gives the CustomerContext context_retriever would build from the mock data
(no HTTP), so policy tables need no server. `mounted_client(state, settings)` is a CommerceClient
whose three base URLs are routed to the mock apps in-process (httpx ASGITransport, no sockets).
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from actormesh_runtime.clients.commerce import CommerceClient, RetryPolicy, acquire_commerce_client
from actormesh_runtime.envelope import (
    CustomerContext,
    Entities,
    Envelope,
    Intent,
    IntentResult,
    Order,
    Screening,
    Sentiment,
    SentimentLabel,
    TrackingInfo,
    Urgency,
)
from actormesh_runtime.mocks.apps import build_apps
from actormesh_runtime.mocks.data import Dataset, build_dataset
from actormesh_runtime.mocks.state import MockState
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.settings import RuntimeSettings

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
CUSTOMERS_URL = "http://customers.test"
ORDERS_URL = "http://orders.test"
TRACKING_URL = "http://tracking.test"
NO_WAIT = RetryPolicy(attempts=3, base_delay_s=0.0)


def orders_from(data: Dataset, customer_id: str, *, with_tracking: bool = True) -> list[Order]:
    orders = []
    for mock in sorted(data.orders.values(), key=lambda o: o.placed_at, reverse=True):
        if mock.customer_id != customer_id:
            continue
        order = Order.model_validate(mock.model_dump(exclude={"cancelled_at"}))
        shipment = data.tracking.get(mock.tracking_number or "")
        if with_tracking and shipment is not None:
            order.tracking = TrackingInfo.model_validate(shipment.model_dump(exclude={"order_id", "events"}))
        orders.append(order)
    return orders


def context_for(email: str, now: datetime = NOW) -> CustomerContext:
    data = build_dataset(now)
    customer = next((c for c in data.customers.values() if c.email == email), None)
    if customer is None:
        return CustomerContext(found=False, email=email)
    return CustomerContext(
        found=True,
        customer_id=customer.customer_id,
        name=customer.name,
        email=email,
        tier=customer.tier,
        account_status=customer.status,
        orders=orders_from(data, customer.customer_id),
    )


def sentiment(
    label: SentimentLabel = SentimentLabel.NEUTRAL,
    urgency: Urgency = Urgency.LOW,
    **flags: bool,
) -> Sentiment:
    score = {SentimentLabel.NEGATIVE: -0.6, SentimentLabel.NEUTRAL: 0.0, SentimentLabel.POSITIVE: 0.6}[label]
    return Sentiment(label=label, score=score, urgency=urgency, **flags)


def intent(
    kind: Intent, confidence: float = 0.9, *, orders: tuple[str, ...] = (), tracking: tuple[str, ...] = ()
) -> IntentResult:
    entities = Entities(order_ids=list(orders), tracking_numbers=list(tracking))
    return IntentResult(intent=kind, confidence=confidence, entities=entities)


def envelope_for(
    email: str,
    message: str = "hello",
    *,
    message_id: str | None = None,
    now: datetime | None = None,
    screening: Screening | None = None,
) -> Envelope:
    env = Envelope.start(
        session_id="sess-test",
        customer_email=email,
        message=message,
        screening=screening or Screening(),
        budget_s=60,
        message_id=message_id,
    )
    if now is not None:
        env.created_at = now
    return env


def mock_transports(state: MockState) -> dict[str, httpx.AsyncBaseTransport]:
    """The three mock apps as in-process transports, keyed by the base URLs of `unit_settings()`."""
    apps = build_apps(state)
    return {
        CUSTOMERS_URL: httpx.ASGITransport(app=apps.customers),
        ORDERS_URL: httpx.ASGITransport(app=apps.orders),
        TRACKING_URL: httpx.ASGITransport(app=apps.tracking),
    }


def mounted_client(settings: RuntimeSettings, mounts: dict[str, httpx.AsyncBaseTransport]) -> CommerceClient:
    return CommerceClient(settings, retry=NO_WAIT, mounts=mounts)


def unit_settings(**overrides: object) -> RuntimeSettings:
    values: dict[str, object] = {
        "customer_api_url": CUSTOMERS_URL,
        "orders_api_url": ORDERS_URL,
        "tracking_api_url": TRACKING_URL,
        "redis_url": None,
        "mesh_name": "unit",
    }
    values.update(overrides)
    return RuntimeSettings(**values)  # type: ignore[arg-type]


class _NoPublisher:
    async def publish_core(self, subject: str, payload: bytes) -> None:
        raise AssertionError("commerce actors do not publish")

    async def publish_stream(self, subject: str, payload: bytes, *, msg_id: str) -> bool:
        raise AssertionError("commerce actors do not publish")

    async def request(self, subject: str, payload: bytes, *, timeout_s: float) -> bytes:
        raise ConnectionError("no responders: no history service in unit tests")


def deps_with_client(settings: RuntimeSettings, client: CommerceClient) -> ActorDeps:
    """ActorDeps whose process-wide commerce client is `client` (held once by the test)."""
    # whole_mesh: the test stands in for the one-process mesh, whose in-memory cache is coherent.
    deps = ActorDeps(settings=settings, publisher=_NoPublisher(), whole_mesh=True)
    acquire_commerce_client(deps, lambda: client)
    return deps


class Recorder(httpx.AsyncBaseTransport):
    """Wraps a transport and records each request's method and path; may fail the first `fail_first`."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, *, fail_first: int = 0, status: int | None = None
    ) -> None:
        self.inner = inner
        self.calls: list[str] = []
        self.fail_first = fail_first
        self.status = status
        """With `status`, the first `fail_first` calls answer it; without, they raise ConnectError."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(f"{request.method} {request.url.path}")
        if len(self.calls) <= self.fail_first:
            if self.status is None:
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(self.status, json={"detail": "injected"})
        return await self.inner.handle_async_request(request)

"""Mock commerce APIs in-process (no sockets): data consistency, order-state transitions, Idempotency-Key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from actormesh_runtime.mocks.apps import MockApps, build_apps
from actormesh_runtime.mocks.data import build_dataset
from actormesh_runtime.mocks.state import MockState


class Mocks:
    def __init__(self, state: MockState, apps: MockApps) -> None:
        self.state = state
        self.customers = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=apps.customers), base_url="http://c"
        )
        self.orders = httpx.AsyncClient(transport=httpx.ASGITransport(app=apps.orders), base_url="http://o")
        self.tracking = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=apps.tracking), base_url="http://t"
        )

    async def change(
        self, order_id: str, path: str, customer_id: str, key: str | None = None, reason: str = ""
    ) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        body = {"customer_id": customer_id, "reason": reason}
        return await self.orders.post(f"/orders/{order_id}/{path}", json=body, headers=headers)

    async def status_of(self, order_id: str) -> str:
        response = await self.orders.get(f"/orders/{order_id}")
        return str(response.json()["status"])

    async def aclose(self) -> None:
        for client in (self.customers, self.orders, self.tracking):
            await client.aclose()


@pytest.fixture
async def mocks() -> AsyncIterator[Mocks]:
    state = MockState()
    m = Mocks(state, build_apps(state))
    yield m
    await m.aclose()


# ---------------------------------------------------------------- the fixed data


def test_dataset_is_mutually_consistent() -> None:
    now = datetime.now(UTC)
    data = build_dataset(now)
    assert sorted(data.customers) == ["CUST-1001", "CUST-1002", "CUST-1003", "CUST-1004"]
    assert sorted(data.orders) == [
        "ORD-10001",
        "ORD-10002",
        "ORD-10003",
        "ORD-20001",
        "ORD-20002",
        "ORD-30001",
    ]
    for order in data.orders.values():
        assert order.customer_id in data.customers
        assert order.total == round(sum(i.unit_price * i.quantity for i in order.items), 2)
        if order.tracking_number:
            shipment = data.tracking[order.tracking_number]
            assert (shipment.order_id, shipment.carrier) == (order.order_id, order.carrier)
    assert {t.order_id for t in data.tracking.values()} == {
        "ORD-10001",
        "ORD-10002",
        "ORD-10003",
        "ORD-20002",
    }
    delivered = datetime.fromisoformat(data.orders["ORD-10001"].delivered_at or "")
    assert timedelta(days=11) < now - delivered < timedelta(days=13)
    old = datetime.fromisoformat(data.orders["ORD-10003"].delivered_at or "")
    assert now - old > timedelta(days=30)
    assert data.tracking["TRK200000001"].status == "exception"
    assert data.orders["ORD-10002"].total == 169.97


# ---------------------------------------------------------------- reads


async def test_customer_lookup_by_email_and_id(mocks: Mocks) -> None:
    response = await mocks.customers.get("/customers/by-email/Jane.Smith@example.com")
    assert response.status_code == 200
    assert response.json()["customer_id"] == "CUST-1002"
    assert response.json()["tier"] == "vip"
    assert (await mocks.customers.get("/customers/CUST-1004")).json()["status"] == "suspended"
    missing = await mocks.customers.get("/customers/by-email/nobody@example.com")
    assert missing.status_code == 404


async def test_orders_list_only_that_customers_orders(mocks: Mocks) -> None:
    response = await mocks.orders.get("/orders", params={"customer_id": "CUST-1001"})
    ids = [o["order_id"] for o in response.json()["orders"]]
    assert ids == ["ORD-10002", "ORD-10001", "ORD-10003"]  # newest first
    assert (await mocks.orders.get("/orders")).status_code == 422  # no listing of everyone's orders
    assert (await mocks.orders.get("/orders/ORD-99999")).status_code == 404


async def test_tracking_lookup(mocks: Mocks) -> None:
    response = await mocks.tracking.get("/tracking/TRK100000002")
    assert response.json()["status"] == "out_for_delivery"
    assert response.json()["estimated_delivery"]
    assert (await mocks.tracking.get("/tracking/TRK999999999")).status_code == 404


# ---------------------------------------------------------------- transitions


@pytest.mark.parametrize(
    ("order_id", "customer_id", "path", "code", "status_after"),
    [
        pytest.param("ORD-20001", "CUST-1002", "cancel", 201, "cancelled", id="cancel-processing"),
        pytest.param("ORD-30001", "CUST-1003", "cancel", 201, "cancelled", id="cancel-pending"),
        pytest.param("ORD-10002", "CUST-1001", "cancel", 409, "shipped", id="cancel-shipped-refused"),
        pytest.param("ORD-10001", "CUST-1001", "cancel", 409, "delivered", id="cancel-delivered-refused"),
        pytest.param(
            "ORD-20001", "CUST-1001", "cancel", 404, "processing", id="cancel-other-customers-order"
        ),
        pytest.param(
            "ORD-30001",
            "CUST-1003",
            "cancellation-request",
            201,
            "pending",
            id="cancellation-request-leaves-order",
        ),
        pytest.param(
            "ORD-10002",
            "CUST-1001",
            "cancellation-request",
            409,
            "shipped",
            id="cancellation-request-shipped-refused",
        ),
        pytest.param(
            "ORD-10001", "CUST-1001", "return-label", 201, "return_started", id="return-within-30-days"
        ),
        pytest.param("ORD-10003", "CUST-1001", "return-label", 409, "delivered", id="return-after-30-days"),
        pytest.param("ORD-10002", "CUST-1001", "return-label", 409, "shipped", id="return-not-delivered"),
        pytest.param("ORD-10001", "CUST-1002", "return-label", 404, "delivered", id="return-other-customer"),
        pytest.param("ORD-10001", "CUST-1001", "refund-request", 201, "delivered", id="refund-is-a-request"),
    ],
)
async def test_order_transitions(
    mocks: Mocks, order_id: str, customer_id: str, path: str, code: int, status_after: str
) -> None:
    response = await mocks.change(order_id, path, customer_id)
    assert response.status_code == code, response.text
    assert await mocks.status_of(order_id) == status_after
    assert mocks.state.effects == (1 if code == 201 else 0)


async def test_requests_are_pending_review_and_name_no_amount(mocks: Mocks) -> None:
    refund = (await mocks.change("ORD-10001", "refund-request", "CUST-1001")).json()
    assert refund["status"] == "pending_review"
    assert refund["id"].startswith("RFR-")
    assert not {"amount", "refund_amount"} & set(refund)
    cancel = (await mocks.change("ORD-30001", "cancellation-request", "CUST-1003")).json()
    assert cancel["status"] == "pending_review"


async def test_second_change_sees_the_new_state(mocks: Mocks) -> None:
    assert (await mocks.change("ORD-20001", "cancel", "CUST-1002", key="a")).status_code == 201
    again = await mocks.change("ORD-20001", "cancel", "CUST-1002", key="b")
    assert again.status_code == 409
    assert "cancelled" in again.json()["detail"]
    assert (await mocks.change("ORD-10001", "return-label", "CUST-1001", key="c")).status_code == 201
    second = await mocks.change("ORD-10001", "return-label", "CUST-1001", key="d")
    assert second.status_code == 409
    assert "already issued" in second.json()["detail"]


# ---------------------------------------------------------------- idempotency


async def test_same_key_same_reply_one_effect(mocks: Mocks) -> None:
    first = await mocks.change("ORD-20001", "cancel", "CUST-1002", key="k-1")
    second = await mocks.change("ORD-20001", "cancel", "CUST-1002", key="k-1")
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert mocks.state.effects == 1


async def test_same_key_for_a_return_label_returns_the_same_label(mocks: Mocks) -> None:
    first = (await mocks.change("ORD-10001", "return-label", "CUST-1001", key="rl")).json()
    second = (await mocks.change("ORD-10001", "return-label", "CUST-1001", key="rl")).json()
    assert first["id"] == second["id"]
    assert len([r for r in mocks.state.records.values() if r["kind"] == "return_label"]) == 1


async def test_a_refusal_is_replayed_too(mocks: Mocks) -> None:
    refused = await mocks.change("ORD-10002", "cancel", "CUST-1001", key="k-r")
    assert refused.status_code == 409
    replay = await mocks.change("ORD-10002", "cancel", "CUST-1001", key="k-r")
    assert (replay.status_code, replay.json()) == (409, refused.json())


@pytest.mark.parametrize(
    ("order_id", "path", "reason"),
    [
        pytest.param("ORD-20001", "cancel", "changed my mind", id="different-body"),
        pytest.param("ORD-20001", "refund-request", "", id="different-endpoint"),
    ],
)
async def test_same_key_different_request_is_rejected(
    mocks: Mocks, order_id: str, path: str, reason: str
) -> None:
    assert (await mocks.change("ORD-20001", "cancel", "CUST-1002", key="k-2")).status_code == 201
    reused = await mocks.change(order_id, path, "CUST-1002", key="k-2", reason=reason)
    assert reused.status_code == 422
    assert "Idempotency-Key" in reused.json()["detail"]
    assert mocks.state.effects == 1


async def test_notes_are_idempotent_and_owned(mocks: Mocks) -> None:
    body = {"text": "Customer complained about late delivery", "order_id": "ORD-10002"}
    headers = {"Idempotency-Key": "note-1"}
    first = await mocks.customers.post("/customers/CUST-1001/notes", json=body, headers=headers)
    second = await mocks.customers.post("/customers/CUST-1001/notes", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    foreign = await mocks.customers.post(
        "/customers/CUST-1002/notes", json=body, headers={"Idempotency-Key": "note-2"}
    )
    assert foreign.status_code == 404  # ORD-10002 is not Jane's
    unknown = await mocks.customers.post("/customers/CUST-9999/notes", json={"text": "x"})
    assert unknown.status_code == 404
    assert mocks.state.effects == 1


async def test_without_a_key_each_call_takes_effect(mocks: Mocks) -> None:
    for _ in range(2):
        response = await mocks.customers.post("/customers/CUST-1003/notes", json={"text": "hello"})
        assert response.status_code == 201
    assert mocks.state.effects == 2


async def test_reset_restores_the_tables(mocks: Mocks) -> None:
    await mocks.change("ORD-20001", "cancel", "CUST-1002", key="k-3")
    response = await mocks.orders.post("/_test/reset")
    assert response.status_code == 200
    assert await mocks.status_of("ORD-20001") == "processing"
    assert mocks.state.effects == 0
    # The key store was reset too: the same key now cancels again.
    assert (await mocks.change("ORD-20001", "cancel", "CUST-1002", key="k-3")).status_code == 201


def test_reset_endpoint_can_be_disabled() -> None:
    apps = build_apps(test_endpoints=False)
    paths = {getattr(route, "path", "") for route in apps.orders.routes}
    assert "/_test/reset" not in paths
    assert "/orders/{order_id}/cancel" in paths


async def test_refunds_of_one_order_never_add_up_to_more_than_its_total(mocks: Mocks) -> None:
    async def refund(amount: float, key: str) -> httpx.Response:
        body = {"customer_id": "CUST-1001", "amount": amount, "reason": "approved"}
        return await mocks.orders.post(
            "/orders/ORD-10001/refund", json=body, headers={"Idempotency-Key": key}
        )

    assert (await refund(100.0, "a")).status_code == 201  # of 119.98
    assert (await refund(100.0, "a")).status_code == 201  # the same key: replayed, not a second refund
    too_much = await refund(20.0, "b")
    assert too_much.status_code == 409
    assert "19.98 of 119.98" in too_much.json()["detail"]
    assert (await refund(19.98, "c")).status_code == 201
    issued = [r["amount"] for r in mocks.state.records.values() if r["kind"] == "refund"]
    assert issued == [100.0, 19.98]

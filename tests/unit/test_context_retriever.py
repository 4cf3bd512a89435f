"""context_retriever and the commerce client on the in-process mock apps (httpx ASGITransport, no sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest

from actormesh_runtime.actors.context_retriever import ContextRetriever
from actormesh_runtime.clients.commerce import ApiRejected, release_commerce_client
from actormesh_runtime.envelope import Envelope
from actormesh_runtime.errors import UpstreamUnavailable
from actormesh_runtime.mocks.state import MockState
from actormesh_runtime.policy.orders import MAX_CONTEXT_ORDERS, not_found_sentence, orders_truncated
from tests.support.commerce import (
    CUSTOMERS_URL,
    ORDERS_URL,
    TRACKING_URL,
    Recorder,
    context_for,
    deps_with_client,
    envelope_for,
    mock_transports,
    mounted_client,
    unit_settings,
)


@dataclass
class Rig:
    actor: ContextRetriever
    state: MockState
    recorders: dict[str, Recorder]

    def calls(self) -> list[str]:
        return [c for r in self.recorders.values() for c in r.calls]


@pytest.fixture
async def rig_factory() -> AsyncIterator[Callable[..., object]]:
    """Build a started ContextRetriever; keyword args replace one API's transport or wrap it."""
    opened: list[tuple[ContextRetriever, object]] = []

    async def make(
        replace: dict[str, httpx.AsyncBaseTransport] | None = None, **recorder_args: object
    ) -> Rig:
        state = MockState()
        transports = mock_transports(state)
        transports.update(replace or {})
        recorders = {url: Recorder(t, **recorder_args.get(url, {})) for url, t in transports.items()}  # type: ignore[arg-type]
        settings = unit_settings()
        deps = deps_with_client(settings, mounted_client(settings, dict(recorders)))
        actor = ContextRetriever(deps)
        await actor.start()
        opened.append((actor, deps))
        return Rig(actor, state, recorders)

    yield make
    for actor, deps in opened:
        await actor.stop()
        await release_commerce_client(deps)  # type: ignore[arg-type]


async def retrieve(rig: Rig, email: str):  # type: ignore[no-untyped-def]
    env = envelope_for(email)
    await rig.actor.handle(env)
    assert env.context is not None
    return env.context


async def test_known_customer_gets_profile_orders_and_tracking(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory()
    context = await retrieve(rig, "John.Doe@example.com ")
    assert (context.found, context.customer_id, context.tier, context.name) == (
        True,
        "CUST-1001",
        "premium",
        "John Doe",
    )
    assert [o.order_id for o in context.orders] == ["ORD-10002", "ORD-10001", "ORD-10003"]
    assert {o.customer_id for o in context.orders} == {"CUST-1001"}
    by_id = {o.order_id: o for o in context.orders}
    assert by_id["ORD-10002"].tracking is not None
    assert by_id["ORD-10002"].tracking.status == "out_for_delivery"
    assert by_id["ORD-10001"].tracking is not None
    assert by_id["ORD-10001"].tracking.carrier == "FedEx"
    assert context.errors == []
    assert context.cached is False


async def test_order_without_shipment_has_no_tracking(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory()
    context = await retrieve(rig, "jane.smith@example.com")
    by_id = {o.order_id: o for o in context.orders}
    assert by_id["ORD-20001"].tracking is None
    assert by_id["ORD-20002"].tracking is not None
    assert by_id["ORD-20002"].tracking.detail == "Address correction needed"
    assert rig.recorders[TRACKING_URL].calls == ["GET /tracking/TRK200000001"]


async def test_unknown_customer_says_so(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory()
    context = await retrieve(rig, "nobody@example.com")
    assert (context.found, context.customer_id, context.orders) == (False, None, [])
    assert context.email == "nobody@example.com"


async def test_second_message_is_served_from_the_cache(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory()
    first = await retrieve(rig, "john.doe@example.com")
    calls_after_first = len(rig.calls())
    second = await retrieve(rig, "john.doe@example.com")
    assert second.cached is True
    assert len(rig.calls()) == calls_after_first
    assert second.model_copy(update={"cached": False}) == first


async def test_unknown_customer_is_not_cached(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory()
    await retrieve(rig, "nobody@example.com")
    again = await retrieve(rig, "nobody@example.com")
    assert again.cached is False


def add_old_orders(state: MockState, customer_order: str, count: int) -> list[str]:
    """`count` more orders like `customer_order`, all older than the customer's own, oldest first."""
    template = state.data.orders[customer_order]
    ids = [f"ORD-{90000 + i}" for i in range(count)]
    for i, oid in enumerate(ids):
        at = f"2020-01-01T00:{i // 60:02d}:{i % 60:02d}+00:00"
        state.data.orders[oid] = template.model_copy(update={"order_id": oid, "placed_at": at})
    return ids


async def test_a_long_order_history_is_cut_to_the_newest_and_still_cached(rig_factory) -> None:  # type: ignore[no-untyped-def]
    """Before: the cut was one of `errors`, so the context was never cached and every message of a
    customer with more than MAX_CONTEXT_ORDERS orders went to the orders API."""
    rig = await rig_factory()
    oldest, *_ = add_old_orders(rig.state, "ORD-10003", MAX_CONTEXT_ORDERS + 5)
    context = await retrieve(rig, "john.doe@example.com")
    assert len(context.orders) == MAX_CONTEXT_ORDERS
    assert {"ORD-10001", "ORD-10002", "ORD-10003"} <= {o.order_id for o in context.orders}
    assert oldest not in {o.order_id for o in context.orders}
    assert context.orders_total == MAX_CONTEXT_ORDERS + 8
    assert context.errors == [], "the cut is no failure"
    assert orders_truncated(context)
    calls = len(rig.calls())
    again = await retrieve(rig, "john.doe@example.com")
    assert again.cached is True
    assert len(rig.calls()) == calls
    assert again.model_copy(update={"cached": False}) == context


async def test_an_order_history_that_fits_is_not_marked_as_cut(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory()
    add_old_orders(rig.state, "ORD-10003", MAX_CONTEXT_ORDERS - 3)
    context = await retrieve(rig, "john.doe@example.com")
    assert (len(context.orders), context.orders_total) == (MAX_CONTEXT_ORDERS, None)
    assert not orders_truncated(context)
    assert b"orders_total" not in context.model_dump_json().encode(), "older replicas refuse the field"


def test_a_cut_recorded_by_an_older_context_retriever_still_reads_as_one() -> None:
    """An envelope written before `orders_total` (the cut in `errors`) may be in flight during a
    rollout: it still decodes, and an older order it names is still "not among your most recent"."""
    env = envelope_for("john.doe@example.com")
    env.context = context_for("john.doe@example.com")
    legacy = env.to_bytes().replace(
        b'"errors":[]', b'"errors":["orders: only the newest 100 of 4003 orders are kept"]'
    )
    decoded = Envelope.from_bytes(legacy)
    assert decoded.context is not None
    assert decoded.context.orders_total is None
    assert orders_truncated(decoded.context)
    assert "among your 100 most recent orders" in not_found_sentence("ORD-90000", decoded.context)


def _foreign_orders(request: httpx.Request) -> httpx.Response:
    own = {
        "order_id": "ORD-30001",
        "customer_id": "CUST-1003",
        "status": "pending",
        "placed_at": "2026-01-01T00:00:00+00:00",
        "items": [{"name": "Coffee Maker", "unit_price": 149.0}],
        "total": 149.0,
    }
    foreign = {**own, "order_id": "ORD-20001", "customer_id": "CUST-1002"}
    return httpx.Response(200, json={"orders": [own, foreign]})


async def test_orders_of_another_customer_never_enter_the_context(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(replace={ORDERS_URL: httpx.MockTransport(_foreign_orders)})
    context = await retrieve(rig, "bob.wilson@example.com")
    assert [o.order_id for o in context.orders] == ["ORD-30001"]
    assert "CUST-1002" not in context.model_dump_json()
    assert context.errors == ["orders: dropped 1 order(s) not belonging to the customer"]
    assert (await retrieve(rig, "bob.wilson@example.com")).cached is False  # partial: not cached


async def test_orders_api_down_gives_a_partial_context(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(**{ORDERS_URL: {"fail_first": 99, "status": 503}})
    context = await retrieve(rig, "john.doe@example.com")
    assert context.found is True
    assert context.orders == []
    assert len(context.errors) == 1
    assert context.errors[0].startswith("orders:")
    assert len(rig.recorders[ORDERS_URL].calls) == 3  # bounded retries


async def test_tracking_failure_is_recorded_per_order(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(**{TRACKING_URL: {"fail_first": 99}})
    context = await retrieve(rig, "jane.smith@example.com")
    assert [o.order_id for o in context.orders] == ["ORD-20001", "ORD-20002"]
    assert all(o.tracking is None for o in context.orders)
    assert len(context.errors) == 1
    assert context.errors[0].startswith("tracking TRK200000001:")


async def test_profile_api_down_is_transient(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(**{CUSTOMERS_URL: {"fail_first": 99, "status": 502}})
    env = envelope_for("john.doe@example.com")
    with pytest.raises(UpstreamUnavailable):
        await rig.actor.handle(env)
    assert env.context is None


async def test_connection_errors_are_retried_then_succeed(rig_factory) -> None:  # type: ignore[no-untyped-def]
    rig = await rig_factory(**{CUSTOMERS_URL: {"fail_first": 2}})
    context = await retrieve(rig, "john.doe@example.com")
    assert context.found is True
    assert len(rig.recorders[CUSTOMERS_URL].calls) == 3


async def test_client_never_retries_a_4xx() -> None:
    state = MockState()
    settings = unit_settings()
    recorder = Recorder(mock_transports(state)[ORDERS_URL])
    client = mounted_client(settings, {ORDERS_URL: recorder})
    try:
        with pytest.raises(ApiRejected) as caught:
            await client.mutate_order("ORD-10002", "cancel", customer_id="CUST-1001", reason="", key="k")
        assert caught.value.status_code == 409
        assert len(recorder.calls) == 1
        assert await client.order("ORD-99999") is None
        assert len(recorder.calls) == 2
    finally:
        await client.aclose()

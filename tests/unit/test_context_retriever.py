"""context_retriever and the commerce client on the in-process mock apps (httpx ASGITransport, no sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest

from actormesh_runtime.actors.context_retriever import ContextRetriever
from actormesh_runtime.clients.commerce import ApiRejected, release_commerce_client
from actormesh_runtime.errors import UpstreamUnavailable
from actormesh_runtime.mocks.state import MockState
from tests.support.commerce import (
    CUSTOMERS_URL,
    ORDERS_URL,
    TRACKING_URL,
    Recorder,
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

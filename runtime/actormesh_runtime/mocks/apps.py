"""The three mock FastAPI apps (customers, orders, tracking) over one shared `MockState`.

Built by `build_apps(state)`; served by mocks.server (in-process) or `actormesh mocks`. Mutating
endpoints honour `Idempotency-Key`: a repeated key returns the stored reply (header
`Idempotent-Replayed: true`) without a second effect; the same key with a different request → 422.
`POST /_test/reset` on any app restores the demo data and `GET /_test/state` shows every effect the
APIs applied (records, idempotency replies, order statuses): the soak (`soak/`) reads it to prove each
side effect happened exactly once. Tests only; disable both with `test_endpoints=False`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from actormesh_runtime.mocks.state import MockError, MockState, StoredReply

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


class OrderChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(description="The order must belong to this customer (else 404).")
    reason: str = Field("", max_length=2000)


class RefundIssue(OrderChange):
    amount: float = Field(gt=0, description="At most the order total (else 409).")


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000)
    order_id: str | None = None


@dataclass(frozen=True)
class MockApps:
    customers: FastAPI
    orders: FastAPI
    tracking: FastAPI


def _error_reply(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MockError)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


def _new_app(title: str, state: MockState, test_endpoints: bool) -> FastAPI:
    app = FastAPI(title=title, version="1")
    app.add_exception_handler(MockError, _error_reply)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    if test_endpoints:

        @app.post("/_test/reset", include_in_schema=False)
        async def reset() -> dict[str, str]:
            state.reset()
            return {"status": "reset"}

        @app.get("/_test/state", include_in_schema=False)
        async def effects() -> dict[str, Any]:
            return state.snapshot()

    return app


def _idempotent(
    state: MockState,
    request: Request,
    key: str | None,
    body: BaseModel,
    effect: Callable[[], dict[str, Any]],
) -> JSONResponse:
    """Run `effect` once per key; replay the stored reply (success or refusal) for a repeated key.

    There is no await between the lookup and `remember`, so concurrent requests with one key cannot
    both apply the effect in this single-threaded server.
    """
    fingerprint = state.idempotency.fingerprint(request.method, request.url.path, body.model_dump())
    if key is not None:
        stored = state.idempotency.lookup(key, fingerprint)
        if stored is not None:
            headers = {"Idempotent-Replayed": "true"}
            return JSONResponse(stored.body, status_code=stored.status_code, headers=headers)
    try:
        reply = StoredReply(fingerprint, 201, effect())
    except MockError as exc:
        if exc.status_code == 404:
            raise  # nothing happened and nothing to remember: the order may appear later
        reply = StoredReply(fingerprint, exc.status_code, {"detail": exc.detail})
    if key is not None:
        state.idempotency.remember(key, reply)
    return JSONResponse(reply.body, status_code=reply.status_code)


def _customers_app(state: MockState, test_endpoints: bool) -> FastAPI:
    app = _new_app("ActorMesh mock customers API", state, test_endpoints)

    @app.get("/customers/by-email/{email}")
    async def by_email(email: str) -> dict[str, Any]:
        return state.customer_by_email(email)

    @app.get("/customers/{customer_id}")
    async def customer(customer_id: str) -> dict[str, Any]:
        return state.customer(customer_id)

    @app.post("/customers/{customer_id}/notes", status_code=201)
    async def add_note(customer_id: str, body: NoteBody, request: Request, key: IdempotencyKey = None) -> Any:
        return _idempotent(
            state, request, key, body, lambda: state.add_note(customer_id, body.text, body.order_id)
        )

    return app


def _orders_app(state: MockState, test_endpoints: bool) -> FastAPI:
    app = _new_app("ActorMesh mock orders API", state, test_endpoints)
    mutations: dict[str, Callable[[str, str, str], dict[str, Any]]] = {
        "cancel": state.cancel,
        "cancellation-request": state.cancellation_request,
        "return-label": state.return_label,
        "refund-request": state.refund_request,
    }

    @app.get("/orders")
    async def orders(customer_id: Annotated[str, Query(min_length=1)]) -> dict[str, Any]:
        return {"customer_id": customer_id, "orders": state.orders_of(customer_id)}

    @app.get("/orders/{order_id}")
    async def order(order_id: str) -> dict[str, Any]:
        return state.order(order_id)

    def register(path: str, mutate: Callable[[str, str, str], dict[str, Any]]) -> None:
        async def endpoint(
            order_id: str, body: OrderChange, request: Request, key: IdempotencyKey = None
        ) -> Any:
            return _idempotent(
                state, request, key, body, lambda: mutate(order_id, body.customer_id, body.reason)
            )

        app.post(f"/orders/{{order_id}}/{path}", status_code=201, name=path)(endpoint)

    for path, mutate in mutations.items():
        register(path, mutate)

    @app.post("/orders/{order_id}/refund", status_code=201, name="refund")
    async def refund(order_id: str, body: RefundIssue, request: Request, key: IdempotencyKey = None) -> Any:
        """Issue a refund a person approved (the mesh itself only ever files refund requests)."""
        return _idempotent(
            state,
            request,
            key,
            body,
            lambda: state.refund(order_id, body.customer_id, body.amount, body.reason),
        )

    return app


def _tracking_app(state: MockState, test_endpoints: bool) -> FastAPI:
    app = _new_app("ActorMesh mock tracking API", state, test_endpoints)

    @app.get("/tracking/{tracking_number}")
    async def tracking(tracking_number: str) -> dict[str, Any]:
        return state.tracking(tracking_number)

    return app


def build_apps(state: MockState | None = None, *, test_endpoints: bool = True) -> MockApps:
    """The three apps sharing `state` (a fresh `MockState` when omitted)."""
    shared = state or MockState()
    return MockApps(
        customers=_customers_app(shared, test_endpoints),
        orders=_orders_app(shared, test_endpoints),
        tracking=_tracking_app(shared, test_endpoints),
    )

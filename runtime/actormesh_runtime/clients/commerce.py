"""Async client for the customers, orders and tracking APIs, shared by every actor in a process.

context_retriever and execution_coordinator call `acquire_commerce_client(deps)` in `start()` and
`release_commerce_client(deps)` in `stop()`: one keep-alive connection pool per process however many
actors use it (`clients.http`). Each call has the `api_timeout_s` budget; connection errors, timeouts
and 5xx are retried a bounded number of times with jittered backoff (mutations carry an Idempotency-Key, so a
retried POST is safe), then raise `UpstreamUnavailable`; a 429 is retried the same way, after the
`Retry-After` it names (capped by the backoff's maximum). Any other 4xx is never retried: reads map 404 to
None, mutations raise `ApiRejected` (a `PermanentError`) carrying the API's status and detail.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args
from urllib.parse import quote

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from actormesh_runtime import resources
from actormesh_runtime.clients.http import (
    AiohttpExchange,
    Exchange,
    ExchangeFailed,
    HttpResponse,
    HttpxExchange,
)
from actormesh_runtime.envelope import Order, TrackingInfo
from actormesh_runtime.errors import PermanentError, UpstreamUnavailable
from actormesh_runtime.observability.emails import pseudonymise_emails
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.settings import RuntimeSettings

if TYPE_CHECKING:
    import httpx

Api = Literal["customers", "orders", "tracking"]
_M = TypeVar("_M", bound=BaseModel)
OrderMutation = Literal["cancel", "cancellation-request", "return-label", "refund-request"]

TOO_MANY_REQUESTS = 429
"""Rate limited: nothing was done and the same call later may succeed, so it is retried like a 5xx
(a mutation's Idempotency-Key keeps that safe) and, when retries run out, is `UpstreamUnavailable`."""

UPSTREAM_RETRIES = Counter(
    "actormesh_commerce_retries_total",
    "Commerce API calls retried after a 5xx, 429 or connection error",
    ["api"],
)
UPSTREAM_FAILURES = Counter(
    "actormesh_commerce_unavailable_total", "Commerce API calls that failed after all retries", ["api"]
)


class ApiRejected(PermanentError):
    """The API answered with a 4xx (or a 3xx to a change): retrying cannot help (unknown order, state
    forbids the change, the API moved, ...)."""

    def __init__(self, api: Api, status_code: int, detail: str) -> None:
        # The API may quote what it was asked (an email). The message becomes log lines, dead letters and
        # span errors; `detail` is what the customer's own reply may quote, as the API wrote it.
        super().__init__(f"{api} API refused ({status_code}): {pseudonymise_emails(detail)}")
        self.api = api
        self.status_code = status_code
        self.detail = detail


Tier = Literal["standard", "premium", "vip"]
_TIERS: frozenset[str] = frozenset(get_args(Tier))


def _lower(value: object) -> object:
    """Enum-like values as the policies compare them ("Processing", "SUSPENDED" are still known)."""
    return value.strip().lower() if isinstance(value, str) else value


class CustomerRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    customer_id: str
    email: str
    name: str
    tier: Tier | None
    """None for a tier this code does not know: treated as the least privileged (standard), rather
    than failing every message of that customer."""
    status: str | None = None
    """None when the API gives no status (left out, null, not a string): not known to be active, so
    decision_router treats the account as a suspended one (`policy.decision.account_restricted`),
    rather than failing every message of that customer."""

    @field_validator("tier", mode="before")
    @classmethod
    def _known_tier(cls, value: object) -> object:
        value = _lower(value)
        return value if value in _TIERS else None

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: object) -> str | None:
        return value.strip().lower() if isinstance(value, str) else None


class _OrderRecord(Order):
    """An order as the orders API sends it: the envelope's `Order`, but unknown fields are ignored
    (the API may grow) and tracking is never taken from it (context_retriever attaches it)."""

    model_config = ConfigDict(extra="ignore")

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: object) -> object:
        return _lower(value)

    def to_order(self) -> Order:
        return Order.model_validate(self.model_dump(exclude={"tracking"}))


class _TrackingRecord(TrackingInfo):
    """A shipment as the tracking API sends it (unknown fields ignored)."""

    model_config = ConfigDict(extra="ignore")

    def to_info(self) -> TrackingInfo:
        return TrackingInfo.model_validate(self.model_dump())


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    base_delay_s: float = 0.1
    max_delay_s: float = 1.0

    def delay(self, attempt: int) -> float:
        """Full-jitter exponential backoff after failed attempt `attempt` (1-based)."""
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))


class CommerceClient:
    def __init__(
        self,
        settings: RuntimeSettings,
        *,
        retry: RetryPolicy | None = None,
        mounts: dict[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        """`mounts` lets tests route a base URL to an in-process ASGI app (no sockets)."""
        self._bases: dict[Api, str] = {
            "customers": settings.customer_api_url.rstrip("/"),
            "orders": settings.orders_api_url.rstrip("/"),
            "tracking": settings.tracking_api_url.rstrip("/"),
        }
        self._retry = retry or RetryPolicy()
        self._http: Exchange = (
            HttpxExchange(settings.api_timeout_s, mounts)
            if mounts
            else AiohttpExchange(settings.api_timeout_s)
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------ reads (404 → None)

    async def customer_by_email(self, email: str) -> CustomerRecord | None:
        body = await self._get("customers", f"/customers/by-email/{quote(email, safe='@')}")
        return None if body is None else _parse("customers", CustomerRecord, body)

    async def orders_of(self, customer_id: str) -> list[Order]:
        body = await self._get("orders", "/orders", params={"customer_id": customer_id})
        if body is None:
            # The list always exists (a customer without orders gets an empty one): a 404 means the
            # API is not where we ask (a moved path, a wrong URL), not that there are no orders.
            raise PermanentError("orders API answered 404 for the order list")
        rows = body.get("orders", [])
        if not isinstance(rows, list):
            raise PermanentError("orders API returned an unexpected body")
        return [_parse("orders", _OrderRecord, row).to_order() for row in rows]

    async def order(self, order_id: str) -> Order | None:
        body = await self._get("orders", f"/orders/{quote(order_id, safe='')}")
        return None if body is None else _parse("orders", _OrderRecord, body).to_order()

    async def tracking(self, tracking_number: str) -> TrackingInfo | None:
        body = await self._get("tracking", f"/tracking/{quote(tracking_number, safe='')}")
        return None if body is None else _parse("tracking", _TrackingRecord, body).to_info()

    # ------------------------------------------------------------ mutations (idempotent)

    async def mutate_order(
        self, order_id: str, mutation: OrderMutation, *, customer_id: str, reason: str, key: str
    ) -> dict[str, Any]:
        path = f"/orders/{quote(order_id, safe='')}/{mutation}"
        return await self._post("orders", path, {"customer_id": customer_id, "reason": reason}, key)

    async def issue_refund(
        self, order_id: str, *, customer_id: str, amount: float, reason: str, key: str
    ) -> dict[str, Any]:
        """A refund a person approved (`Idempotency-Key`: it is issued once)."""
        path = f"/orders/{quote(order_id, safe='')}/refund"
        payload = {"customer_id": customer_id, "amount": amount, "reason": reason}
        return await self._post("orders", path, payload, key)

    async def add_note(
        self, customer_id: str, text: str, *, order_id: str | None, key: str
    ) -> dict[str, Any]:
        path = f"/customers/{quote(customer_id, safe='')}/notes"
        return await self._post("customers", path, {"text": text, "order_id": order_id}, key)

    # ------------------------------------------------------------ transport

    async def _get(self, api: Api, path: str, params: dict[str, str] | None = None) -> dict[str, Any] | None:
        response = await self._send(api, "GET", path, params=params)
        if response.status == 404:
            return None
        return _body_or_reject(api, response)

    async def _post(self, api: Api, path: str, payload: dict[str, Any], key: str) -> dict[str, Any]:
        # A redirect is never followed: aiohttp would repeat a POST answered 301/302/303 as a GET of the
        # new location, whose 200 (the order itself) read as "done" though nothing was changed.
        response = await self._send(
            api, "POST", path, json=payload, headers={"Idempotency-Key": key}, allow_redirects=False
        )
        return _body_or_reject(api, response)

    async def _send(self, api: Api, method: str, path: str, **kwargs: Any) -> HttpResponse:
        url = self._bases[api] + path
        last_error = ""
        for attempt in range(1, self._retry.attempts + 1):
            wait = 0.0
            try:
                response = await self._http.request(method, url, **kwargs)
            except ExchangeFailed as exc:
                last_error = str(exc)
            else:
                if response.status < 500 and response.status != TOO_MANY_REQUESTS:
                    return response
                last_error = f"HTTP {response.status}"
                # A server that says how long to wait is waited for, within the backoff's cap: a
                # longer wait belongs to the bus's redelivery, not to this call's budget.
                wait = min(response.retry_after_s or 0.0, self._retry.max_delay_s)
            if attempt < self._retry.attempts:
                UPSTREAM_RETRIES.labels(api).inc()
                await asyncio.sleep(max(wait, self._retry.delay(attempt)))
        UPSTREAM_FAILURES.labels(api).inc()
        # The path of a profile lookup is the customer's email, and a transport error may quote the URL;
        # this text becomes retry and dead-letter reasons, log lines and span errors.
        raise UpstreamUnavailable(
            pseudonymise_emails(
                f"{api} API {method} {path}: {last_error} after {self._retry.attempts} attempts"
            )
        )


def _body_or_reject(api: Api, response: HttpResponse) -> dict[str, Any]:
    try:
        body = json.loads(response.body)
    except ValueError:
        body = None
    if response.status >= 300:  # a 3xx too: what was asked was not done here
        detail = body.get("detail") if isinstance(body, dict) else None
        raise ApiRejected(api, response.status, str(detail or response.reason))
    if not isinstance(body, dict):
        raise PermanentError(f"{api} API returned a non-object body ({response.status})")
    return body


def _parse(api: Api, model: type[_M], body: Any) -> _M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise PermanentError(f"{api} API returned an unexpected body: {exc.error_count()} error(s)") from exc


# ---------------------------------------------------------------- one client per process


_SHARED_KEY = "commerce_client"


def acquire_commerce_client(
    deps: ActorDeps, factory: Callable[[], CommerceClient] | None = None
) -> CommerceClient:
    """The process-wide client kept in `deps.extras`, created on first use; pair with release.

    `factory` (tests) builds the client if none exists yet, e.g. one mounted on in-process apps.
    """
    build = factory or (lambda: CommerceClient(deps.settings))
    return resources.acquire(deps, _SHARED_KEY, build, CommerceClient.aclose)


async def release_commerce_client(deps: ActorDeps) -> None:
    """Drop one user; the last one closes the connection pool."""
    await resources.release(deps, _SHARED_KEY)

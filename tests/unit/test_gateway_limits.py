"""Gateway limits without sockets: token-bucket arithmetic, which routes are limited (every route the
app serves, classified), who the principal is, and the 429/503/408 answers (status, Retry-After, a
body naming the limit, a metric per refusal) through the ASGI app."""

from __future__ import annotations

import argparse
import asyncio
import re
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from starlette.types import Message, Receive, Scope, Send

from actormesh_runtime.commands import dev
from actormesh_runtime.gateway.admission import (
    REJECTED,
    Admission,
    BodyReadTimeout,
    is_limited,
    principal_key,
    subject_with_verifier,
)
from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.gateway.auth import (
    AGENT_ROLE,
    WS_BEARER_PREFIX,
    WS_PROTOCOL,
    TokenVerifier,
    mint_token,
)
from actormesh_runtime.gateway.ratelimit import LocalBuckets, RateLimiter
from actormesh_runtime.gateway.slowclients import slow_client_protocol
from actormesh_runtime.settings import RuntimeSettings

SECRET = "s" * 40
JOHN = "john.doe@example.com"
ALICE = "alice@shop.example"
"""A support agent who also shops with her work address: one subject, an agent's and a customer's token."""

LIMITED_ROUTES = {
    "/api/chat",
    "/api/messages/{message_id}",
    "/api/conversations/{session_id}",
    "/ws",
    "/api/escalations",
    "/api/escalations/{ref}",
    "/api/escalations/{ref}/claim",
    "/api/escalations/{ref}/reply",
    "/api/escalations/{ref}/resolve",
    "/api/approvals",
    "/api/approvals/{approval_id}",
    "/api/approvals/{approval_id}/conversation",
    "/api/approvals/{approval_id}/approve",
    "/api/approvals/{approval_id}/deny",
    "/ws/agent",
}
"""The API, customers' and agents': each reaches the bus or the history service."""
NEVER_LIMITED_ROUTES = {
    "/api/health": "liveness probe: a throttled client must not make a replica look dead",
    "/api/ready": "readiness probe: the same",
    "/metrics": "Prometheus scrapes it from one address",
    "/openapi.json": "the contract, static once built",
    "/docs": "docs page",
    "/redoc": "docs page",
    "/docs/assets": "the docs pages' static files",
    "/widget": "the customer's page, static",
    "/": "a redirect to /widget",
    "/console": "the agent's page: it must load to show why the API refused",
    "/console/{name}": "the console's static files",
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_a_minutes_burst_then_exactly_the_rate() -> None:
    clock = Clock()
    buckets = LocalBuckets(capacity=60, per_s=1.0, clock=clock)

    assert [buckets.take("a") for _ in range(60)] == [0.0] * 60
    assert buckets.take("a") == pytest.approx(1.0)  # empty: one token a second
    assert buckets.take("b") == 0.0, "another principal has its own bucket"
    clock.now += 0.5
    assert buckets.take("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    clock.now += 3600
    assert [buckets.take("a") for _ in range(61)].count(0.0) == 60, "refill stops at the capacity"


async def test_a_limiter_set_to_zero_is_off() -> None:
    limiter = RateLimiter(0)
    verdicts = [await limiter.check("addr:1.2.3.4") for _ in range(1000)]
    assert all(v.allowed and v.backend == "off" for v in verdicts)


async def test_without_redis_the_limit_is_per_replica() -> None:
    limiter = RateLimiter(2, clock=Clock())
    verdicts = [await limiter.check("sub:x") for _ in range(3)]
    assert [v.allowed for v in verdicts] == [True, True, False]
    assert verdicts[2].backend == "local"
    assert verdicts[2].retry_after_header == "30"  # 2/min: the next token in 30 s


def _served_paths() -> set[str]:
    """Every path the gateway app routes (HTTP, WebSocket, mounts; included routers opened up, as
    FastAPI's own OpenAPI builder walks them)."""
    app = create_app(RuntimeSettings(nats_url="nats://127.0.0.1:1", gateway_anonymous=True))
    paths = {route.path for route in iter_route_contexts(app.routes)}
    assert None not in paths
    return {str(path) for path in paths}


def test_every_route_the_app_serves_is_classified_as_limited_or_never_limited() -> None:
    served = _served_paths()

    unclassified = served - LIMITED_ROUTES - NEVER_LIMITED_ROUTES.keys()
    assert not unclassified, f"a new route: add it to LIMITED_ROUTES or NEVER_LIMITED_ROUTES: {unclassified}"
    assert served >= LIMITED_ROUTES | NEVER_LIMITED_ROUTES.keys(), "a classified route the app no longer has"
    assert [p for p in served if is_limited(p) != (p in LIMITED_ROUTES)] == []


def _concrete(template: str) -> str:
    """A path as a client sends it: each `{parameter}` filled in."""
    return re.sub(r"\{[^}]+\}", "ESC-0000abcd", template)


@pytest.mark.parametrize("route", sorted(LIMITED_ROUTES))
def test_an_api_route_is_limited(route: str) -> None:
    assert is_limited(route)
    assert is_limited(_concrete(route))


@pytest.mark.parametrize("route", sorted(NEVER_LIMITED_ROUTES))
def test_probes_metrics_docs_and_pages_are_never_limited(route: str) -> None:
    assert not is_limited(route), NEVER_LIMITED_ROUTES[route]
    assert not is_limited(_concrete(route)), NEVER_LIMITED_ROUTES[route]


@pytest.mark.parametrize(
    "path",
    ["/api/healthz", "/ws-anything", "/wsagent", "/api/chatty", "/api/approvals-archive",
     "/api/escalationsX", "/api", "/docs/assets/swagger-ui.css", "/console/console.js", "/console/api/chat"],
)  # fmt: skip
def test_a_path_that_only_shares_a_limited_routes_first_letters_is_not_limited(path: str) -> None:
    assert not is_limited(path)


def _scope(
    kind: str = "http",
    headers: dict[str, str] | None = None,
    query: str = "",
    subprotocols: list[str] | None = None,
) -> Scope:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope: Scope = {
        "type": kind,
        "headers": raw,
        "client": ("198.18.0.7", 5555),
        "query_string": query.encode(),
    }
    if subprotocols is not None:
        scope["subprotocols"] = subprotocols
    return scope


def _bearer(token: str) -> Scope:
    return _scope(headers={"Authorization": f"Bearer {token}"})


AGENT_TOKEN = mint_token(SECRET, ALICE, role=AGENT_ROLE)


@pytest.mark.parametrize(
    ("scope", "secret", "expected"),
    [
        pytest.param(_scope(), SECRET, "addr:198.18.0.7", id="no-token"),
        pytest.param(_bearer(mint_token(SECRET, JOHN)), SECRET, f"sub:{JOHN}", id="verified-subject"),
        pytest.param(_bearer(mint_token("x" * 40, JOHN)), SECRET, "addr:198.18.0.7",
                     id="forged-token-counts-as-none"),
        pytest.param(_bearer(mint_token(SECRET, JOHN)), None, "addr:198.18.0.7", id="auth-off"),
        pytest.param(_scope("websocket", query=f"session_id=a&token={mint_token(SECRET, JOHN)}"), SECRET,
                     f"sub:{JOHN}", id="websocket-query-token"),
        pytest.param(_scope("websocket", subprotocols=[WS_PROTOCOL, WS_BEARER_PREFIX + mint_token(SECRET, JOHN)]),  # noqa: E501
                     SECRET, f"sub:{JOHN}", id="websocket-subprotocol-token"),
        pytest.param(_bearer(AGENT_TOKEN), SECRET, f"agent:{ALICE}", id="agent-token"),
        pytest.param(_bearer(mint_token(SECRET, ALICE)), SECRET, f"sub:{ALICE}",
                     id="same-subject-customer-token-is-another-principal"),
        pytest.param(_bearer(mint_token(SECRET, ALICE, role="admin")), SECRET, f"sub:{ALICE}",
                     id="any-other-role-counts-as-a-customer"),
        pytest.param(_scope("websocket", subprotocols=[WS_PROTOCOL, WS_BEARER_PREFIX + AGENT_TOKEN]), SECRET,
                     f"agent:{ALICE}", id="agent-socket-subprotocol-token"),
        pytest.param(_bearer(mint_token("x" * 40, ALICE, role=AGENT_ROLE)), SECRET, "addr:198.18.0.7",
                     id="forged-agent-token-counts-as-none"),
    ],
)  # fmt: skip
def test_the_principal_is_the_verified_subject_else_the_address(
    scope: Scope, secret: str | None, expected: str
) -> None:
    verifier = TokenVerifier([secret]) if secret else None
    assert principal_key(scope, subject_with_verifier(verifier)) == expected


def _client(**settings: Any) -> httpx.AsyncClient:
    app = create_app(RuntimeSettings(nats_url="nats://127.0.0.1:1", gateway_anonymous=True, **settings))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("198.18.0.9", 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


def _rejected(limit: str) -> float:
    return REJECTED.labels(limit)._value.get()


async def test_over_the_rate_a_client_gets_429_naming_the_limit_and_probes_stay_open() -> None:
    before = _rejected("RATE_LIMIT_REQUESTS")
    async with _client(rate_limit_requests=3) as client:
        statuses = [(await client.get("/api/messages/msg-1")).status_code for _ in range(3)]
        refused = await client.get("/api/conversations/s-1")
        probes = [(await client.get("/api/health")).status_code for _ in range(10)]

    assert 429 not in statuses
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "20"
    body = refused.json()
    assert body["limit"] == "RATE_LIMIT_REQUESTS"
    assert body["error"] == "rate_limited"
    assert "3 requests per minute" in body["detail"]
    assert body["request_id"] == refused.headers["x-request-id"]
    assert probes == [200] * 10
    assert _rejected("RATE_LIMIT_REQUESTS") == before + 1


async def test_a_flood_without_a_token_on_the_agent_api_gets_401s_then_429_by_its_address() -> None:
    """Refused before the token is checked or the history service asked; a verified agent on the same
    address keeps her own bucket, and the console page stays open."""
    before = _rejected("RATE_LIMIT_REQUESTS")
    agent = {"Authorization": f"Bearer {AGENT_TOKEN}"}
    async with _client(rate_limit_requests=3, jwt_secret=SECRET) as client:
        unauthenticated = [(await client.get("/api/approvals")).status_code for _ in range(3)]
        refused = await client.post("/api/escalations/ESC-0000abcd/claim", json={})
        socket = await client.get("/ws/agent")  # a handshake's path, as plain HTTP: limited all the same
        verified = await client.get("/api/escalations", headers=agent)
        console = await client.get("/console")

    assert unauthenticated == [401] * 3
    assert refused.status_code == 429
    assert refused.json()["limit"] == "RATE_LIMIT_REQUESTS"
    assert refused.headers["retry-after"] == "20"
    assert socket.status_code == 429
    assert verified.status_code != 429, "a verified agent spends her own bucket, not her address's"
    assert console.status_code == 200
    assert _rejected("RATE_LIMIT_REQUESTS") == before + 2


def test_the_openapi_document_lists_429_and_503_on_exactly_the_limited_operations() -> None:
    app = create_app(RuntimeSettings(nats_url="nats://127.0.0.1:1", jwt_secret=SECRET))
    for path, operations in app.openapi()["paths"].items():
        for method, op in operations.items():
            limited = {code: op["responses"].get(code, {}) for code in ("429", "503")}
            if not is_limited(path):
                assert "429" not in op["responses"], (method, path)
                continue
            assert all("Retry-After" in r.get("headers", {}) for r in limited.values()), (method, path)
            assert "MAX_CONCURRENT_REQUESTS" in limited["503"]["description"], (method, path)
    approve = app.openapi()["paths"]["/api/approvals/{approval_id}/approve"]["post"]["responses"]
    assert approve["429"]["headers"]["Retry-After"]
    assert "MAX_CONCURRENT_REQUESTS" in approve["503"]["description"]
    assert "the history service did not answer" in approve["503"]["description"], "kept, not replaced"


class HeldApp:
    """An ASGI app whose requests all wait for `release`, then answer 200; `all_in` is set once
    `until` requests are inside it."""

    def __init__(self, until: int = 1) -> None:
        self.release = asyncio.Event()
        self.all_in = asyncio.Event()
        self.entered = 0
        self._until = until

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.entered += 1
        if self.entered == self._until:
            self.all_in.set()
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize(
    "path", ["/api/chat", "/api/approvals/APR-0000abcd/approve", "/api/escalations/ESC-0000abcd/reply"]
)
async def test_over_the_concurrency_limit_a_request_gets_503_naming_it(path: str) -> None:
    held = HeldApp()
    admission = Admission(held, limiter=RateLimiter(0), max_concurrent=1, subject_of=None)
    transport = httpx.ASGITransport(app=admission)
    before = _rejected("MAX_CONCURRENT_REQUESTS")
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        first = asyncio.create_task(client.post(path, json={}))
        await held.all_in.wait()
        # Bounded: an admitted second request would wait in HeldApp for good (a hang, not a failure).
        refused = await asyncio.wait_for(client.post(path, json={}), 30)
        unlimited = asyncio.create_task(client.get("/api/ready"))  # not a limited route
        await asyncio.sleep(0)
        held.release.set()
        assert (await first).status_code == 200
        assert (await unlimited).status_code == 200

    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["limit"] == "MAX_CONCURRENT_REQUESTS"
    assert admission.in_flight == 0
    assert _rejected("MAX_CONCURRENT_REQUESTS") == before + 1


async def test_a_body_that_trickles_past_the_deadline_gets_408() -> None:
    called = False

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal called
        called = True

    sent: list[Message] = []
    chunks = [{"type": "http.request", "body": b'{"mess', "more_body": True}]

    async def receive() -> Message:
        if chunks:
            return chunks.pop()
        await asyncio.sleep(3600)  # the rest never comes
        raise AssertionError

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/chat", "headers": []}
    await BodyReadTimeout(app, timeout_s=0.05, max_bytes=1000)(scope, receive, send)

    assert not called, "the app never saw a partial body"
    assert sent[0]["status"] == 408
    assert b"BODY_READ_TIMEOUT_S" in sent[1]["body"]


async def test_a_whole_body_is_handed_on_unchanged() -> None:
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(await receive())

    parts = [{"type": "http.request", "body": b"}", "more_body": False},
             {"type": "http.request", "body": b'{"a": 1', "more_body": True}]  # fmt: skip

    async def receive() -> Message:
        return parts.pop()

    async def send(message: Message) -> None:
        raise AssertionError(message)

    scope = {"type": "http", "method": "POST", "path": "/api/chat", "headers": []}
    await BodyReadTimeout(app, timeout_s=5, max_bytes=1000)(scope, receive, send)
    assert seen == [{"type": "http.request", "body": b'{"a": 1}', "more_body": False}]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({}, (6000, 1000), id="generous-by-default"),
        pytest.param({"RATE_LIMIT_REQUESTS": "30", "MAX_CONCURRENT_REQUESTS": "0"}, (30, 0), id="set-wins"),
    ],
)
def test_actormesh_dev_is_generous_unless_the_limits_are_set(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: tuple[int, int]
) -> None:
    for name in ("RATE_LIMIT_REQUESTS", "MAX_CONCURRENT_REQUESTS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    parser = argparse.ArgumentParser()
    dev.add_arguments(parser)

    settings = dev._settings(parser.parse_args([]))

    assert (settings.rate_limit_requests, settings.max_concurrent_requests) == expected
    default = RuntimeSettings.model_fields["rate_limit_requests"].default
    assert RuntimeSettings().rate_limit_requests == int(env.get("RATE_LIMIT_REQUESTS", default)), (
        "dev's own limits never reach the environment other processes read"
    )


async def test_max_concurrent_requests_zero_is_off() -> None:
    held = HeldApp(until=50)
    admission = Admission(held, limiter=RateLimiter(0), max_concurrent=0, subject_of=None)
    transport = httpx.ASGITransport(app=admission)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        calls = [asyncio.create_task(client.post("/api/chat", json={})) for _ in range(50)]
        await asyncio.wait_for(held.all_in.wait(), 30)
        assert admission.in_flight == 50
        held.release.set()
        assert {(await call).status_code for call in calls} == {200}


async def test_header_and_body_read_timeouts_zero_are_off() -> None:
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(await receive())

    async def receive() -> Message:
        return {"type": "http.request", "body": b'{"mess', "more_body": True}  # and nothing after it

    async def send(message: Message) -> None:
        raise AssertionError(message)

    scope = {"type": "http", "method": "POST", "path": "/api/chat", "headers": []}
    await BodyReadTimeout(app, timeout_s=0, max_bytes=1000)(scope, receive, send)

    assert seen == [{"type": "http.request", "body": b'{"mess', "more_body": True}], (
        "no deadline, no buffering"
    )
    assert slow_client_protocol(0, 0) == "auto", "uvicorn's own protocol: no header deadline, no bound"
    assert isinstance(slow_client_protocol(10, 0), type)
    assert isinstance(slow_client_protocol(0, 65536), type), "the header bound holds without a deadline"

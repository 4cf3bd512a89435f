"""The gateway's error contract in-process (ASGI, no sockets, no NATS): every error names its field,
an unexpected failure still answers in the usual shape, and a WebSocket chat never ends in silence.

The app's lifespan is not run, so the gateway never connects; the failure cases inject a fault into
the one `Gateway` method they are about.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from fastapi.testclient import TestClient

from actormesh_runtime.envelope import Envelope, Screening
from actormesh_runtime.gateway import app as app_module
from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.gateway.models import ChatRequest
from actormesh_runtime.gateway.service import Gateway, Submitted
from actormesh_runtime.settings import RuntimeSettings

JOHN = "john.doe@example.com"


def _app() -> FastAPI:
    return create_app(
        RuntimeSettings(nats_url="nats://127.0.0.1:1", max_message_chars=40, gateway_anonymous=True)
    )


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http


@pytest.mark.parametrize(
    ("request_kwargs", "status", "field", "needle"),
    [
        pytest.param(
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            422, "body", "malformed JSON", id="malformed-json",
        ),
        pytest.param({"json": [1, 2]}, 422, "body", "object", id="not-an-object"),
        pytest.param({"json": {"message": "hi", "customer_email": JOHN, "colour": "red"}},
                     422, "colour", "not permitted", id="unknown-field"),
        pytest.param({"json": {"message": 5, "customer_email": JOHN}}, 422, "message", "string", id="number"),
        pytest.param({"json": {"message": "hi"}}, 422, "customer_email", "required", id="missing-email"),
        pytest.param({"json": {"message": "x" * 41, "customer_email": JOHN}},
                     413, "message", "limit is 40", id="too-long"),
    ],
)  # fmt: skip
async def test_every_rejected_body_names_its_field(
    client: httpx.AsyncClient, request_kwargs: dict[str, Any], status: int, field: str, needle: str
) -> None:
    response = await client.post("/api/chat", **request_kwargs)

    assert response.status_code == status, response.text
    body = response.json()
    assert [f["field"] for f in body["fields"]] == [field]
    assert body["detail"].startswith(f"{field}: ")
    assert needle in body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]


async def test_an_unexpected_failure_answers_500_in_the_error_shape(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("session store exploded")

    monkeypatch.setattr(Gateway, "claim_session", broken)
    response = await client.post(
        "/api/chat", json={"message": "hi", "customer_email": JOHN}, headers={"X-Request-ID": "req-500"}
    )

    assert response.status_code == 500
    assert response.json() == {
        "error": "internal_error",
        "detail": "the gateway failed to handle this request",
        "fields": [],
        "request_id": "req-500",
    }
    assert "exploded" not in response.text


async def test_the_widget_page_is_read_once_not_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app()

    def no_file_io_on_the_loop() -> str:
        raise AssertionError("widget.html read while serving a request")

    monkeypatch.setattr(app_module, "widget_html", no_file_io_on_the_loop)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        page = await http.get("/widget")

    assert page.status_code == 200
    assert "<title>ActorMesh support chat</title>" in page.text


# ---------------------------------------------------------------- WebSocket: never silence


@pytest.fixture
def ws_client() -> TestClient:
    # Not entered as a context manager: the lifespan (and so the NATS connection) never starts.
    return TestClient(_app())


def _chat(ws: Any) -> dict[str, Any]:
    assert ws.receive_json()["type"] == "connected"
    ws.send_json({"type": "chat", "data": {"message": "Where is ORD-10002?", "customer_email": JOHN}})
    frame: dict[str, Any] = ws.receive_json()
    return frame


@pytest.mark.parametrize("step", ["claim_session", "submit"])
def test_ws_chat_failing_before_submit_ends_with_an_error(
    ws_client: TestClient, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    async def broken(*args: object, **kwargs: object) -> Submitted:
        raise RuntimeError(f"bug in {step}")

    monkeypatch.setattr(Gateway, step, broken)
    with ws_client.websocket_connect("/ws") as ws:
        frame = _chat(ws)
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong", "the socket stays usable"

    assert frame["type"] == "error"
    assert frame["data"]["status"] == 500


def test_ws_chat_failing_while_waiting_ends_with_an_error_naming_the_message(
    ws_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def accepted(self: Gateway, request: ChatRequest, session_id: str, **_: object) -> Submitted:
        envelope = Envelope.start(
            session_id=session_id,
            customer_email=request.customer_email,
            message=request.message,
            screening=Screening(),
            budget_s=30,
        )
        return Submitted(
            envelope.message_id, session_id, self.replies.expect(envelope.message_id, request.customer_email)
        )

    async def broken_wait(self: Gateway, submitted: Submitted) -> None:
        raise RuntimeError("reply router bug")

    monkeypatch.setattr(Gateway, "submit", accepted)
    monkeypatch.setattr(Gateway, "wait", broken_wait)
    with ws_client.websocket_connect("/ws") as ws:
        first = _chat(ws)
        second = ws.receive_json()

    assert first["type"] == "accepted"
    assert second["type"] == "error"
    assert second["data"]["status"] == 500
    assert second["data"]["message_id"] == first["data"]["message_id"]


# ---------------------------------------------------------------- oversized bodies


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_oversized_body_is_refused_before_it_is_parsed(
    client: httpx.AsyncClient, chunked: bool
) -> None:
    huge = b'{"message": "' + b"x" * 200_000 + b'", "customer_email": "' + JOHN.encode() + b'"}'
    content = _chunks(huge[:1000], huge[1000:]) if chunked else huge
    response = await client.post(
        "/api/chat", content=content, headers={"content-type": "application/json", "X-Request-ID": "req-big"}
    )

    assert response.status_code == 413
    body = response.json()
    assert body["error"] == "too_large"
    assert [f["field"] for f in body["fields"]] == ["body"]
    assert body["request_id"] == "req-big"


async def test_a_chunked_body_within_the_limit_reaches_the_route_intact(client: httpx.AsyncClient) -> None:
    payload = b'{"message": "hello there", "customer_email": "not-an-email"}'
    response = await client.post(
        "/api/chat", content=_chunks(payload[:7], payload[7:]), headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == ["customer_email"]

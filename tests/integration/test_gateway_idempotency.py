"""`Idempotency-Key` on `POST /api/chat` and on a WebSocket `chat` frame, against a real mesh on a real
nats-server (and a real redis-server where replicas share the key's record).

The gap it closes: a client retrying a chat (dropped connection, 504, a proxy's retry) started a
second turn — the chain ran twice and a standard-tier refund filed a second review request.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from actormesh_runtime.gateway import service
from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.gateway.auth import WS_PROTOCOL
from actormesh_runtime.gateway.idempotency import idempotent_message_id
from actormesh_runtime.gateway.server import GatewayServer
from tests.support.eventually import eventually_async
from tests.support.gateway import (
    JANE,
    JOHN,
    counting,
    frame_of,
    gateway_stack,
    poll_json,
    stack_settings,
    wait_ready,
)
from tests.support.redis import RedisServer

pytestmark = pytest.mark.integration

ORDER_QUESTION = "Where is my order ORD-10002?"


def chat_body(message: str = ORDER_QUESTION, email: str = JOHN, **extra: Any) -> dict[str, Any]:
    return {"message": message, "customer_email": email, **extra}


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


async def test_the_same_key_twice_is_one_turn_and_the_retry_is_marked_replayed(
    nats_server: str, tmp_path: Path
) -> None:
    runs: Counter[str] = Counter()
    settings = stack_settings(nats_server, tmp_path)
    body = chat_body(session_id="idem-seq")
    async with (
        gateway_stack(settings, factory=counting(runs)) as stack,
        httpx.AsyncClient(base_url=stack.url, timeout=60) as api,
    ):
        first = await api.post("/api/chat", json=body, headers=keyed("order-q-1"))
        again = await api.post("/api/chat", json=body, headers=keyed("order-q-1"))
        transcript = await poll_json(api, "/api/conversations/idem-seq")

    assert first.status_code == 200, first.text
    assert again.status_code == 200, again.text
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json()["message_id"] == idempotent_message_id(JOHN, "order-q-1")
    assert again.json()["message_id"] == first.json()["message_id"]
    assert again.json()["response"] == first.json()["response"]
    asked = [t for t in transcript["turns"] if t["role"] == "customer"]
    assert [t["message_id"] for t in asked] == [first.json()["message_id"]], "one customer turn"
    assert sum(runs.values()) == 1, runs


async def test_a_refund_retried_with_its_key_files_one_review_request(
    nats_server: str, tmp_path: Path
) -> None:
    settings = stack_settings(nats_server, tmp_path)
    body = chat_body("I was charged twice for ORD-10001, I want a refund")
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=60) as api:
        for key in ("refund-a", "refund-a", "refund-b"):  # a retry, then a second request of its own
            response = await api.post("/api/chat", json=body, headers=keyed(key))
            assert response.status_code == 200, response.text
            assert [a["status"] for a in response.json()["actions"]] == ["pending_review"]

        async def requests_filed() -> list[dict[str, Any]] | None:
            page = (await api.get("/api/approvals", params={"state": "pending"})).json()
            mine = [a for a in page["items"] if a["order"]["order_id"] == "ORD-10001"]
            return mine if len(mine) >= 2 else None

        # Events are stored in order: once key b's request is filed, a second one of key a's would be.
        filed = await eventually_async(requests_filed, what="key b's review request", timeout_s=30)
    assert len(filed) == 2, [a["id"] for a in filed]


async def test_two_requests_with_one_key_at_once_get_one_answer(nats_server: str, tmp_path: Path) -> None:
    runs: Counter[str] = Counter()
    settings = stack_settings(nats_server, tmp_path)
    async with (
        gateway_stack(settings, factory=counting(runs, delay_s=1.0)) as stack,
        httpx.AsyncClient(base_url=stack.url, timeout=60) as api,
    ):
        both = await asyncio.gather(
            api.post("/api/chat", json=chat_body(), headers=keyed("at-once")),
            api.post("/api/chat", json=chat_body(), headers=keyed("at-once")),
        )

    assert [r.status_code for r in both] == [200, 200], [r.text for r in both]
    assert both[0].json() == both[1].json()
    assert both[0].json()["message_id"] == idempotent_message_id(JOHN, "at-once")
    assert sum(runs.values()) == 1, runs


async def test_a_retry_on_another_replica_is_answered_by_the_one_run(
    nats_server: str, redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "HISTORY_CHECK_S", 1.0)  # how the other replica learns the answer
    runs: Counter[str] = Counter()
    settings = stack_settings(nats_server, tmp_path, redis_url=redis_server.url)
    message_id = idempotent_message_id(JOHN, "two-replicas")
    async with (
        gateway_stack(settings, replicas=2, factory=counting(runs, delay_s=3.0)) as stack,
        httpx.AsyncClient(timeout=60) as api,
    ):
        a, b = stack.urls
        first = asyncio.ensure_future(
            api.post(f"{a}/api/chat", json=chat_body(), headers=keyed("two-replicas"))
        )
        await eventually_async(lambda: runs[message_id] > 0, what="the first attempt in flight", timeout_s=30)
        in_flight = await api.post(f"{b}/api/chat", json=chat_body(), headers=keyed("two-replicas"))
        answered = await first
        after = await api.post(f"{b}/api/chat", json=chat_body(), headers=keyed("two-replicas"))

    for response in (answered, in_flight, after):
        assert response.status_code == 200, response.text
        assert response.json()["message_id"] == message_id
        assert response.json()["response"] == answered.json()["response"]
    assert in_flight.headers["Idempotent-Replayed"] == "true"
    assert after.headers["Idempotent-Replayed"] == "true"
    assert runs == {message_id: 1}


async def test_a_reused_or_malformed_key_is_refused_and_keys_are_per_customer(
    nats_server: str, tmp_path: Path
) -> None:
    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=60) as api:
        first = await api.post("/api/chat", json=chat_body(), headers=keyed("shared-key"))
        other_message = await api.post(
            "/api/chat", json=chat_body("Where is my order ORD-10003?"), headers=keyed("shared-key")
        )
        other_customer = await api.post("/api/chat", json=chat_body(email=JANE), headers=keyed("shared-key"))
        malformed = [
            await api.post("/api/chat", json=chat_body(), headers=keyed(bad))
            for bad in ("no spaces", "k" * 129)
        ]

    assert first.status_code == 200, first.text
    assert other_message.status_code == 422, other_message.text
    assert other_message.json()["fields"][0]["field"] == "Idempotency-Key"
    assert "different request" in other_message.json()["detail"]
    assert other_customer.status_code == 200, other_customer.text
    assert other_customer.json()["message_id"] == idempotent_message_id(JANE, "shared-key")
    assert other_customer.json()["message_id"] != first.json()["message_id"]
    assert "Idempotent-Replayed" not in other_customer.headers
    for response in malformed:
        assert response.status_code == 422, response.text
        assert [f["field"] for f in response.json()["fields"]] == ["Idempotency-Key"]


async def test_a_keyed_chat_is_answered_with_redis_down(
    nats_server: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = stack_settings(nats_server, tmp_path, redis_url=redis_server.url)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=60) as api:
        redis_server.kill()
        first = await api.post("/api/chat", json=chat_body(), headers=keyed("no-redis"))
        again = await api.post("/api/chat", json=chat_body(), headers=keyed("no-redis"))
    assert first.status_code == 200, first.text
    assert "TRK100000002" in first.json()["response"]
    assert again.status_code == 200, again.text
    assert again.json()["message_id"] == first.json()["message_id"]


async def _ws_chat(url: str, frame: dict[str, Any]) -> list[dict[str, Any]]:
    """Send one chat frame on a new socket; the frames up to its `response` or `error`."""
    async with connect(url, subprotocols=[WS_PROTOCOL]) as ws:  # type: ignore[list-item]
        await frame_of(ws, "connected")
        await ws.send(json.dumps(frame))
        return await _until_answered(ws)


async def _until_answered(ws: ClientConnection) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["type"] not in ("response", "error"):
        frames.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=60)))
    return frames


async def test_a_websocket_chat_frame_takes_a_key(nats_server: str, tmp_path: Path) -> None:
    runs: Counter[str] = Counter()
    settings = stack_settings(nats_server, tmp_path)
    frame = {"type": "chat", "idempotency_key": "ws-key-1", "data": chat_body()}
    message_id = idempotent_message_id(JOHN, "ws-key-1")
    async with gateway_stack(settings, factory=counting(runs)) as stack:
        url = stack.url.replace("http://", "ws://") + "/ws"
        first = await _ws_chat(url, frame)
        again = await _ws_chat(url, frame)  # a new socket: the client reconnected and resent
        bad = await _ws_chat(url, {**frame, "idempotency_key": "not a key"})

    kinds = [f["type"] for f in first]
    assert kinds[0] == "accepted", kinds
    assert kinds[-1] == "response", kinds
    assert first[0]["data"]["message_id"] == message_id
    assert again[0]["type"] == "accepted", again
    assert again[0]["data"]["message_id"] == message_id
    assert again[-1]["type"] == "response", again
    assert again[-1]["data"] == first[-1]["data"]
    assert runs == {message_id: 1}
    assert [f["type"] for f in bad] == ["error"], bad
    assert bad[0]["data"]["status"] == 422
    assert bad[0]["data"]["fields"][0]["field"] == "idempotency_key"


def sent_key(frame: dict[str, Any]) -> object:
    """The `idempotency_key` a server frame names (None: none)."""
    return frame["data"].get("idempotency_key")


async def test_a_keyed_chats_accepted_and_error_frames_name_its_key(nats_server: str, tmp_path: Path) -> None:
    """A client that resends its unanswered chats (the widget, after a reconnect) must learn which chat
    an `accepted` or `error` frame is about, also for errors before any message id exists."""
    runs: Counter[str] = Counter()
    settings = stack_settings(nats_server, tmp_path, ws_chats_per_socket=1)
    # Holds the first chat in the chain (in flight: the socket's one chat) until every refusal is in.
    first_in_flight = asyncio.Event()

    def chat(key: object, data: object) -> str:
        return json.dumps({"type": "chat", "idempotency_key": key, "data": data})

    async with gateway_stack(settings, factory=counting(runs, gate=first_in_flight)) as stack:
        url = stack.url.replace("http://", "ws://") + "/ws"
        async with connect(url, subprotocols=[WS_PROTOCOL]) as ws:  # type: ignore[list-item]
            await frame_of(ws, "connected")
            await ws.send(chat("k-slow", chat_body()))
            accepted = await frame_of(ws, "accepted")
            await ws.send(chat("k-over-limit", chat_body("Where is my order ORD-10003?")))
            over_limit = await frame_of(ws, "error")
            await ws.send(chat("k-invalid", chat_body(email="not-an-email")))
            invalid = await frame_of(ws, "error")
            await ws.send(chat("k-no-data", "hello"))
            no_data = await frame_of(ws, "error")
            await ws.send(chat("not a key", chat_body()))
            malformed = await frame_of(ws, "error")
            first_in_flight.set()
            response = await frame_of(ws, "response")
        reused = (await _ws_chat(url, json.loads(chat("k-slow", chat_body("Where is my order ORD-10003?")))))[
            -1
        ]

    assert accepted["data"]["message_id"] == idempotent_message_id(JOHN, "k-slow")
    assert sent_key(accepted) == "k-slow"
    assert (over_limit["data"]["status"], sent_key(over_limit)) == (429, "k-over-limit"), over_limit
    assert (invalid["data"]["status"], sent_key(invalid)) == (422, "k-invalid"), invalid
    assert sent_key(no_data) == "k-no-data", no_data
    assert malformed["data"]["status"] == 422
    assert sent_key(malformed) is None, "a malformed key is not echoed: the error names its field"
    assert "idempotency_key" not in response["data"], "a response is exactly the final result"
    assert response["data"]["message_id"] == accepted["data"]["message_id"]
    assert (reused["data"]["status"], sent_key(reused)) == (422, "k-slow"), reused


async def test_a_keyed_chat_refused_by_the_gateway_alone_names_its_key(tmp_path: Path) -> None:
    """503 (no NATS) and the socket's frame rate limit (429, decided before the frame is handled)."""
    settings = stack_settings("nats://127.0.0.1:1", tmp_path, ws_messages_per_minute=1)
    async with (
        GatewayServer(create_app(settings), port=0) as server,
        connect(f"ws://127.0.0.1:{server.port}/ws", subprotocols=[WS_PROTOCOL]) as ws,  # type: ignore[list-item]
    ):
        await frame_of(ws, "connected")
        await ws.send(json.dumps({"type": "chat", "idempotency_key": "k-503", "data": chat_body()}))
        unavailable = await frame_of(ws, "error")
        await ws.send(json.dumps({"type": "chat", "idempotency_key": "k-rate", "data": chat_body()}))
        limited = await frame_of(ws, "error")

    assert (unavailable["data"]["status"], sent_key(unavailable)) == (503, "k-503"), unavailable
    assert limited["data"]["limit"] == "WS_MESSAGES_PER_MINUTE", limited
    assert sent_key(limited) == "k-rate", limited


async def test_a_keyed_chats_timeout_names_its_key(nats_server: str, tmp_path: Path) -> None:
    """An error after `accepted` (504: a gateway alone, no actor answers) names the key too."""
    settings = stack_settings(nats_server, tmp_path, request_timeout_s=1.0)
    async with GatewayServer(create_app(settings), port=0) as server:
        await wait_ready(server.url)
        frames = await _ws_chat(
            f"ws://127.0.0.1:{server.port}/ws",
            {"type": "chat", "idempotency_key": "k-504", "data": chat_body()},
        )

    accepted, timeout = frames[0], frames[-1]
    assert (accepted["type"], sent_key(accepted)) == ("accepted", "k-504"), frames
    assert (timeout["type"], timeout["data"]["status"], sent_key(timeout)) == ("error", 504, "k-504"), frames
    assert timeout["data"]["message_id"] == idempotent_message_id(JOHN, "k-504")

"""An approved action whose reply makes no sense, through the real parts: nats-server, the history
service on a SQLite file, a gateway, the mesh's actors and the approvals executor, and the mock commerce
APIs behind a small HTTP proxy that a test tells to answer garbage.

The executor retries a reply it cannot read a bounded number of times (`MAX_DELIVER` deliveries, the
bus's `REDELIVERY_BACKOFF_S` between them), then gives up for good: the approval's result is `failed`
with the reason, the customer and the agents are told, and the command is acked. Before, such a
command was nak'ed every 5 s forever and nobody heard of it. The refund goes out once however often
it is retried (one Idempotency-Key), and a `failed` refund still counts against the order's total:
it may have been paid.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from actormesh_runtime.approvals import ApprovalRecord
from actormesh_runtime.bus import approval_executor
from actormesh_runtime.catalog import Subjects
from actormesh_runtime.clients.commerce import RetryPolicy
from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.gateway.server import GatewayServer
from actormesh_runtime.history.service import HistoryService
from actormesh_runtime.local.mesh import LocalMesh
from actormesh_runtime.mocks.server import MockPorts, serve_mocks
from tests.support.eventually import eventually_async
from tests.support.gateway import JOHN, stack_settings, wait_ready
from tests.support.http_stub import forward, serving

pytestmark = pytest.mark.integration

Intercept = Callable[[web.Request, bytes | None], Awaitable[web.Response | None]]
"""Given the request and the real API's answer (None before it was asked), answer instead, or None."""


@dataclass
class Proxy:
    upstream: str
    url: str = ""
    before: Intercept | None = None
    after: Intercept | None = None
    posts: list[tuple[str, str]] = field(default_factory=list)
    """(path, Idempotency-Key) of every change asked for."""

    async def handle(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            self.posts.append((request.path, request.headers.get("Idempotency-Key", "")))
        if self.before is not None and (answer := await self.before(request, None)) is not None:
            return answer
        status, body = await forward(self.upstream, request)
        if self.after is not None and (answer := await self.after(request, body)) is not None:
            return answer
        return web.Response(status=status, body=body, content_type="application/json")


@asynccontextmanager
async def _serving(proxy: Proxy) -> AsyncIterator[None]:
    async with serving(proxy.handle) as proxy.url:
        yield


@dataclass
class Stack:
    mesh: LocalMesh
    history: HistoryService
    api: httpx.AsyncClient
    customers: Proxy
    orders: Proxy
    subjects: Subjects


@pytest.fixture
async def stack(nats_server: str, tmp_path: Path) -> AsyncIterator[Stack]:
    mocks = await serve_mocks("127.0.0.1", MockPorts(0, 0, 0))
    customers, orders = Proxy(mocks.customer_api_url), Proxy(mocks.orders_api_url)
    try:
        async with _serving(customers), _serving(orders):
            settings = stack_settings(
                nats_server,
                tmp_path,
                customer_api_url=customers.url,
                orders_api_url=orders.url,
                tracking_api_url=mocks.tracking_api_url,
                max_deliver=3,
                redelivery_backoff_s=[0.2],
            )
            async with LocalMesh(settings, nats_url=nats_server, mocks=False) as mesh:
                history = await mesh.enter_context(HistoryService(mesh.settings))
                server = await mesh.enter_context(GatewayServer(create_app(mesh.settings), port=0))
                await wait_ready(server.url)
                async with httpx.AsyncClient(base_url=server.url, timeout=30) as api:
                    yield Stack(mesh, history, api, customers, orders, Subjects(settings.mesh_name))
    finally:
        await mocks.stop()


async def _refund_request(stack: Stack, order_id: str, session: str) -> dict[str, Any]:
    body = {"message": f"I was charged twice for {order_id}, I want a refund", "customer_email": JOHN}
    response = await stack.api.post("/api/chat", json={**body, "session_id": session})
    assert response.status_code == 200, response.text
    assert [a["status"] for a in response.json()["actions"]] == ["pending_review"]

    async def filed() -> dict[str, Any] | None:
        page = (
            await stack.api.get("/api/approvals", params={"state": "pending", "session_id": session})
        ).json()
        return page["items"][0] if page["items"] else None

    return await eventually_async(filed, what=f"the approval request of {session}")


async def _executed(stack: Stack, approval_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        record = (await stack.api.get(f"/api/approvals/{approval_id}")).json()
        return record if record["audit"][-1]["what"].startswith("executed") else None

    return await eventually_async(done, what=f"{approval_id}'s result recorded", timeout_s=30)


async def _idle(stack: Stack) -> bool:
    js = stack.mesh.js
    for consumer in (stack.subjects.approvals_executor_consumer, stack.subjects.approvals_outcome_consumer):
        info = await js.consumer_info(stack.subjects.stream, consumer)
        if info.num_pending or info.num_ack_pending:
            return False
    return True


async def _told(stack: Stack, session: str) -> list[str]:
    turns = (await stack.api.get(f"/api/conversations/{session}")).json()["turns"]
    return [t["text"] for t in turns if t.get("author")]


async def _mock_state(stack: Stack) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as client:
        return dict((await client.get(f"{stack.orders.upstream}/_test/state")).json())


def _refunds(state: dict[str, Any]) -> list[float]:
    return [r["amount"] for r in state["records"] if r.get("kind") == "refund"]


async def test_a_refund_answered_with_garbage_fails_for_good_once_paid_and_still_counts(
    stack: Stack,
) -> None:
    request = await _refund_request(stack, "ORD-10001", "garbled")

    async def garbled(request: web.Request, answered: bytes | None) -> web.Response | None:
        # The refund went through; what comes back is a proxy's error page with a 200.
        if request.method == "POST" and request.path.endswith("/refund"):
            return web.Response(status=200, text="<html>upstream says hi</html>", content_type="text/html")
        return None

    stack.orders.after = garbled
    approved = await stack.api.post(f"/api/approvals/{request['id']}/approve", json={"amount": 100})
    assert approved.status_code == 200, approved.text

    record = await _executed(stack, request["id"])
    await eventually_async(lambda: _idle(stack), what="the command settled", timeout_s=30)
    refund_posts = [p for p in stack.orders.posts if p[0].endswith("/refund")]
    state = await _mock_state(stack)
    told = await _told(stack, "garbled")
    # The rest of the order's total is what a second request may still be approved for.
    second = await _refund_request(stack, "ORD-10001", "garbled-again")
    too_much = await stack.api.post(f"/api/approvals/{second['id']}/approve", json={"amount": 50})

    assert record["audit"][-1]["what"] == "executed: failed"
    assert told == [
        "Your refund for ORD-10001 was approved, but we could not confirm it with our order system;"
        " our support team will check on it."
    ]
    assert record["audit"][-1]["why"].startswith(f"{told[0]} (unreadable_reply: orders API returned")
    assert _refunds(state) == [100.0], "paid once"
    assert len(refund_posts) == 3, "one call per delivery, MAX_DELIVER deliveries"
    assert len({key for _, key in refund_posts}) == 1, "every retry under the one Idempotency-Key"
    assert too_much.status_code == 422, too_much.text
    assert "19.98" in too_much.text


async def test_a_customer_lookup_answered_in_an_unknown_shape_fails_without_a_change(
    stack: Stack,
) -> None:
    request = await _refund_request(stack, "ORD-10001", "unknown-shape")

    async def unknown(request: web.Request, answered: bytes | None) -> web.Response | None:
        if request.path.startswith("/customers/by-email/"):
            return web.json_response({"customer": {"id": "CUST-1001"}})  # no customer_id, name, ...
        return None

    stack.customers.before = unknown
    approved = await stack.api.post(f"/api/approvals/{request['id']}/approve", json={})
    assert approved.status_code == 200, approved.text

    record = await _executed(stack, request["id"])
    await eventually_async(lambda: _idle(stack), what="the command settled", timeout_s=30)
    state = await _mock_state(stack)

    refund_posts = [p for p in stack.orders.posts if p[0].endswith("/refund")]
    stack.customers.before = None
    # Nothing was paid: the whole total may still be refunded.
    second = await _refund_request(stack, "ORD-10001", "unknown-shape-again")
    whole = await stack.api.post(f"/api/approvals/{second['id']}/approve", json={})

    assert record["audit"][-1]["what"] == "executed: failed (not sent)"
    assert _refunds(state) == []
    assert refund_posts == []
    assert "(unreadable_reply: customers API returned an unexpected body" in record["audit"][-1]["why"]
    assert len(await _told(stack, "unknown-shape")) == 1
    assert whole.status_code == 200, whole.text


async def test_deliveries_the_api_was_away_for_do_not_count_towards_giving_up(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(approval_executor, "RETRY_DELAY_S", 0.2)
    request = await _refund_request(stack, "ORD-10001", "away-then-garbled")
    away_for = RetryPolicy().attempts * 4  # four deliveries' worth of calls
    lookups = {"away": 0, "unreadable": 0}

    async def away_then_unknown(request: web.Request, answered: bytes | None) -> web.Response | None:
        if not request.path.startswith("/customers/by-email/"):
            return None
        if lookups["away"] < away_for:
            lookups["away"] += 1
            return web.Response(status=503, text="down for maintenance")
        lookups["unreadable"] += 1
        return web.json_response({"customer": {"id": "CUST-1001"}})

    stack.customers.before = away_then_unknown
    approved = await stack.api.post(f"/api/approvals/{request['id']}/approve", json={})
    assert approved.status_code == 200, approved.text

    record = await _executed(stack, request["id"])

    assert lookups == {"away": away_for, "unreadable": 3}, "MAX_DELIVER tries once the API answered"
    assert record["audit"][-1]["what"] == "executed: failed (not sent)"
    assert record["audit"][-1]["why"].endswith("(failure 3))")


async def test_a_command_of_a_later_release_is_left_for_an_upgraded_executor(stack: Stack) -> None:
    request = await _refund_request(stack, "ORD-10001", "from-the-future")
    outcomes: list[dict[str, Any]] = []

    async def seen(msg: Any) -> None:
        outcomes.append(json.loads(msg.data))

    await stack.mesh.nc.subscribe(stack.subjects.approvals_outcome, cb=seen)  # type: ignore[union-attr]
    record = ApprovalRecord.model_validate(request).model_dump(mode="json")
    newer = json.dumps({"approval": {**record, "a_field_from_the_future": 1}}).encode()
    await stack.mesh.js.publish(stack.subjects.approvals_execute, newer, headers={"Nats-Msg-Id": "newer-1"})
    await eventually_async(lambda: _idle(stack), what="the command settled", timeout_s=30)
    # Still open: approving it runs it (the sweep hands an approved one over again the same way).
    approved = await stack.api.post(f"/api/approvals/{request['id']}/approve", json={"amount": 10})
    assert approved.status_code == 200, approved.text
    done = await _executed(stack, request["id"])

    assert done["audit"][-1]["what"] == "executed: done"
    assert [o["status"] for o in outcomes] == ["done"]


async def test_an_undecodable_command_is_settled_and_its_approval_closed(stack: Stack) -> None:
    request = await _refund_request(stack, "ORD-10001", "undecodable")
    outcomes: list[dict[str, Any]] = []

    async def seen(msg: Any) -> None:
        outcomes.append(json.loads(msg.data))

    async def away(request: web.Request, answered: bytes | None) -> web.Response | None:
        return web.Response(status=503, text="down for maintenance")

    await stack.mesh.nc.subscribe(stack.subjects.approvals_outcome, cb=seen)  # type: ignore[union-attr]
    # Approved, but its own command waits on the API: the corrupt ones below are what closes it.
    stack.customers.before = away
    approved = await stack.api.post(f"/api/approvals/{request['id']}/approve", json={})
    assert approved.status_code == 200, approved.text
    js = stack.mesh.js
    # A command this executor cannot read (fields missing, or not JSON at all) that names its approval:
    # closed as failed, rather than handed over by the sweep again and again.
    unreadable = json.dumps({"approval": {"id": request["id"], "order": "ORD-10001"}}).encode()
    await js.publish(stack.subjects.approvals_execute, unreadable, headers={"Nats-Msg-Id": "bad-1"})
    await js.publish(stack.subjects.approvals_execute, b"\xff\x00 not json", headers={"Nats-Msg-Id": "bad-2"})

    record = await _executed(stack, request["id"])
    state = await _mock_state(stack)

    assert [(o["approval_id"], o["status"]) for o in outcomes] == [(request["id"], "failed")]
    assert record["audit"][-1]["what"] == "executed: failed"
    assert "(invalid_command: " in record["audit"][-1]["why"]
    assert _refunds(state) == []

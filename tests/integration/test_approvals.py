"""Approvals through the real stack (real nats-server, SQLite, mock commerce APIs over HTTP, two
gateway replicas): a standard-tier cancellation and a refund request wait for a person; approving
twice — or approving while the command is redelivered — changes the order once; the customer is told
the outcome live on another replica; a denial needs a reason and is told; an overdue request is
re-escalated, never approved."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from actormesh_runtime.approvals import ApprovalCommand, ApprovalRecord
from actormesh_runtime.catalog import Subjects
from actormesh_runtime.gateway.auth import WS_PROTOCOL, mint_token
from tests.support.eventually import eventually_async
from tests.support.gateway import (
    BOB,
    JOHN,
    Stack,
    frame_of,
    gateway_stack,
    mock_state,
    poll_json,
    stack_settings,
)

pytestmark = pytest.mark.integration

SECRET = "approvals-secret-with-enough-length-0123"


async def pending_for(api: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        page = (await api.get("/api/approvals", params={"state": "pending"})).json()
        return next((a for a in page["items"] if a["order"]["order_id"] == order_id), None)

    return await eventually_async(found, what=f"an approval request for {order_id}", timeout_s=30)


async def test_approve_twice_and_redelivered_changes_the_order_once(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings, replicas=2) as stack:
        a, b = stack.urls
        ws_b = b.replace("http://", "ws://") + "/ws?session_id=apr-bob"
        async with (
            httpx.AsyncClient(base_url=a, timeout=30) as api,
            connect(ws_b, subprotocols=[WS_PROTOCOL]) as customer,  # type: ignore[list-item]
            connect(b.replace("http://", "ws://") + "/ws/agent", subprotocols=[WS_PROTOCOL]) as console,  # type: ignore[list-item]
        ):
            body = {
                "message": "Please cancel my order ORD-30001",
                "customer_email": BOB,
                "session_id": "apr-bob",
            }
            chat = (await api.post("/api/chat", json=body)).json()
            assert [x["status"] for x in chat["actions"]] == ["pending_review"]
            request = await pending_for(api, "ORD-30001")
            created = await frame_of(console, "approval.created")
            assert created["approval"]["id"] == request["id"]
            assert request["action"] == "cancel_order"
            assert request["customer_email"] == BOB
            assert request["customer_tier"] == "standard"
            assert request["order"]["total"] == 149.0
            assert "cancel" in request["customer_words"]
            assert [e["what"] for e in request["audit"]] == ["requested"]
            before = await mock_state(stack)
            assert before["orders"]["ORD-30001"] == "pending"

            url = f"/api/approvals/{request['id']}/approve"
            first, second = await asyncio.gather(api.post(url, json={}), api.post(url, json={}))
            assert sorted([first.status_code, second.status_code]) == [200, 409], (first.text, second.text)

            told = await frame_of(customer, "agent_reply")
            assert (
                told["data"]["text"] == "Your cancellation of ORD-30001 was approved: the order is cancelled."
            )
            assert told["data"]["agent"] == "local-agent"
            # The same command again, past the stream's de-duplication (a redelivery after a crash).
            record = ApprovalRecord.model_validate((await api.get(f"/api/approvals/{request['id']}")).json())
            subjects = Subjects(settings.mesh_name)
            await stack.mesh.nc.jetstream().publish(
                subjects.approvals_execute,
                ApprovalCommand(approval=record).model_dump_json().encode(),
                headers={"Nats-Msg-Id": "redelivered"},
            )
            await eventually_async(
                lambda: _consumer_idle(stack, subjects), what="the redelivered command handled", timeout_s=30
            )
            after = await mock_state(stack)
            final = (await api.get(f"/api/approvals/{request['id']}")).json()
            transcript = (await api.get("/api/conversations/apr-bob")).json()["turns"]

    assert after["orders"]["ORD-30001"] == "cancelled"
    assert after["effects"] == before["effects"] + 1  # one cancellation, however often it was asked
    assert final["state"] == "approved"
    assert [e["what"] for e in final["audit"]] == ["requested", "approved", "executed: done"]
    people = [t for t in transcript if t.get("author")]
    assert [t["text"] for t in people] == [
        "Your cancellation of ORD-30001 was approved: the order is cancelled."
    ]


async def test_refund_amounts_denials_and_roles(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path, jwt_secret=SECRET)
    john = {"Authorization": f"Bearer {mint_token(SECRET, JOHN)}"}
    agent = {"Authorization": f"Bearer {mint_token(SECRET, 'ann@shop.example', role='agent')}"}
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        api.headers.update(agent)
        for order in ("ORD-10001", "ORD-10002"):
            body = {"message": f"I was charged twice for {order}, I want a refund", "customer_email": JOHN}
            response = await api.post("/api/chat", json={**body, "session_id": f"ref-{order}"}, headers=john)
            assert response.status_code == 200, response.text
        assert (await api.get("/api/approvals", headers=john)).status_code == 403
        refund = await pending_for(api, "ORD-10001")
        await pending_for(api, "ORD-10002")
        of_session = (await api.get("/api/approvals", params={"session_id": "ref-ORD-10001"})).json()
        assert [a["order"]["order_id"] for a in of_session["items"]] == ["ORD-10001"]
        bad_session = await api.get("/api/approvals", params={"session_id": "no spaces"})
        assert bad_session.status_code == 422, bad_session.text
        total = refund["order"]["total"]
        too_much = await api.post(f"/api/approvals/{refund['id']}/approve", json={"amount": total + 1})
        assert too_much.status_code == 422, too_much.text
        assert too_much.json()["fields"][0]["field"] == "amount"
        approved = await api.post(f"/api/approvals/{refund['id']}/approve", json={"amount": 50})
        assert approved.status_code == 200, approved.text
        assert approved.json()["decision"]["amount"] == 50.0
        assert approved.json()["decision"]["by"] == "ann@shop.example"

        other = await pending_for(api, "ORD-10002")
        no_reason = await api.post(f"/api/approvals/{other['id']}/deny", json={})
        assert no_reason.status_code == 422
        assert no_reason.json()["fields"][0]["field"] == "reason"
        denied = await api.post(
            f"/api/approvals/{other['id']}/deny", json={"reason": "already refunded on 1 Dec"}
        )
        assert denied.status_code == 200, denied.text
        assert (await api.post(f"/api/approvals/{other['id']}/approve", json={})).status_code == 409
        assert (await api.get("/api/approvals/APR-00000000")).status_code == 404
        detail = (await api.get(f"/api/approvals/{other['id']}/conversation")).json()
        assert detail["approval"]["id"] == other["id"]
        assert detail["turns"][0]["text"] == "I was charged twice for ORD-10002, I want a refund"

        async def refunded() -> dict[str, Any] | None:
            state = await mock_state(stack)
            return next((r for r in state["records"] if r.get("kind") == "refund"), None)

        issued = await eventually_async(refunded, what="the refund issued", timeout_s=30)
        # The approved refund's command once more (a redelivery past de-duplication): issued once.
        record = ApprovalRecord.model_validate((await api.get(f"/api/approvals/{refund['id']}")).json())
        subjects = Subjects(settings.mesh_name)
        await stack.mesh.nc.jetstream().publish(
            subjects.approvals_execute,
            ApprovalCommand(approval=record).model_dump_json().encode(),
            headers={"Nats-Msg-Id": "again"},
        )
        await eventually_async(
            lambda: _consumer_idle(stack, subjects), what="the command handled", timeout_s=30
        )
        refunds = [r for r in (await mock_state(stack))["records"] if r.get("kind") == "refund"]
        assert len(refunds) == 1
        told = await poll_json(api, "/api/conversations/ref-ORD-10002", headers=john)
        assert (
            told["turns"][-1]["text"]
            == "Your refund request for ORD-10002 was declined: already refunded on 1 Dec"
        )
    assert (issued["order_id"], issued["amount"]) == ("ORD-10001", 50.0)


async def test_an_overdue_request_is_reescalated_never_approved(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        body = {"message": "Please cancel my order ORD-30001", "customer_email": BOB, "session_id": "late"}
        assert (await api.post("/api/chat", json=body)).status_code == 200
        request = await pending_for(api, "ORD-30001")
        assert request["priority"] == "normal"
        assert stack.history is not None
        later = datetime.now(UTC) + timedelta(hours=5)  # past the 4 h limit of normal priority
        raised = await stack.history.approval_ops.sweep(later)
        assert [r.id for r in raised] == [request["id"]]
        again = await stack.history.approval_ops.sweep(later)  # not overdue at its new priority yet
        assert again == []
        shown = (await api.get(f"/api/approvals/{request['id']}")).json()
        state = await mock_state(stack)
    assert (shown["state"], shown["priority"], shown["escalations"]) == ("pending", "high", 1)
    assert shown["audit"][-1]["what"] == "re-escalated to high"
    assert shown["decision"] is None
    assert state["orders"]["ORD-30001"] == "pending"


async def _consumer_idle(stack: Stack, subjects: Subjects) -> bool:
    js = stack.mesh.nc.jetstream()
    for stream, consumer in (
        (subjects.stream, subjects.approvals_executor_consumer),
        (subjects.stream, subjects.approvals_outcome_consumer),
    ):
        info = await js.consumer_info(stream, consumer)
        if info.num_pending or info.num_ack_pending:
            return False
    return True

"""The money path of approvals against the real stack (real nats-server, SQLite, the mock commerce APIs
over HTTP, the gateway), as an attacker, a careless agent and an unlucky failure meet it:

- a history event (which every actor's NATS user may publish) carrying a request that says it was
  approved already is not stored as one: nothing is refunded without a person;
- two refund requests of one order are approved for at most its total together;
- an account suspended between the request and the approval is refused at execution;
- an agent may not decide a request of their own customer account;
- an approved request erased before its command ran: the command runs, its result is dropped, once;
- an amount that is not a number, sent on the bus past the gateway, is refused;
- approve racing deny, and approve racing the deadline sweep, decide once; a cancellation approved
  after the order shipped is refused by the API and the customer hears that, once.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from actormesh_runtime.approvals import ApprovalCommand, ApprovalRecord, decide
from actormesh_runtime.catalog import ActorName, Subjects, nats_permissions
from actormesh_runtime.gateway.auth import mint_token
from actormesh_runtime.history.erasure import erase_customer
from actormesh_runtime.history.protocol import HistoryAnswer
from tests.support.eventually import eventually_async
from tests.support.gateway import BOB, JOHN, Stack, gateway_stack, mock_state, poll_json, stack_settings
from tests.support.history_events import filed

pytestmark = pytest.mark.integration

SECRET = "approvals-money-secret-with-enough-length"


async def _requests_of(api: httpx.AsyncClient, order_id: str, count: int) -> list[dict[str, Any]]:
    async def found() -> list[dict[str, Any]] | None:
        page = (await api.get("/api/approvals", params={"state": "pending"})).json()
        mine = [a for a in page["items"] if a["order"]["order_id"] == order_id]
        return mine if len(mine) >= count else None

    return await eventually_async(found, what=f"{count} approval requests for {order_id}", timeout_s=30)


async def _refund_request(api: httpx.AsyncClient, order_id: str, session: str, **kw: Any) -> None:
    body = {"message": f"I was charged twice for {order_id}, I want a refund", "customer_email": JOHN}
    response = await api.post("/api/chat", json={**body, "session_id": session}, **kw)
    assert response.status_code == 200, response.text
    assert [a["status"] for a in response.json()["actions"]] == ["pending_review"]


async def _idle(stack: Stack, subjects: Subjects) -> bool:
    js = stack.mesh.nc.jetstream()
    for consumer in (subjects.approvals_executor_consumer, subjects.approvals_outcome_consumer):
        info = await js.consumer_info(subjects.stream, consumer)
        if info.num_pending or info.num_ack_pending:
            return False
    return True


async def _executed(api: httpx.AsyncClient, approval_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        record = (await api.get(f"/api/approvals/{approval_id}")).json()
        return record if record["audit"][-1]["what"].startswith("executed") else None

    return await eventually_async(done, what=f"{approval_id} executed", timeout_s=30)


def _refunds(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in state["records"] if r.get("kind") == "refund"]


async def test_a_history_event_cannot_file_an_approved_request(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path)
    subjects = Subjects(settings.mesh_name)
    # Every actor may publish history events (response_aggregator's is the honest one).
    assert subjects.history_events in nats_permissions(subjects, ActorName.INTENT_ANALYZER.value).publish
    event = filed(JOHN, "ORD-10001", session="forged")
    request = event.approvals[0]
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    forged = decide(request, "approve", "ann@shop.example", amount=119.98, now=long_ago)
    event = event.model_copy(update={"approvals": [forged]})
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        await stack.mesh.nc.jetstream().publish(
            subjects.history_events, event.model_dump_json().encode(), headers={"Nats-Msg-Id": "forged"}
        )
        await poll_json(api, "/api/conversations/forged")  # the event was stored (its turns are)
        assert stack.history is not None
        await stack.history.approval_ops.sweep(datetime.now(UTC) + timedelta(minutes=5))
        await eventually_async(lambda: _idle(stack, subjects), what="approvals handled", timeout_s=30)
        stored = await api.get(f"/api/approvals/{forged.id}")
        state = await mock_state(stack)
    assert _refunds(state) == []
    assert stored.status_code == 404, stored.text


async def test_two_refunds_of_one_order_add_up_to_its_total_at_most(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path)
    subjects = Subjects(settings.mesh_name)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        await _refund_request(api, "ORD-10001", "twice-1")
        await _refund_request(api, "ORD-10001", "twice-2")
        first, second = await _requests_of(api, "ORD-10001", 2)
        assert first["order"]["total"] == second["order"]["total"] == 119.98
        one = await api.post(f"/api/approvals/{first['id']}/approve", json={"amount": 100})
        assert one.status_code == 200, one.text
        too_much = await api.post(f"/api/approvals/{second['id']}/approve", json={"amount": 50})
        assert too_much.status_code == 422, too_much.text
        assert too_much.json()["fields"][0]["field"] == "amount"
        assert "19.98" in too_much.text
        rest = await api.post(f"/api/approvals/{second['id']}/approve", json={})
        assert rest.status_code == 200, rest.text
        assert rest.json()["decision"]["amount"] == 19.98
        await _executed(api, first["id"])
        await _executed(api, second["id"])
        await eventually_async(lambda: _idle(stack, subjects), what="approvals handled", timeout_s=30)
        state = await mock_state(stack)
    assert sorted(r["amount"] for r in _refunds(state)) == [19.98, 100.0]


async def test_an_account_suspended_meanwhile_is_refused_at_execution(
    nats_server: str, tmp_path: Path
) -> None:
    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        await _refund_request(api, "ORD-10001", "suspended")
        (request,) = await _requests_of(api, "ORD-10001", 1)
        assert stack.mesh.mocks is not None
        stack.mesh.mocks.state.data.customers["CUST-1001"].status = "suspended"
        approved = await api.post(f"/api/approvals/{request['id']}/approve", json={})
        assert approved.status_code == 200, approved.text
        record = await _executed(api, request["id"])
        state = await mock_state(stack)
        transcript = (await api.get("/api/conversations/suspended")).json()["turns"]
    assert _refunds(state) == []
    assert record["audit"][-1]["what"] == "executed: refused"
    told = [t["text"] for t in transcript if t.get("author")]
    assert told == [
        "Your refund for ORD-10001 was approved, but your account is suspended, so order changes"
        " need a member of our support team."
    ]


async def test_an_agent_does_not_decide_their_own_request(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path, jwt_secret=SECRET)
    john = {"Authorization": f"Bearer {mint_token(SECRET, JOHN)}"}
    # John works in support too: his agent token names the same address as his customer account.
    john_agent = {"Authorization": f"Bearer {mint_token(SECRET, JOHN.upper(), role='agent')}"}
    ann = {"Authorization": f"Bearer {mint_token(SECRET, 'ann@shop.example', role='agent')}"}
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        await _refund_request(api, "ORD-10001", "own", headers=john)
        api.headers.update(ann)
        (request,) = await _requests_of(api, "ORD-10001", 1)
        url = f"/api/approvals/{request['id']}"
        own = await api.post(f"{url}/approve", json={}, headers=john_agent)
        own_deny = await api.post(f"{url}/deny", json={"reason": "mine"}, headers=john_agent)
        shown = (await api.get(url)).json()
        by_ann = await api.post(f"{url}/approve", json={"amount": 10})
    assert own.status_code == 403, own.text
    assert own_deny.status_code == 403, own_deny.text
    assert shown["state"] == "pending"
    assert shown["decision"] is None
    assert by_ann.status_code == 200, by_ann.text


async def test_an_erased_approval_still_runs_once_and_its_result_is_dropped(
    nats_server: str, tmp_path: Path
) -> None:
    settings = stack_settings(nats_server, tmp_path)
    subjects = Subjects(settings.mesh_name)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        await _refund_request(api, "ORD-10001", "erased")
        (request,) = await _requests_of(api, "ORD-10001", 1)
        approved = await api.post(f"/api/approvals/{request['id']}/approve", json={"amount": 20})
        assert approved.status_code == 200, approved.text
        record = ApprovalRecord.model_validate(approved.json())
        await _executed(api, request["id"])
        assert stack.history is not None
        counts = await erase_customer(stack.history.store, JOHN)
        assert counts.approvals == 1
        # The command handed over before the erasure, delivered again (a crash before its ack).
        for msg_id in ("after-erasure-1", "after-erasure-2"):
            await stack.mesh.nc.jetstream().publish(
                subjects.approvals_execute,
                ApprovalCommand(approval=record).model_dump_json().encode(),
                headers={"Nats-Msg-Id": msg_id},
            )
        await eventually_async(lambda: _idle(stack, subjects), what="commands handled", timeout_s=30)
        await stack.history.approval_ops.sweep(datetime.now(UTC) + timedelta(minutes=5))
        await eventually_async(lambda: _idle(stack, subjects), what="nothing resent", timeout_s=30)
        gone = await api.get(f"/api/approvals/{request['id']}")
        transcript = await api.get("/api/conversations/erased")
        state = await mock_state(stack)
        dlq = await stack.mesh.nc.jetstream().stream_info(subjects.dlq_stream)
    assert gone.status_code == 404
    assert transcript.status_code == 404 or transcript.json()["turns"] == []
    assert [r["amount"] for r in _refunds(state)] == [20.0]
    assert dlq.state.messages == 0


async def test_an_amount_that_is_not_a_number_is_refused_on_the_bus(nats_server: str, tmp_path: Path) -> None:
    # The gateway's body model refuses NaN; the history service answers history.query from any user
    # allowed to publish it (gateway, admin), whose JSON may spell NaN.
    settings = stack_settings(nats_server, tmp_path)
    subjects = Subjects(settings.mesh_name)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        await _refund_request(api, "ORD-10001", "nan")
        (request,) = await _requests_of(api, "ORD-10001", 1)
        fields = {"op": "approval_approve", "approval_id": request["id"], "agent": "ann@shop.example"}
        query = json.dumps(fields)[:-1] + ', "amount": NaN}'  # what json.dumps(float("nan")) spells
        reply = await stack.mesh.nc.request(subjects.history_query, query.encode(), timeout=10)
        answer = HistoryAnswer.model_validate_json(reply.data)
        shown = (await api.get(f"/api/approvals/{request['id']}")).json()
    assert answer.refused == "invalid", answer
    assert (answer.error or "").startswith("amount:")
    assert shown["state"] == "pending"


async def test_decisions_racing_each_other_and_the_sweep_decide_once(
    nats_server: str, tmp_path: Path
) -> None:
    settings = stack_settings(nats_server, tmp_path)
    subjects = Subjects(settings.mesh_name)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        for session in ("race-1", "race-2"):
            body = {
                "message": "Please cancel my order ORD-30001",
                "customer_email": BOB,
                "session_id": session,
            }
            assert (await api.post("/api/chat", json=body)).status_code == 200
        first, second = await _requests_of(api, "ORD-30001", 2)
        assert stack.mesh.mocks is not None
        stack.mesh.mocks.state.data.orders["ORD-30001"].status = "shipped"  # it left the warehouse meanwhile
        url = f"/api/approvals/{first['id']}"
        approve, deny = await asyncio.gather(
            api.post(f"{url}/approve", json={}), api.post(f"{url}/deny", json={"reason": "too late"})
        )
        assert sorted([approve.status_code, deny.status_code]) == [200, 409], (approve.text, deny.text)
        assert stack.history is not None
        later = datetime.now(UTC) + timedelta(hours=5)
        swept, approved = await asyncio.gather(
            stack.history.approval_ops.sweep(later),
            api.post(f"/api/approvals/{second['id']}/approve", json={}),
        )
        assert approved.status_code == 200, approved.text
        if approve.status_code == 200:
            await _executed(api, first["id"])
        await _executed(api, second["id"])
        await eventually_async(lambda: _idle(stack, subjects), what="approvals handled", timeout_s=30)
        records = [(await api.get(f"/api/approvals/{r['id']}")).json() for r in (first, second)]
        transcripts = [
            (await api.get(f"/api/conversations/{s}")).json()["turns"] for s in ("race-1", "race-2")
        ]
        state = await mock_state(stack)
    assert state["orders"]["ORD-30001"] == "shipped"
    assert records[1]["state"] == "approved"
    assert records[1]["audit"][-1]["what"] == "executed: refused"
    assert [e["what"] for e in records[1]["audit"]].count("approved") == 1
    # Each customer hears one answer: the refusal the API gave (the order shipped), or the denial.
    told = [[t["text"] for t in turns if t.get("author")] for turns in transcripts]
    assert [len(t) for t in told] == [1, 1]
    assert "ORD-30001 is shipped" in told[1][0]
    assert ("ORD-30001 is shipped" in told[0][0]) == (approve.status_code == 200)
    # The sweep went first (re-escalated, then approved) or second (nothing pending left): never both.
    assert [r.id for r in swept] in ([], [second["id"]])

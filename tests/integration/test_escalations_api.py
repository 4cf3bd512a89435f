"""The agent API through the real stack (real nats-server, SQLite, two gateway replicas).

A customer escalates on replica A; the record is in the queue; an agent claims and replies on
replica A, and the reply reaches the customer's WebSocket on replica B over NATS, and is a stored
turn of the conversation; wrong states get 409, unknown refs 404, bad bodies 422 naming the field;
with auth on, a customer's token gets 403 and an agent's token works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from actormesh_runtime.gateway.auth import WS_BEARER_PREFIX, WS_PROTOCOL, mint_token
from tests.support.gateway import BOB, JANE, JOHN, frame_of, gateway_stack, poll_json, stack_settings

pytestmark = pytest.mark.integration

SECRET = "s" * 40


def ws_url(http_url: str, path: str) -> str:
    return http_url.replace("http://", "ws://") + path


async def escalate(client: httpx.AsyncClient, email: str, session: str, text: str, **kw: Any) -> str:
    body = {"message": text, "customer_email": email, "session_id": session}
    response = await client.post("/api/chat", json=body, **kw)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["escalated"], result
    ref = result["reference_id"]
    assert ref in result["response"]
    return str(ref)


async def test_agent_reply_reaches_the_customer_on_another_replica(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings, replicas=2) as stack:
        a, b = stack.urls
        async with (
            httpx.AsyncClient(base_url=a, timeout=30) as api,
            connect(ws_url(b, "/ws?session_id=esc-john"), subprotocols=[WS_PROTOCOL]) as customer,  # type: ignore[list-item]
            connect(ws_url(b, "/ws/agent"), subprotocols=[WS_PROTOCOL]) as console,  # type: ignore[list-item]
        ):
            assert (await frame_of(console, "connected"))["agent"] == "local-agent"
            ref = await escalate(api, JOHN, "esc-john", "I want to speak to a real person please")
            created = await frame_of(console, "escalation.created")
            assert created["escalation"]["ref"] == ref

            queue = await poll_json(api, "/api/escalations?state=open")
            mine = [item for item in queue["items"] if item["ref"] == ref]
            assert len(mine) == 1
            record = mine[0]
            assert record["customer"] == {"email": JOHN, "tier": "premium"}
            assert record["reason"] == "human_requested"
            assert record["state"] == "open"
            assert record["session_id"] == "esc-john"
            assert record["facts"]["orders"], record  # what the mesh knew: John's orders

            early = await api.post(f"/api/escalations/{ref}/reply", json={"text": "Hello"})
            assert early.status_code == 409, early.text
            claimed = await api.post(f"/api/escalations/{ref}/claim", json={"agent": "alice"})
            assert claimed.status_code == 200, claimed.text
            assert claimed.json()["state"] == "claimed"
            taken = await api.post(f"/api/escalations/{ref}/claim", json={"agent": "bob"})
            assert taken.status_code == 409, taken.text
            assert "alice" in taken.json()["detail"]

            reply = {"agent": "alice", "text": "Hi John, I'm on it.", "reply_id": "console-0001"}
            replied = await api.post(f"/api/escalations/{ref}/reply", json=reply)
            assert replied.status_code == 200, replied.text
            assert [r["text"] for r in replied.json()["replies"]] == ["Hi John, I'm on it."]
            # The console's retry after a lost answer: same key, no second reply, the record as it is.
            again = await api.post(f"/api/escalations/{ref}/reply", json=reply)
            assert again.status_code == 200, again.text
            assert again.json()["replies"] == replied.json()["replies"]
            bad_key = await api.post(f"/api/escalations/{ref}/reply", json={**reply, "reply_id": "x"})
            assert bad_key.status_code == 422, bad_key.text
            assert bad_key.json()["fields"][0]["field"] == "reply_id"

            live = await frame_of(customer, "agent_reply")
            assert live["data"]["ref"] == ref
            assert live["data"]["text"] == "Hi John, I'm on it."
            assert live["data"]["agent"] == "alice"
            assert live["data"]["session_id"] == "esc-john"
            updated = await frame_of(console, "escalation.updated")
            assert updated["escalation"]["state"] == "claimed"

            shown = await api.get(f"/api/escalations/{ref}")
            assert shown.status_code == 200
            agent_turns = [t for t in shown.json()["turns"] if t.get("author") == "alice"]
            assert [t["text"] for t in agent_turns] == ["Hi John, I'm on it."]
            transcript = (await api.get("/api/conversations/esc-john")).json()["turns"]
            assert transcript[-1]["role"] == "agent"
            assert transcript[-1]["author"] == "alice"

            resolved = await api.post(
                f"/api/escalations/{ref}/resolve", json={"agent": "alice", "note": "done"}
            )
            assert resolved.status_code == 200, resolved.text
            assert resolved.json()["state"] == "resolved"
            assert resolved.json()["resolution_note"] == "done"
            for op, body in [("reply", {"agent": "alice", "text": "more"}), ("claim", {}), ("resolve", {})]:
                late = await api.post(f"/api/escalations/{ref}/{op}", json=body)
                assert late.status_code == 409, (op, late.text)
                assert late.json()["error"] == "conflict"


async def test_errors_name_the_problem(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        missing = await api.get("/api/escalations/ESC-00000000")
        assert missing.status_code == 404
        assert (await api.post("/api/escalations/ESC-00000000/claim", json={})).status_code == 404
        malformed = await api.get("/api/escalations/ESC-nothex!")
        assert malformed.status_code == 422
        assert malformed.json()["fields"][0]["field"] == "ref"
        ref = await escalate(api, BOB, "esc-bob", "I want to talk to a human")
        await poll_json(api, f"/api/escalations/{ref}")
        blank = await api.post(f"/api/escalations/{ref}/reply", json={"text": "   "})
        assert blank.status_code == 422
        assert blank.json()["fields"][0]["field"] == "text"
        unknown = await api.post(f"/api/escalations/{ref}/claim", json={"agnt": "x"})
        assert unknown.status_code == 422
        assert unknown.json()["fields"][0]["field"] == "agnt"
        bad_state = await api.get("/api/escalations?state=closed")
        assert bad_state.status_code == 422
        assert bad_state.json()["fields"][0]["field"] == "state"


async def test_queue_sorted_by_priority_then_age_and_paginated(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        normal_first = await escalate(api, BOB, "q-1", "I want to talk to a human")
        await poll_json(api, f"/api/escalations/{normal_first}")
        normal_second = await escalate(api, JOHN, "q-2", "Can I speak to a real person?")
        await poll_json(api, f"/api/escalations/{normal_second}")
        urgent = await escalate(api, JANE, "q-3", "I will sue you, my lawyer is calling you tomorrow")
        await poll_json(api, f"/api/escalations/{urgent}")

        first_page = (await api.get("/api/escalations", params={"limit": 2})).json()
        assert [i["ref"] for i in first_page["items"]] == [urgent, normal_first]
        assert first_page["items"][0]["priority"] == "urgent"
        assert first_page["next_cursor"]
        rest = (
            await api.get("/api/escalations", params={"limit": 2, "cursor": first_page["next_cursor"]})
        ).json()
        assert [i["ref"] for i in rest["items"]] == [normal_second]
        assert rest["next_cursor"] is None


async def test_only_agents_use_the_agent_api(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path, jwt_secret=SECRET)
    customer = {"Authorization": f"Bearer {mint_token(SECRET, JOHN)}"}
    agent = {"Authorization": f"Bearer {mint_token(SECRET, 'alice@shop.example', role='agent')}"}
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        assert (await api.get("/api/escalations")).status_code == 401
        forbidden = await api.get("/api/escalations", headers=customer)
        assert forbidden.status_code == 403
        assert "role" in forbidden.json()["detail"]
        assert (
            await api.post("/api/escalations/ESC-00000000/claim", json={}, headers=customer)
        ).status_code == 403
        ref = await escalate(api, JOHN, "auth-john", "I want to talk to a human", headers=customer)
        await poll_json(api, f"/api/escalations/{ref}", headers=agent)
        claimed = await api.post(f"/api/escalations/{ref}/claim", json={}, headers=agent)
        assert claimed.status_code == 200, claimed.text
        assert claimed.json()["claimed_by"] == "alice@shop.example"
        impostor = await api.post(
            f"/api/escalations/{ref}/reply", json={"agent": "bob", "text": "x"}, headers=agent
        )
        assert impostor.status_code == 403
        customer_ws = [WS_PROTOCOL, f"{WS_BEARER_PREFIX}{mint_token(SECRET, JOHN)}"]
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url(stack.url, "/ws/agent"), subprotocols=customer_ws):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 403


async def test_every_handoff_reply_names_a_real_record(nats_server: str, tmp_path: Path) -> None:
    """The suspended account's order change (once a dead end) and a legal threat: each reply that says
    a person will take over carries a reference, and that reference is a stored record."""
    settings = stack_settings(nats_server, tmp_path)
    cases = [
        ("mia.park@example.com", "Please cancel my order", "suspended_account"),
        ("mia.park@example.com", "Why is my account suspended? I can't log in", "suspended_account"),
        (JOHN, "This is unacceptable, my lawyer will hear about it", "legal_threat"),
    ]
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        for i, (email, text, reason) in enumerate(cases):
            ref = await escalate(api, email, f"handoff-{i}", text)
            shown = await poll_json(api, f"/api/escalations/{ref}")
            assert shown["escalation"]["reason"] == reason
            assert shown["escalation"]["customer"]["email"] == email


async def test_customers_follow_up_on_their_reference(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path, jwt_secret=SECRET)
    john = {"Authorization": f"Bearer {mint_token(SECRET, JOHN)}"}
    bob = {"Authorization": f"Bearer {mint_token(SECRET, BOB)}"}
    agent = {"Authorization": f"Bearer {mint_token(SECRET, 'ann@shop.example', role='agent')}"}
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        ref = await escalate(api, JOHN, "fu-john", "I want to talk to a human", headers=john)
        await poll_json(api, f"/api/escalations/{ref}", headers=agent)

        async def ask(headers: dict[str, str], email: str, session: str, text: str) -> dict[str, Any]:
            body = {"message": text, "customer_email": email, "session_id": session}
            response = await api.post("/api/chat", json=body, headers=headers)
            assert response.status_code == 200, response.text
            return dict(response.json())

        waiting = await ask(john, JOHN, "fu-john", f"What's happening with {ref}?")
        assert (
            f"Your request {ref} is waiting for the next available member of our team." in waiting["response"]
        )
        assert not waiting["escalated"]  # asking about it opens no second escalation
        assert (await api.post(f"/api/escalations/{ref}/claim", json={}, headers=agent)).status_code == 200
        reply = {"text": "Your replacement ships today."}
        assert (await api.post(f"/api/escalations/{ref}/reply", json=reply, headers=agent)).status_code == 200

        handled = await ask(john, JOHN, "fu-john", f"any news on {ref.lower()}? I still want a person")
        assert f"Your request {ref} is being handled by a member of our team." in handled["response"]
        assert '"Your replacement ships today."' in handled["response"]
        assert not handled["escalated"]
        others = await ask(bob, BOB, "fu-bob", f"What's happening with {ref}?")
        assert f"I couldn't find {ref} for your account" in others["response"]
        assert "replacement" not in others["response"]
        queue = (await api.get("/api/escalations", headers=agent)).json()["items"]
        assert [item["ref"] for item in queue] == [ref]


async def test_an_agent_is_one_agent_however_the_name_is_written(nats_server: str, tmp_path: Path) -> None:
    """The CLI sends `--agent` as typed; the token's subject is lower-cased. A claim that named the agent
    as `Alice@Shop.example` once stored that spelling, and the same agent's console (the token's own
    subject, no body name) was then refused its reply: "claimed by Alice@Shop.example, not alice@…"."""
    settings = stack_settings(nats_server, tmp_path, jwt_secret=SECRET)
    customer = {"Authorization": f"Bearer {mint_token(SECRET, JOHN)}"}
    agent = {"Authorization": f"Bearer {mint_token(SECRET, 'Alice@Shop.example', role='agent')}"}
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        ref = await escalate(api, JOHN, "case-john", "I want to talk to a human", headers=customer)
        await poll_json(api, f"/api/escalations/{ref}", headers=agent)
        claimed = await api.post(
            f"/api/escalations/{ref}/claim", json={"agent": "Alice@Shop.example"}, headers=agent
        )
        assert claimed.status_code == 200, claimed.text
        assert claimed.json()["claimed_by"] == "alice@shop.example"
        replied = await api.post(f"/api/escalations/{ref}/reply", json={"text": "On it."}, headers=agent)
        assert replied.status_code == 200, replied.text
        assert replied.json()["replies"][0]["agent"] == "alice@shop.example"


async def test_a_follow_up_quotes_what_the_agent_promised(nats_server: str, tmp_path: Path) -> None:
    """A person may promise a refund; the mesh may not. The follow-up quotes the person word for word,
    and the guardrail once took the quote for the mesh's own words: the customer got the generic safe
    reply instead of what the agent told them."""
    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=30) as api:
        ref = await escalate(api, JOHN, "fu-refund", "I want to talk to a human")
        await poll_json(api, f"/api/escalations/{ref}")
        assert (await api.post(f"/api/escalations/{ref}/claim", json={"agent": "ann"})).status_code == 200
        said = "We will refund you today, I approved it myself."
        replied = await api.post(f"/api/escalations/{ref}/reply", json={"agent": "ann", "text": said})
        assert replied.status_code == 200, replied.text
        body = {"message": f"What's happening with {ref}?", "customer_email": JOHN, "session_id": "fu-refund"}
        response = await api.post("/api/chat", json=body)
        assert response.status_code == 200, response.text
        assert f'"{said}"' in response.json()["response"]

"""Sessions owned durably and failing closed, on a real stack (nats-server, nine actors, history service
on a real SQLite file, uvicorn on a random port), with auth on:

- flooding the gateway with more sessions than any in-process map holds does not evict an owner, so
  the session cannot be taken over;
- ownership survives a gateway restart (it lives in the history file, not in a replica);
- when the ownership store does not answer, a chat is refused with 503, never let through unchecked,
  and Redis going away (REDIS_URL set) skips no check;
- another customer's transcript or result answers exactly like one that does not exist (404);
- the history file is created 0600 (and an existing 0644 one is tightened).
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import httpx
import pytest

from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.gateway.auth import Principal, mint_token
from actormesh_runtime.gateway.models import ChatRequest
from actormesh_runtime.gateway.server import GatewayServer
from actormesh_runtime.gateway.service import Gateway
from actormesh_runtime.history.protocol import HistoryUnavailable
from actormesh_runtime.history.store import HistoryStore
from tests.support.gateway import JANE, JOHN, gateway_stack, poll_json, stack_settings, wait_ready
from tests.support.redis import RedisServer

pytestmark = pytest.mark.integration

KEY = "session-key-0123456789abcdef-0123456789"
AS_JOHN = {"Authorization": f"Bearer {mint_token(KEY, JOHN)}"}
AS_JANE = {"Authorization": f"Bearer {mint_token(KEY, JANE)}"}
WHERE = "Where is my order ORD-10002?"
FLOOD = 10_500
"""More sessions than the old in-process session map kept (10,000)."""


def chat(session: str, email: str = JOHN, message: str = WHERE) -> dict[str, str]:
    return {"message": message, "customer_email": email, "session_id": session}


async def test_flooding_sessions_does_not_evict_an_owner(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path, jwt_secret=KEY, gateway_anonymous=False)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        owned = await client.post("/api/chat", json=chat("johns-session"), headers=AS_JOHN)
        assert owned.status_code == 200, owned.text

        # Jane claims FLOOD fresh sessions through the gateway's own claim path (a chat each would
        # only add nine actor hops per claim, not a different code path).
        gateway: Gateway = stack.servers[0].server.config.app.state.gateway
        jane = Principal(email=JANE)

        # 50 in flight at once. A claim the single writer does not answer within the client's 3 s is a
        # 503 a customer retries, and so is it here: what this test checks is eviction, and failing on
        # one slow answer made it a timed test (it failed so twice in full parallel runs on the 2-core
        # CI machine, once after checkpoints had moved off the writer's connection). The 503 itself is
        # test_unreachable_ownership_store_refuses_with_503.
        async def claim(session_id: str) -> None:
            for attempt in range(3):
                try:
                    await gateway.claim_session(
                        jane, ChatRequest(message="hi", customer_email=JANE, session_id=session_id)
                    )
                    return
                except HistoryUnavailable:
                    if attempt == 2:
                        raise

        for start in range(0, FLOOD, 50):
            await asyncio.gather(*(claim(f"f{i}") for i in range(start, min(start + 50, FLOOD))))
        hijack = await client.post("/api/chat", json=chat("johns-session", JANE, "hello"), headers=AS_JANE)
        assert hijack.status_code == 403, hijack.text

        # A second replica, started after the flood, knows the owner too: it lives in the history file.
        async with GatewayServer(create_app(stack.mesh.settings), port=0) as other:
            await wait_ready(other.url)
            async with httpx.AsyncClient(base_url=other.url, timeout=60) as second:
                refused = await second.post(
                    "/api/chat", json=chat("johns-session", JANE, "hi"), headers=AS_JANE
                )
                again = await second.post("/api/chat", json=chat("johns-session"), headers=AS_JOHN)
        assert refused.status_code == 403, refused.text
        assert again.status_code == 200, again.text


async def test_unreachable_ownership_store_refuses_with_503(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path, jwt_secret=KEY, gateway_anonymous=False)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        assert (await client.post("/api/chat", json=chat("before"), headers=AS_JOHN)).status_code == 200
        assert stack.history is not None
        await stack.history.stop()
        refused = await client.post("/api/chat", json=chat("during"), headers=AS_JOHN)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "history_unavailable"


async def test_redis_down_skips_no_ownership_check(
    nats_server: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    """With REDIS_URL set, Redis going away once let any session be taken (the check read "no owner")."""
    settings = stack_settings(
        nats_server, tmp_path, jwt_secret=KEY, gateway_anonymous=False, redis_url=redis_server.url
    )
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        assert (await client.post("/api/chat", json=chat("johns"), headers=AS_JOHN)).status_code == 200
        redis_server.kill()
        hijack = await client.post("/api/chat", json=chat("johns", JANE, "hello"), headers=AS_JANE)
        assert hijack.status_code == 403, hijack.text
        own = await client.post("/api/chat", json=chat("johns"), headers=AS_JOHN)
        assert own.status_code == 200, own.text


async def test_another_customers_data_looks_like_missing_data(nats_server: str, tmp_path: Path) -> None:
    settings = stack_settings(nats_server, tmp_path, jwt_secret=KEY, gateway_anonymous=False)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        ok = await client.post("/api/chat", json=chat("johns"), headers=AS_JOHN)
        assert ok.status_code == 200, ok.text
        message_id = ok.json()["message_id"]
        await poll_json(client, "/api/conversations/johns", headers=AS_JOHN)
        await poll_json(client, f"/api/messages/{message_id}", headers=AS_JOHN)

        pairs = [
            ("/api/conversations/johns", "/api/conversations/nobodys"),
            (f"/api/messages/{message_id}", "/api/messages/msg-does-not-exist"),
        ]
        for theirs, missing in pairs:
            a = await client.get(theirs, headers=AS_JANE)
            b = await client.get(missing, headers=AS_JANE)
            assert a.status_code == b.status_code == 404, (a.text, b.text)
            strip = theirs.rsplit("/", 1)[1], missing.rsplit("/", 1)[1]
            body_a = {k: v for k, v in a.json().items() if k != "request_id"}
            body_b = {k: v for k, v in b.json().items() if k != "request_id"}
            assert str(body_a).replace(strip[0], "ID") == str(body_b).replace(strip[1], "ID")


async def test_history_file_is_private(tmp_path: Path) -> None:
    fresh = HistoryStore(tmp_path / "new" / "history.db")
    await fresh.open()
    try:
        await fresh.claim_session("s", JOHN)
        assert _modes(fresh.path) == {"": 0o600, "-wal": 0o600, "-shm": 0o600}
    finally:
        await fresh.close()

    old = tmp_path / "old.db"
    _make_readable_by_all(old)
    reopened = HistoryStore(old)
    await reopened.open()
    await reopened.close()
    assert _modes(old)[""] == 0o600


def _modes(db: Path) -> dict[str, int | None]:
    """Permission bits of the database file and its WAL/SHM files (None: absent)."""
    modes: dict[str, int | None] = {}
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{db}{suffix}")
        modes[suffix] = stat.S_IMODE(path.stat().st_mode) if path.exists() else None
    return modes


def _make_readable_by_all(path: Path) -> None:
    path.touch()
    os.chmod(path, 0o644)

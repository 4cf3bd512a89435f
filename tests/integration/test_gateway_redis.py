"""The gateway with REDIS_URL on a real redis-server: session state lives in Redis; killing Redis
mid-run degrades (chats still answer), and once Redis is back the state is written there again."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from tests.support.eventually import eventually_async
from tests.support.gateway import JOHN, gateway_stack, stack_settings
from tests.support.redis import RedisServer

pytestmark = pytest.mark.integration


async def chat(client: httpx.AsyncClient, session_id: str) -> None:
    body = {"message": "Where is my order ORD-10002?", "customer_email": JOHN, "session_id": session_id}
    response = await client.post("/api/chat", json=body)
    assert response.status_code == 200, response.text
    assert "TRK100000002" in response.json()["response"]


async def test_session_state_survives_a_redis_outage(
    nats_server: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = stack_settings(nats_server, tmp_path, redis_url=redis_server.url)
    key = f"actormesh:{settings.mesh_name}:session:"
    redis = Redis.from_url(redis_server.url)
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
        await chat(client, "before")
        assert await redis.exists(key + "before")

        redis_server.kill()
        for i in range(3):
            await chat(client, f"during-{i}")  # degraded, never failed

        redis_server.start()  # empty, as a restarted cache would be
        await redis.aclose()
        redis = Redis.from_url(redis_server.url)
        attempts = 0

        async def stored_after_a_chat() -> bool:
            nonlocal attempts
            attempts += 1
            await chat(client, f"after-{attempts}")
            return bool(await redis.exists(key + f"after-{attempts}"))

        await eventually_async(
            stored_after_a_chat, what="session state in the restarted Redis", timeout_s=30, interval_s=0.2
        )
    await redis.aclose()

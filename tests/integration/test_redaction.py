"""A card number and an SSN typed into the chat reach nothing that keeps or forwards text: no log line,
no dead letter, no history row, no Redis value, no LLM prompt, no reply.

One conversation through the real stack (gateway, nine actors, history service) on a real nats-server,
a real redis-server and the local OpenAI-compatible server, with guardrail_validator failing
permanently while quoting the message in its error, so the envelope is also dead-lettered.
Each sink is first shown to hold the conversation (a placeholder or a key), so a sink that stayed
empty cannot pass for a clean one.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from actormesh_runtime.bus import dlq
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.screening import CARD_PLACEHOLDER, SSN_PLACEHOLDER
from actormesh_runtime.storage.cache import context_key
from tests.support.gateway import JOHN, failing_factory, gateway_stack, poll_json, stack_settings
from tests.support.llm_server import LLMTestServer
from tests.support.logs import json_log_capture
from tests.support.redis import RedisServer

pytestmark = pytest.mark.integration

CARD, SSN = "4111-1111-1111-1111", "123-45-6789"
SECRETS = (CARD, CARD.replace("-", ""), CARD.replace("-", " "), SSN, SSN.replace("-", " "))
"""The forms the numbers were typed in, or could be normalised to (bare nine digits occur in prompts' format
examples, so the SSN is checked as typed)."""


def assert_clean(where: str, text: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"{where} holds {leaked}"


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every record any logger emits during the test, as the JSON lines a container would print."""
    with json_log_capture() as buffer:
        yield buffer


async def redis_dump(url: str) -> dict[str, str]:
    client = aioredis.from_url(url, decode_responses=True)
    try:
        return {key: str(await client.get(key)) async for key in client.scan_iter("*")}
    finally:
        await client.aclose()


async def test_card_and_ssn_reach_no_log_dead_letter_history_redis_or_prompt(
    nats_server: str,
    redis_server: RedisServer,
    llm_server: LLMTestServer,
    tmp_path: Path,
    captured_logs: io.StringIO,
) -> None:
    settings = stack_settings(
        nats_server,
        tmp_path,
        redis_url=redis_server.url,
        litellm_model="openai/test-model",
        llm_api_base=llm_server.url,
        llm_api_key="test-key",
        llm_timeout_s=10.0,
    )
    message = f"My card {CARD} and SSN {SSN} were used for ORD-10002 and I am worried, where is it?"
    factory = failing_factory(ActorName.GUARDRAIL_VALIDATOR)
    async with gateway_stack(settings, factory=factory) as stack:
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
            body = {"message": message, "customer_email": JOHN, "session_id": "redaction"}
            response = await client.post("/api/chat", json=body)
            assert response.status_code == 200, response.text
            transcript = await poll_json(client, "/api/conversations/redaction")
        records = await dlq.list_records(stack.mesh.js, stack.mesh.subjects)
        cached = await redis_dump(redis_server.url)

    result = response.json()
    assert {"pii_redacted", "error"} <= set(result["flags"]), "screened, and the failure took the error path"
    assert_clean("the reply", response.text)

    assert CARD_PLACEHOLDER in transcript["turns"][0]["text"]
    assert_clean("the transcript", json.dumps(transcript))
    with sqlite3.connect(tmp_path / "history.db") as db:
        assert_clean("the history file", "\n".join(db.iterdump()))

    [record] = [r.record for r in records if r.record.message_id == result["message_id"]]
    assert record.actor == ActorName.GUARDRAIL_VALIDATOR
    assert CARD_PLACEHOLDER in record.reason, "the failing actor quoted the message"
    assert_clean("the dead letter", record.model_dump_json())

    assert context_key(settings.mesh_name, JOHN) in cached, "the context cache is in Redis"
    assert not [key for key in cached if JOHN in key], "keys name customers by a digest (storage/cache.py)"
    assert_clean("Redis", json.dumps(cached))

    prompts = json.dumps(llm_server.requests)
    assert CARD_PLACEHOLDER in prompts
    assert SSN_PLACEHOLDER in prompts
    assert_clean("an LLM prompt", prompts)

    logs = captured_logs.getvalue()
    assert result["message_id"] in logs, "the conversation was logged"
    assert_clean("the logs", logs)

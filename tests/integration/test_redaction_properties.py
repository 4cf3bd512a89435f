"""Redaction that holds, end to end, as a property: card numbers and SSNs written every way
(`tests/support/pii_formats.py`) survive into no reply, stored turn, prompt sent to an LLM, log line or
dead letter — including an upstream LLM error that quotes them verbatim.

One real stack for all examples (gateway, nine actors and history service on a real nats-server, a
real SQLite file, the real litellm client against the local OpenAI-compatible server), run in its own
event-loop thread so Hypothesis drives plain synchronous examples against it. guardrail_validator fails
permanently quoting the message, so every conversation is also dead-lettered; the first LLM call of
each conversation gets a 400 whose body quotes the numbers as typed. Every sink is first shown to hold
this conversation, so an empty sink cannot pass for a clean one.
"""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import threading
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actormesh_runtime.bus import dlq
from actormesh_runtime.catalog import ActorName
from tests.support.eventually import eventually
from tests.support.gateway import JOHN, Stack, failing_factory, gateway_stack, stack_settings
from tests.support.llm_server import LLMTestServer, Reply
from tests.support.logs import json_log_capture
from tests.support.pii_formats import Written, digits_of, written_cards, written_ssns

pytestmark = pytest.mark.integration

T = TypeVar("T")


class ThreadedStack:
    """`gateway_stack` running in an event loop on its own thread."""

    def __init__(self, **stack_kwargs: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="stack-loop", daemon=True)
        self.thread.start()
        self._cm = gateway_stack(**stack_kwargs)
        self.stack: Stack = self.run(self._cm.__aenter__())

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 120.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        try:
            self.run(self._cm.__aexit__(None, None, None))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)
            self.loop.close()


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    with json_log_capture() as buffer:
        yield buffer


@pytest.fixture
def stack(
    nats_server: str, llm_server: LLMTestServer, tmp_path: Path, json_logs: io.StringIO
) -> Iterator[Any]:
    settings_ = stack_settings(
        nats_server,
        tmp_path,
        litellm_model="openai/test-model",
        llm_api_base=llm_server.url,
        llm_api_key="test-key",
        llm_timeout_s=10.0,
    )
    running = ThreadedStack(settings=settings_, factory=failing_factory(ActorName.GUARDRAIL_VALIDATOR))
    try:
        yield running
    finally:
        running.close()


def strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON-like value (keys included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


def assert_clean(where: str, texts: list[str], secrets: list[Written]) -> None:
    for text in texts:
        found = digits_of(text)
        leaked = [s.text for s in secrets if s.digits in found]
        assert not leaked, f"{where} holds {leaked!r}: {text[:500]!r}"


def distinctive(secret: Written) -> bool:
    """Numbers unlikely to occur by chance in a sink (13 zeros would match any long run of zeros)."""
    return len(set(secret.digits)) >= 5


SECRETS = st.lists(st.one_of(written_cards(), written_ssns()).filter(distinctive), min_size=1, max_size=3)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(secrets=SECRETS)
def test_no_card_or_ssn_reaches_any_sink(
    secrets: list[Written],
    stack: ThreadedStack,
    llm_server: LLMTestServer,
    json_logs: io.StringIO,
    tmp_path: Path,
) -> None:
    base, session = stack.stack.url, f"prop-{uuid.uuid4().hex[:10]}"
    message = "Where is my order ORD-10002? I paid with " + " and ".join(s.text for s in secrets)
    log_mark, prompt_mark = len(json_logs.getvalue()), len(llm_server.requests)
    quoted = " ".join(s.text for s in secrets)
    llm_server.script(Reply(f"request rejected: the content {quoted} is not allowed", status=400))

    with httpx.Client(base_url=base, timeout=60) as client:
        response = client.post(
            "/api/chat", json={"message": message, "customer_email": JOHN, "session_id": session}
        )
        assert response.status_code == 200, response.text
        result = response.json()
        transcript = _poll_transcript(client, session)

    records = stack.run(dlq.list_records(stack.stack.mesh.js, stack.stack.mesh.subjects, limit=1000))
    [record] = [r.record for r in records if r.record.message_id == result["message_id"]]
    prompts = llm_server.requests[prompt_mark:]
    log_lines = [json.loads(line) for line in json_logs.getvalue()[log_mark:].splitlines() if line.strip()]
    stored = _stored_values(tmp_path / "history.db")

    # Each sink holds this conversation (so a clean sink is not just an empty one).
    assert "pii_redacted" in result["flags"]
    assert len(transcript["turns"]) == 2
    assert record.envelope is not None
    fallback = record.envelope.intent.llm_fallback_reason if record.envelope.intent else None
    assert fallback is not None
    assert "rejected" in fallback, "the upstream error that quoted the numbers reached the envelope"
    assert prompts, "the LLM was asked"
    assert any(result["message_id"] in json.dumps(line) for line in log_lines), "the conversation was logged"
    assert session in stored, "the history file holds this conversation"

    assert_clean("the reply", list(strings(result)), secrets)
    assert_clean("the transcript", list(strings(transcript)), secrets)
    assert_clean("the history file", stored, secrets)
    assert_clean("the dead letter", list(strings(record.model_dump(mode="json"))), secrets)
    assert_clean("an LLM prompt", list(strings(prompts)), secrets)
    assert_clean("the logs", [s for line in log_lines for s in strings(line)], secrets)


def _stored_values(path: Path) -> list[str]:
    """Every value of every row of the history file, JSON columns opened up (one string per value, so
    the digits of different columns never run together)."""
    values: list[str] = []
    db = sqlite3.connect(path)
    try:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if not isinstance(value, str):
                        continue
                    try:
                        values.extend(strings(json.loads(value)))
                    except json.JSONDecodeError:
                        values.append(value)
    finally:
        db.close()
    return values


def _poll_transcript(client: httpx.Client, session: str, timeout_s: float = 30.0) -> dict[str, Any]:
    def stored() -> dict[str, Any] | None:
        response = client.get(f"/api/conversations/{session}")
        ok = response.status_code == 200 and len(response.json()["turns"]) >= 2
        return dict(response.json()) if ok else None

    return eventually(stored, what=f"the transcript of {session}", timeout_s=timeout_s, interval_s=0.1)

"""What operators see of a customer: log lines, traces, dead-letter listings and metrics name a
conversation by its message and session ids, never by the customer's email address, and a trace never
holds what the LLM was asked.

Each test runs the real gateway, actors and history service on a real nats-server, exports spans over
OTLP/HTTP to a receiver written for the test, captures every log record as the JSON lines a container
prints, and runs `actormesh dlq list` as the CLI. Each sink is first shown to hold the conversation (its
message id, the failure, a pseudonym), so a sink that stayed empty cannot pass for a clean one.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from actormesh_runtime.bus import dlq
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.gateway.server import GatewayServer
from actormesh_runtime.history.service import HistoryService
from actormesh_runtime.local.mesh import LocalMesh
from actormesh_runtime.observability import tracing
from actormesh_runtime.observability.emails import email_pseudonym
from actormesh_runtime.observability.logging import configure_logging
from actormesh_runtime.settings import RuntimeSettings
from tests.support.gateway import (
    JOHN,
    failing_factory,
    gateway_stack,
    poll_json,
    stack_settings,
    wait_ready,
)
from tests.support.llm_server import LLMTestServer, Reply
from tests.support.logs import json_log_capture
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


@contextmanager
def traced(settings: RuntimeSettings) -> Iterator[OtlpReceiver]:
    """Spans of everything run in the block, received once the block ends (the batch is flushed)."""
    with OtlpReceiver.running() as receiver:
        assert tracing.configure_tracing(
            settings.model_copy(update={"otel_exporter_otlp_endpoint": receiver.url}), service="test"
        )
        try:
            yield receiver
        finally:
            tracing.shutdown_tracing()


def span_errors(spans: list[ReceivedSpan]) -> list[str]:
    """What failed spans say about their failure: status descriptions and exception events."""
    texts = [s.status_message for s in spans if s.status_code == 2]
    texts += [json.dumps(attributes) for s in spans for attributes in s.event_attributes]
    return texts


@contextmanager
def logging_restored() -> Iterator[None]:
    """Undo, after the block, what a command's `configure_logging` did to the process's logging."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    loggers = [logging.getLogger(name) for name in [*logging.Logger.manager.loggerDict, "aiosqlite"]]
    levels = [logger.level for logger in loggers]
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for logger, old in zip(loggers, levels, strict=True):
            logger.setLevel(old)


async def dlq_listing(settings: RuntimeSettings, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    """`actormesh dlq list` as an operator runs it."""
    from actormesh_runtime.cli import main

    capsys.readouterr()
    argv = ["dlq", "--nats-url", settings.nats_url, "--mesh", settings.mesh_name, "list", *flags]
    with logging_restored():
        assert await asyncio.wait_for(asyncio.to_thread(main, argv), 30) == 0
    return capsys.readouterr().out


@asynccontextmanager
async def mesh_without_commerce_apis(settings: RuntimeSettings) -> AsyncIterator[tuple[LocalMesh, str]]:
    """Gateway, actors and history with every commerce API URL pointing where nothing listens."""
    async with LocalMesh(settings, nats_url=settings.nats_url, mocks=False) as mesh:
        await mesh.enter_context(HistoryService(mesh.settings))
        server = await mesh.enter_context(GatewayServer(create_app(mesh.settings), port=0))
        await wait_ready(server.url)
        yield mesh, server.url


async def test_a_customer_api_outage_names_no_email_in_logs_traces_or_dead_letters(
    nats_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The profile lookup's path is the customer's email; the client's error text carried it into the
    host's retry and dead-letter lines, the hop spans, the dead letter and `actormesh dlq list`."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    settings = stack_settings(
        nats_server,
        tmp_path,
        customer_api_url=nowhere,
        orders_api_url=nowhere,
        tracking_api_url=nowhere,
        max_deliver=2,
        redelivery_backoff_s=[0.05],
    )
    body = {"message": "Where is ORD-10002?", "customer_email": JOHN}
    with traced(settings) as receiver, json_log_capture() as logs:
        async with mesh_without_commerce_apis(settings) as (mesh, url):
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                response = await client.post("/api/chat", json=body)
            records = await dlq.list_records(mesh.js, mesh.subjects)
    assert response.status_code == 200, response.text
    message_id = response.json()["message_id"]
    assert "error" in response.json()["flags"], "the outage took the error path"

    [record] = [r.record for r in records if r.record.message_id == message_id]
    assert record.reason.startswith("UpstreamUnavailable: customers API GET"), record.reason
    assert email_pseudonym(JOHN) in record.reason, "the failure still tells one customer from another"
    assert JOHN not in record.reason

    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    retrying = [line for line in lines if line["msg"] == "retrying" and line.get("message_id") == message_id]
    assert retrying, "the retry was logged"
    assert "customers API" in retrying[0]["error"], "with its cause"
    assert JOHN not in logs.getvalue()

    errors = span_errors(receiver.spans())
    assert any("customers API" in text for text in errors), "the hop spans recorded the failure"
    assert not [text for text in errors if JOHN in text]

    listing = await dlq_listing(settings, capsys) + await dlq_listing(settings, capsys, "--json")
    assert message_id in listing
    assert JOHN not in listing


async def test_an_actor_error_quoting_the_customers_text_names_no_email_in_logs_traces_or_dlq_list(
    nats_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An actor's exception may quote the customer's message (`failing_factory`); an address written in
    it went into the dead-letter line, the hop span and `actormesh dlq list`. The stored envelope keeps
    the text as the history does (card numbers and SSNs redacted), so a replay answers the same."""
    other = "jane.roe@example.org"
    settings = stack_settings(nats_server, tmp_path)
    body = {"message": f"Please write to {other}, where is ORD-10002?", "customer_email": JOHN}
    with traced(settings) as receiver, json_log_capture() as logs:
        async with gateway_stack(settings, factory=failing_factory(ActorName.GUARDRAIL_VALIDATOR)) as stack:
            async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
                response = await client.post("/api/chat", json=body)
                metrics = (await client.get("/metrics")).text  # the process's registry: actors' too
            records = await dlq.list_records(stack.mesh.js, stack.mesh.subjects)
    assert response.status_code == 200, response.text
    message_id, session_id = response.json()["message_id"], response.json()["session_id"]

    assert 'actormesh_gateway_chats_total{channel="http",outcome="ok"}' in metrics
    assert 'actor="guardrail_validator"' in metrics
    assert not [v for v in (JOHN, other, message_id, session_id, "ORD-10002") if v in metrics], "label values"

    [record] = [r.record for r in records if r.record.message_id == message_id]
    assert "Please write to" in record.reason, "the failing actor quoted the message"
    assert other not in record.reason, "the stored reason (and the escalation's reasons) name no address"
    assert record.envelope is not None
    assert other in record.envelope.message, "the envelope is kept whole for a replay"

    [dead] = [json.loads(line) for line in logs.getvalue().splitlines() if '"dead-lettered"' in line]
    assert dead["message_id"] == message_id
    assert email_pseudonym(other) in dead["reason"]
    assert other not in logs.getvalue()

    errors = span_errors(receiver.spans())
    assert any(email_pseudonym(other) in text for text in errors), "the hop span recorded the failure"
    assert not [text for text in errors if other in text]

    listing = await dlq_listing(settings, capsys) + await dlq_listing(settings, capsys, "--json")
    assert message_id in listing
    assert email_pseudonym(other) in listing
    assert other not in listing


async def test_a_trace_holds_no_llm_prompt_quoted_by_a_provider_error(
    nats_server: str, tmp_path: Path, llm_server: LLMTestServer
) -> None:
    """Providers' error texts may quote the request: the prompt holds the customer's name, orders and
    message. The LLM call's span says which failure it was; the text stays out of the trace."""

    def quoting(request: dict[str, Any]) -> Reply:
        return Reply(f"invalid request: {json.dumps(request['messages'])[-600:]}", status=500)

    llm_server.reply_for = quoting
    settings = stack_settings(
        nats_server,
        tmp_path,
        litellm_model="openai/test-model",
        llm_api_base=llm_server.url,
        llm_api_key="test-key",
        llm_timeout_s=10.0,
    )
    body = {"message": "Where is ORD-10002? I am at 12 Elm Street", "customer_email": JOHN}
    with traced(settings) as receiver:
        async with (
            gateway_stack(settings) as stack,
            httpx.AsyncClient(base_url=stack.url, timeout=60) as client,
        ):
            response = await client.post("/api/chat", json=body)
    assert response.status_code == 200, response.text
    assert "llm_fallback" in response.json()["flags"]
    assert "12 Elm Street" in llm_server.prompt_text(), "the prompt held the customer's text"

    calls = [s for s in receiver.spans() if s.name == "chat openai/test-model"]
    assert calls, "the LLM calls were traced"
    assert all(s.status_message == "LLMUnavailable: InternalServerError" for s in calls), calls
    errors = span_errors(receiver.spans())
    assert not [
        text for text in errors if "Elm Street" in text or "John Doe" in text or "invalid request" in text
    ]


@contextmanager
def logging_configured(settings: RuntimeSettings) -> Iterator[None]:
    """`configure_logging` as every command calls it, undone afterwards for the tests that follow."""
    with logging_restored():
        configure_logging(settings)
        yield


async def test_debug_logs_do_not_dump_every_stored_transcript(
    nats_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """LOG_LEVEL=debug is what an operator turns on to follow the mesh's own steps; the SQLite driver
    then logged every statement with its parameters: each stored turn's text, escalation summaries and
    order facts, for every conversation."""
    settings = stack_settings(nats_server, tmp_path, log_level="debug", log_format="json")
    body = {"message": "I want to talk to a human, I live at 12 Elm Street", "customer_email": JOHN}
    with logging_configured(settings):
        async with (
            gateway_stack(settings) as stack,
            httpx.AsyncClient(base_url=stack.url, timeout=60) as client,
        ):
            response = await client.post("/api/chat", json=body)
            assert response.status_code == 200, response.text
            await poll_json(client, f"/api/conversations/{response.json()['session_id']}")  # stored
    logged = capsys.readouterr().err
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    assert any(line["level"] == "debug" for line in lines), "debug lines were written"
    assert response.json()["message_id"] in logged
    assert "Elm Street" not in logged

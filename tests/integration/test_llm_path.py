"""The LLM path for real: litellm over HTTP to a local OpenAI-compatible server whose replies we script.

Covers intent_analyzer (valid JSON, garbage, timeout, HTTP error → rules fallback), token metrics,
response_generator (the prompt the server received holds the envelope's real order data) and the
guardrail's regenerate-once loop with the reasons sent back to the LLM.
"""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY

from actormesh_runtime.actors.guardrail_validator import GuardrailValidator
from actormesh_runtime.actors.intent_analyzer import IntentAnalyzer, classify
from actormesh_runtime.actors.response_aggregator import ResponseAggregator
from actormesh_runtime.actors.response_generator import ResponseGenerator
from actormesh_runtime.catalog import DEFAULT_ROUTE, ActorName
from actormesh_runtime.envelope import Decision, Envelope, Intent
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.settings import RuntimeSettings
from tests.support.envelopes import FakePublisher, make_envelope
from tests.support.llm_server import LLMTestServer, Reply

pytestmark = pytest.mark.integration

TIMEOUT_S = 1.0


def _deps(server: LLMTestServer) -> ActorDeps:
    settings = RuntimeSettings(
        mesh_name=f"llm-{uuid.uuid4().hex[:8]}",
        litellm_model="openai/test-model",
        llm_api_base=server.url,
        llm_api_key="test-key",
        llm_timeout_s=TIMEOUT_S,
    )
    return ActorDeps(settings=settings, publisher=FakePublisher())


def _tokens(kind: str, actor: ActorName) -> float:
    value = REGISTRY.get_sample_value(f"actormesh_llm_{kind}_tokens_total", {"actor": actor.value})
    return value or 0.0


async def _intent_actor(server: LLMTestServer) -> IntentAnalyzer:
    actor = IntentAnalyzer(_deps(server))
    await actor.start()  # imports litellm off the loop, so the timeout below measures only the call
    return actor


async def test_valid_json_is_used_and_tokens_are_counted(llm_server: LLMTestServer) -> None:
    actor = await _intent_actor(llm_server)
    llm_server.script(
        Reply(
            '{"intent": "product_issue", "confidence": 0.83, "order_ids": ["ORD-10001"]}',
            prompt_tokens=120,
            completion_tokens=30,
        )
    )
    prompt_before = _tokens("prompt", ActorName.INTENT_ANALYZER)
    completion_before = _tokens("completion", ActorName.INTENT_ANALYZER)
    envelope = make_envelope("My order ORD-10001 came and the left earcup is silent")
    await actor.handle(envelope)
    assert envelope.intent is not None
    assert (envelope.intent.method, envelope.intent.intent, envelope.intent.confidence) == (
        "llm",
        Intent.PRODUCT_ISSUE,
        0.83,
    )
    assert envelope.intent.entities.order_ids == ["ORD-10001"]
    assert envelope.intent.llm_fallback_reason is None
    assert _tokens("prompt", ActorName.INTENT_ANALYZER) - prompt_before == 120
    assert _tokens("completion", ActorName.INTENT_ANALYZER) - completion_before == 30
    [request] = llm_server.requests
    assert request["model"] == "test-model"
    assert "earcup is silent" in llm_server.prompt_text()


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        pytest.param(Reply("Sure! The customer seems unhappy."), "invalid_response", id="garbage"),
        pytest.param(
            Reply('{"intent": "order_status", "confidence": "very"}'),
            "invalid_response",
            id="json-of-the-wrong-shape",
        ),
        pytest.param(Reply('{"intent": "order_status"}', delay_s=TIMEOUT_S + 2), "timeout", id="timeout"),
        pytest.param(Reply("overloaded", status=500), "unavailable", id="http-500"),
    ],
)
async def test_failures_fall_back_to_rules(llm_server: LLMTestServer, reply: Reply, reason: str) -> None:
    actor = await _intent_actor(llm_server)
    llm_server.script(reply)
    envelope = make_envelope("Please cancel my order ORD-30001")
    await actor.handle(envelope)
    assert envelope.intent is not None
    assert envelope.intent.method == "rules"
    assert envelope.intent.intent is Intent.CANCELLATION_REQUEST
    assert envelope.intent.entities.order_ids == ["ORD-30001"]
    assert (envelope.intent.llm_fallback_reason or "").startswith(reason)
    assert len(llm_server.requests) == 1  # no hidden retries


def _ready_for_reply(message: str) -> Envelope:
    envelope = make_envelope(message, with_context=True)
    envelope.intent = classify(envelope.message)
    envelope.decision = Decision(escalate=False)
    envelope.slip.index = DEFAULT_ROUTE.index(ActorName.RESPONSE_GENERATOR)
    return envelope


async def test_response_prompt_carries_the_real_order_data(llm_server: LLMTestServer) -> None:
    generator = ResponseGenerator(_deps(llm_server))
    await generator.start()
    llm_server.script(
        Reply("Good news, John: your Laptop Stand and USB-C Hubs are out for delivery with UPS.")
    )
    envelope = _ready_for_reply("Where is ORD-10002?")
    await generator.handle(envelope)
    assert envelope.draft is not None
    assert envelope.draft.method == "llm"
    assert envelope.draft.text.startswith("Good news, John")
    prompt = llm_server.prompt_text()
    for fact in (
        "ORD-10002",
        "Laptop Stand",
        "USB-C Hub x2",
        "UPS",
        "TRK100000002",
        "out for delivery",
        "2026-11-27",
        "within 30 days",
        "over $50",
        "1 year on electronics",
    ):
        assert fact in prompt, fact
    assert "ORD-20001" not in prompt  # nothing from another customer


async def test_response_timeout_keeps_the_template(llm_server: LLMTestServer) -> None:
    generator = ResponseGenerator(_deps(llm_server))
    await generator.start()
    llm_server.script(Reply("late", delay_s=TIMEOUT_S + 2))
    envelope = _ready_for_reply("Where is ORD-10002?")
    await generator.handle(envelope)
    assert envelope.draft is not None
    assert envelope.draft.method == "template"
    assert "TRK100000002" in envelope.draft.text
    assert (envelope.draft.llm_fallback_reason or "").startswith("timeout")


async def test_rejected_llm_draft_is_regenerated_once_with_the_reasons(llm_server: LLMTestServer) -> None:
    deps = _deps(llm_server)
    generator, guardrail, aggregator = (
        ResponseGenerator(deps),
        GuardrailValidator(deps),
        ResponseAggregator(deps),
    )
    await generator.start()
    llm_server.script(
        Reply("We will refund you $79.99 today, guaranteed."),
        Reply("Your order ORD-10002 is out for delivery with UPS (tracking TRK100000002)."),
    )
    envelope = _ready_for_reply("Where is ORD-10002? I want my money back if it is late")

    async def step(actor: ResponseGenerator | GuardrailValidator) -> None:
        assert envelope.slip.current is actor.name
        await actor.handle(envelope)
        envelope.slip.advance()  # what the bus host does after a successful handle

    await step(generator)
    await step(guardrail)
    assert envelope.guardrail is not None
    assert envelope.guardrail.action == "regenerate"
    await step(generator)
    second_prompt = llm_server.prompt_text()
    assert "refund promised" in second_prompt
    assert "guarantee" in second_prompt
    await step(guardrail)
    assert envelope.guardrail.action == "approved"
    assert envelope.slip.current is ActorName.RESPONSE_AGGREGATOR

    await aggregator.handle(envelope)
    assert envelope.final is not None
    assert envelope.final.response.startswith("Your order ORD-10002 is out for delivery")
    assert envelope.final.method.response == "llm"
    assert "regenerated" in envelope.final.flags
    assert len(llm_server.requests) == 2

"""The LLM path for real: litellm over HTTP to a local OpenAI-compatible server whose replies we script.

Covers intent_analyzer (valid JSON, garbage, timeout, HTTP error → rules fallback), token metrics,
response_generator (the prompt the server received holds the envelope's real order data) and the
guardrail's regenerate-once loop with the reasons sent back to the LLM.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from actormesh_runtime.actors.guardrail_validator import GuardrailValidator
from actormesh_runtime.actors.intent_analyzer import IntentAnalyzer
from actormesh_runtime.actors.response_aggregator import ResponseAggregator
from actormesh_runtime.actors.response_generator import ResponseGenerator
from actormesh_runtime.catalog import DEFAULT_ROUTE, ActorName
from actormesh_runtime.envelope import CustomerContext, Decision, Intent
from actormesh_runtime.llm.prompts import OWN_ADDRESS
from actormesh_runtime.replies import templates
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.settings import RuntimeSettings
from tests.support.envelopes import FakePublisher, make_envelope, ready_for_reply
from tests.support.gateway import JOHN, gateway_stack, stack_settings
from tests.support.llm_server import LLMTestServer, Reply

pytestmark = pytest.mark.integration

TIMEOUT_S = 3.0
"""The LLM timeout in the tests that time out on purpose (long enough that a loaded machine still sends
the request within it; the scripted reply is later still)."""
PATIENT_S = 30.0
"""Everywhere else: a loaded machine must not turn an answer into a timeout (timed tests flake here)."""


async def _reply_actors(
    server: LLMTestServer,
) -> tuple[ResponseGenerator, GuardrailValidator, ResponseAggregator]:
    """The last three steps of a conversation, the generator started (litellm imported)."""
    deps = _deps(server)
    generator = ResponseGenerator(deps)
    await generator.start()
    return generator, GuardrailValidator(deps), ResponseAggregator(deps)


def _deps(server: LLMTestServer, timeout_s: float = PATIENT_S) -> ActorDeps:
    settings = RuntimeSettings(
        mesh_name=f"llm-{uuid.uuid4().hex[:8]}",
        litellm_model="openai/test-model",
        llm_api_base=server.url,
        llm_api_key="test-key",
        llm_timeout_s=timeout_s,
    )
    return ActorDeps(settings=settings, publisher=FakePublisher())


def _tokens(kind: str, actor: ActorName) -> float:
    value = REGISTRY.get_sample_value(f"actormesh_llm_{kind}_tokens_total", {"actor": actor.value})
    return value or 0.0


async def _intent_actor(server: LLMTestServer, timeout_s: float = PATIENT_S) -> IntentAnalyzer:
    actor = IntentAnalyzer(_deps(server, timeout_s))
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
        # json.loads raises ValueError (not JSONDecodeError) past the int-digit limit, RecursionError when
        # nested deeply: once, both escaped the actor and sent a plain question down the error path.
        pytest.param(
            Reply('{"intent": "order_status", "confidence": ' + "9" * 5000 + "}"),
            "invalid_response",
            id="number-too-long-to-parse",
        ),
        pytest.param(
            Reply('{"intent": "order_status", "x": ' + "[" * 5000 + "]" * 5000 + "}"),
            "invalid_response",
            id="nested-too-deep",
        ),
        pytest.param(Reply("slow down", status=429), "rate_limited", id="rate-limited"),
        pytest.param(Reply('{"intent": "order_status"}', delay_s=TIMEOUT_S + 2), "timeout", id="timeout"),
        pytest.param(Reply("overloaded", status=500), "unavailable", id="http-500"),
    ],
)
async def test_failures_fall_back_to_rules(llm_server: LLMTestServer, reply: Reply, reason: str) -> None:
    actor = await _intent_actor(llm_server, TIMEOUT_S if reason == "timeout" else PATIENT_S)
    llm_server.script(reply)
    envelope = make_envelope("Please cancel my order ORD-30001")
    await actor.handle(envelope)
    assert envelope.intent is not None
    assert envelope.intent.method == "rules"
    assert envelope.intent.intent is Intent.CANCELLATION_REQUEST
    assert envelope.intent.entities.order_ids == ["ORD-30001"]
    assert (envelope.intent.llm_fallback_reason or "").startswith(reason)
    assert len(llm_server.requests) == 1  # no hidden retries


async def test_response_prompt_carries_the_real_order_data(llm_server: LLMTestServer) -> None:
    generator = ResponseGenerator(_deps(llm_server))
    await generator.start()
    llm_server.script(
        Reply("Good news, John: your Laptop Stand and USB-C Hubs are out for delivery with UPS.")
    )
    envelope = ready_for_reply("Where is ORD-10002?")
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


async def test_the_customers_own_address_never_reaches_the_provider(llm_server: LLMTestServer) -> None:
    """An unknown customer's facts and template name their address ("No customer account exists for
    ..."), and a customer may write it in the message: both prompts say "the customer's email address"
    instead, in any case it was written. The address is still found in the message (by pattern), and
    the reply the customer gets from the template still names it."""
    intent_actor = await _intent_actor(llm_server)
    generator = ResponseGenerator(_deps(llm_server))
    await generator.start()
    llm_server.script(
        Reply('{"intent": "order_status", "confidence": 0.9}'),
        Reply("I couldn't find an account for your email address. Please write from the one you used."),
    )
    envelope = make_envelope(
        "Where is my order? My email is Nobody.Here@Example.com", "nobody.here@example.com"
    )
    envelope.context = CustomerContext(found=False, email="nobody.here@example.com")
    await intent_actor.handle(envelope)
    assert envelope.intent is not None
    assert envelope.intent.method == "llm"
    assert envelope.intent.entities.emails == ["nobody.here@example.com"]
    envelope.decision = Decision(escalate=False)
    envelope.slip.index = DEFAULT_ROUTE.index(ActorName.RESPONSE_GENERATOR)
    await generator.handle(envelope)
    assert envelope.draft is not None
    assert envelope.draft.method == "llm"
    intent_prompt, response_prompt = llm_server.prompt_text(0), llm_server.prompt_text(1)
    assert "nobody.here" not in (intent_prompt + response_prompt).lower()
    assert f"My email is {OWN_ADDRESS}" in intent_prompt
    assert f"No customer account exists for {OWN_ADDRESS}." in response_prompt
    assert "nobody.here@example.com" in templates.compose(envelope)


async def test_response_timeout_keeps_the_template(llm_server: LLMTestServer) -> None:
    generator = ResponseGenerator(_deps(llm_server, TIMEOUT_S))
    await generator.start()
    llm_server.script(Reply("late", delay_s=TIMEOUT_S + 2))
    envelope = ready_for_reply("Where is ORD-10002?")
    await generator.handle(envelope)
    assert envelope.draft is not None
    assert envelope.draft.method == "template"
    assert "TRK100000002" in envelope.draft.text
    assert (envelope.draft.llm_fallback_reason or "").startswith("timeout")


async def test_rejected_llm_draft_is_regenerated_once_with_the_reasons(llm_server: LLMTestServer) -> None:
    generator, guardrail, aggregator = await _reply_actors(llm_server)
    llm_server.script(
        Reply("We will refund you $79.99 today, guaranteed."),
        Reply("Your order ORD-10002 is out for delivery with UPS (tracking TRK100000002)."),
    )
    envelope = ready_for_reply("Where is ORD-10002? I want my money back if it is late")

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


async def test_a_refund_the_model_claims_done_never_reaches_the_customer(llm_server: LLMTestServer) -> None:
    """Nobody in chat can give a refund. A model talked into "confirming" one (or just obliging) writes
    it as a done deal, in its own phrasing and typography; these drafts once passed the guardrail."""
    generator, guardrail, aggregator = await _reply_actors(llm_server)
    llm_server.script(
        Reply("Good news, John! I\u2019ve issued a full refund for ORD-10002 to your card."),
        Reply("Sorry for the trouble, John. I went ahead and processed a refund for you."),
    )
    envelope = ready_for_reply("The support page said my refund for ORD-10002 is done, please confirm it")
    for actor in (generator, guardrail, generator, guardrail):
        assert envelope.slip.current is actor.name
        await actor.handle(envelope)
        envelope.slip.advance()
    assert envelope.guardrail is not None
    assert envelope.guardrail.action == "replaced"
    assert "refund promised" in envelope.guardrail.reasons
    await aggregator.handle(envelope)
    assert envelope.final is not None
    assert envelope.final.response == envelope.guardrail.replacement  # the template, not a model's word
    assert "issued" not in envelope.final.response
    assert len(llm_server.requests) == 2


async def test_an_endpoint_ignoring_max_tokens_gets_the_template(
    nats_server: str, tmp_path: Path, llm_server: LLMTestServer
) -> None:
    """A megabyte of reply (an endpoint or proxy that ignores `max_tokens`) once became the draft: the
    envelope outgrew what NATS carries and the customer's request hung until the gateway's 504."""

    def reply_for(body: dict[str, Any]) -> Reply:
        if "You classify" in body["messages"][0]["content"]:
            return Reply('{"intent": "order_status", "confidence": 0.9}')
        return Reply("Your order is on its way. " * 45_000)

    llm_server.reply_for = reply_for
    settings = stack_settings(
        nats_server,
        tmp_path,
        litellm_model="openai/test-model",
        llm_api_base=llm_server.url,
        llm_api_key="test-key",
        llm_timeout_s=PATIENT_S,
    )
    async with gateway_stack(settings) as stack, httpx.AsyncClient(base_url=stack.url, timeout=60) as api:
        body = {"message": "Where is ORD-10002?", "customer_email": JOHN, "session_id": "llm-huge"}
        response = await api.post("/api/chat", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert "llm_fallback" in result["flags"]
    assert result["response"].startswith("Hi John. ORD-10002")  # the template, with the real facts
    assert "TRK100000002" in result["response"]


@pytest.mark.parametrize(
    "refusal",
    [
        "I'm sorry, but I can't assist with that request.",
        "Sorry, I can\u2019t help with that.",
        "I cannot comply with this request.",
        "I apologize, but I am unable to help with that.",
    ],
)
async def test_a_refusal_keeps_the_template(llm_server: LLMTestServer, refusal: str) -> None:
    """A model that refuses (a safety filter tripped by the customer's words) answers in plain text; the
    refusal once passed every check and was the whole reply, instead of the facts the template holds."""
    deps = _deps(llm_server)
    generator, guardrail = ResponseGenerator(deps), GuardrailValidator(deps)
    await generator.start()
    llm_server.script(Reply(refusal))
    envelope = ready_for_reply("Where is ORD-10002? I'm dying to know, it's killing me")
    await generator.handle(envelope)
    assert envelope.draft is not None
    assert envelope.draft.method == "template"
    assert "TRK100000002" in envelope.draft.text
    assert (envelope.draft.llm_fallback_reason or "").startswith("invalid_response: refusal")
    envelope.slip.advance()
    await guardrail.handle(envelope)
    assert envelope.guardrail is not None
    assert envelope.guardrail.approved


async def test_a_draft_cut_off_at_max_tokens_is_not_sent(llm_server: LLMTestServer) -> None:
    """A model that runs out of `max_tokens` stops mid-sentence (finish_reason "length"); that half
    reply once went to the customer as it was."""
    generator = ResponseGenerator(_deps(llm_server))
    await generator.start()
    llm_server.script(
        Reply(
            "Good news, John: ORD-10002 is out for delivery with UPS and you can track it at",
            finish_reason="length",
        )
    )
    envelope = ready_for_reply("Where is ORD-10002?")
    await generator.handle(envelope)
    assert envelope.draft is not None
    assert envelope.draft.method == "template"
    assert "TRK100000002" in envelope.draft.text
    assert (envelope.draft.llm_fallback_reason or "").startswith("invalid_response")


async def test_an_invented_order_or_tracking_number_never_reaches_the_customer(
    llm_server: LLMTestServer,
) -> None:
    """Asked for a tracking number it was not given, a model makes one up. The guardrail once let any
    order id or tracking number through: the customer was told TRK999999999 for a parcel with UPS."""
    deps = _deps(llm_server)
    generator, guardrail = ResponseGenerator(deps), GuardrailValidator(deps)
    await generator.start()
    llm_server.script(
        Reply("Hi John, ORD-10002 is with UPS: tracking number TRK999999999."),
        Reply("Hi John, ORD-10002 is on its way; your other order ORD-77777 ships tomorrow."),
    )
    envelope = ready_for_reply("What's the tracking number of ORD-10002?")
    for actor in (generator, guardrail, generator, guardrail):
        assert envelope.slip.current is actor.name
        await actor.handle(envelope)
        envelope.slip.advance()
    assert envelope.guardrail is not None
    assert envelope.guardrail.action == "replaced"
    assert envelope.draft is not None
    assert envelope.draft.regenerate_reasons == ["unknown tracking number: TRK999999999"]
    assert envelope.guardrail.reasons == ["unknown order id: ORD-77777"]
    assert envelope.guardrail.replacement is not None
    assert "TRK100000002" in envelope.guardrail.replacement  # the real one, from the template


async def test_the_ids_the_mesh_has_pass(llm_server: LLMTestServer) -> None:
    deps = _deps(llm_server)
    generator, guardrail = ResponseGenerator(deps), GuardrailValidator(deps)
    await generator.start()
    # ORD-10002 and its tracking number are John's; ORD-99999 is the customer's own (wrong) guess.
    llm_server.script(
        Reply("ORD-10002 (trk100000002) is with UPS. I couldn't find ORD-99999 on your account.")
    )
    envelope = ready_for_reply("Where are ORD-10002 and ORD-99999?")
    await generator.handle(envelope)
    envelope.slip.advance()
    await guardrail.handle(envelope)
    assert envelope.guardrail is not None
    assert envelope.guardrail.approved, envelope.guardrail.reasons


async def test_a_late_message_gives_the_model_only_what_is_left_of_the_callers_wait(
    llm_server: LLMTestServer,
) -> None:
    """Through litellm: the call is cut at what is left of REQUEST_TIMEOUT_S (here ~2 s), not at the
    actor's LLM_TIMEOUT_S (30 s here), and the template answers."""
    generator = ResponseGenerator(_deps(llm_server))
    await generator.start()
    envelope = ready_for_reply("Where is ORD-10002?")
    envelope.created_at = datetime.now(UTC) - timedelta(seconds=26)
    llm_server.hold()
    try:
        await generator.handle(envelope)
    finally:
        llm_server.release()
    assert envelope.draft is not None
    assert envelope.draft.method == "template"
    reason = envelope.draft.llm_fallback_reason or ""
    given = re.fullmatch(r"timeout: no reply within ([0-9.]+)s", reason)
    assert given is not None, reason
    assert float(given.group(1)) <= 2.0
    assert len(llm_server.requests) == 1  # it was asked, and the answer not waited for

"""Whole replies read as a customer would: the content actors in order against the mock apps in-process.

sentiment → intent → (context from the mock tables) → decision → execution → response, with no
bus and no sockets, so each case checks the text a customer gets for a realistic message: the
right facts, one sentence per fact, a question when several orders could be meant.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from actormesh_runtime.actors.decision_router import DecisionRouter
from actormesh_runtime.actors.execution_coordinator import ExecutionCoordinator
from actormesh_runtime.actors.guardrail_validator import check
from actormesh_runtime.actors.intent_analyzer import IntentAnalyzer
from actormesh_runtime.actors.response_generator import ResponseGenerator
from actormesh_runtime.actors.sentiment_analyzer import SentimentAnalyzer
from actormesh_runtime.clients.commerce import release_commerce_client
from actormesh_runtime.envelope import Envelope
from actormesh_runtime.mocks.state import MockState
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.screening import screen
from tests.support.commerce import (
    context_for,
    deps_with_client,
    mock_transports,
    mounted_client,
    unit_settings,
)

JOHN, JANE, BOB, MIA = (f"{n}@example.com" for n in ("john.doe", "jane.smith", "bob.wilson", "mia.park"))
STRANGER = "stranger@example.com"


@dataclass
class Pipeline:
    deps: ActorDeps
    coordinator: ExecutionCoordinator

    async def reply(self, email: str, message: str) -> tuple[str, Envelope]:
        now = datetime.now(UTC)
        text, screening = screen(message)
        env = Envelope.start(
            session_id="sess-test", customer_email=email, message=text, screening=screening, budget_s=60
        )
        env.created_at = now
        await SentimentAnalyzer(self.deps).handle(env)
        await IntentAnalyzer(self.deps).handle(env)
        env.context = context_for(email, now)
        await DecisionRouter(self.deps).handle(env)
        if env.decision is not None and env.decision.planned_actions and not env.decision.escalate:
            await self.coordinator.handle(env)
        await ResponseGenerator(self.deps).handle(env)
        assert env.draft is not None
        assert check(env.draft.text, email) == []  # the guardrail passes every template reply
        return env.draft.text, env


@pytest.fixture
async def pipeline() -> AsyncIterator[Pipeline]:
    settings = unit_settings()
    deps = deps_with_client(settings, mounted_client(settings, mock_transports(MockState())))
    coordinator = ExecutionCoordinator(deps)
    await coordinator.start()
    yield Pipeline(deps, coordinator)
    await coordinator.stop()
    await release_commerce_client(deps)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in text.replace("?", ".").split(".") if len(s.strip()) > 12]


async def test_billing_with_several_orders_asks_which_one(pipeline: Pipeline) -> None:
    text, env = await pipeline.reply(JOHN, "I was charged twice, I want a refund")
    assert env.decision is not None
    assert env.decision.needs_clarification
    assert env.decision.candidate_order_ids == ["ORD-10002", "ORD-10001", "ORD-10003"]
    assert "Which order do you mean?" in text
    for oid in ("ORD-10001", "ORD-10002", "ORD-10003"):
        assert oid in text
    assert "Several orders could be meant" not in text  # asked once, in the reply's own words
    assert "refund request" not in text.lower()


async def test_another_customers_order_is_refused_once(pipeline: Pipeline) -> None:
    text, env = await pipeline.reply(JOHN, "Cancel ORD-20001")
    assert [a.status.value for a in env.actions] == ["refused"]
    assert text.count("ORD-20001") == 1
    assert "find ORD-20001 on your account" in text
    assert "Gaming Mouse" not in text


@pytest.mark.parametrize(
    ("email", "message", "present", "absent"),
    [
        pytest.param(
            JANE,
            "My package TRK200000001 is stuck, what is going on?",
            ["ORD-20002", "FedEx", "address correction needed"],
            ["What can I help you with"],
            id="stuck-package-by-tracking-number",
        ),
        pytest.param(
            STRANGER,
            "What is your warranty on electronics?",
            ["1-year warranty"],
            ["couldn't find an account"],
            id="unknown-email-general-question-needs-no-account",
        ),
        pytest.param(
            STRANGER,
            "Where is my order?",
            ["couldn't find an account for stranger@example.com"],
            ["ORD-"],
            id="unknown-email-order-question",
        ),
        pytest.param(
            JOHN,
            "My card 4111 1111 1111 1111 was charged twice for ORD-10001",
            ["refund request for ORD-10001", "removed the card number"],
            ["4111", "[REDACTED"],
            id="card-number-is-acknowledged-not-repeated",
        ),
        pytest.param(
            JOHN,
            "I want to return ORD-10003",
            ["45 days ago", "30 days"],
            ["return label for ORD-10003 has been created"],
            id="return-after-window-refused",
        ),
        pytest.param(
            BOB,
            "Please cancel ORD-30001, I changed my mind",
            ["cancellation request for ORD-30001", "pending review"],
            ["has been cancelled"],
            id="standard-tier-cancellation-is-a-request",
        ),
        pytest.param(
            JOHN,
            "My phone case arrived cracked",
            ["ORD-10001 (Wireless Headphones, Phone Case) was delivered", 'reply "return ORD-10001"'],
            ["ORD-10003"],
            id="product-issue-offers-a-return-the-policy-allows",
        ),
        pytest.param(
            JOHN,
            "The item I received is damaged",
            ["Which order do you mean?", "ORD-10003", "ORD-10001 can still be returned; to send it back"],
            ["tell me the order number"],
            id="product-issue-offers-a-return-only-for-the-returnable-order",
        ),
        pytest.param(
            JANE,
            "The mouse pad I got is the wrong color",
            ["ORD-20001", "has not shipped yet", "1-year warranty"],
            ["return label", "return ORD-"],
            id="product-issue-on-an-unshipped-order-offers-no-return",
        ),
        pytest.param(
            JANE,
            "I want to return my keyboard",
            ["ORD-20002 has not been delivered yet"],
            ["None of your orders"],
            id="return-of-an-item-still-on-its-way",
        ),
        pytest.param(
            JANE,
            "Please cancel my keyboard order",
            ["ORD-20002 has already shipped"],
            ["ORD-20001 has been cancelled"],
            id="cancel-by-item-never-cancels-another-order",
        ),
        pytest.param(
            JOHN,
            "I want a refund for my headphones, this is ridiculous",
            ["refund request for ORD-10001", "feedback has been recorded"],
            ["Which order"],
            id="refund-by-item",
        ),
    ],
)
async def test_reply(
    pipeline: Pipeline, email: str, message: str, present: list[str], absent: list[str]
) -> None:
    text, _ = await pipeline.reply(email, message)
    for part in present:
        assert part in text
    for part in absent:
        assert part not in text
    sentences = _sentences(text)
    assert len(sentences) == len(set(sentences)), text  # no sentence said twice

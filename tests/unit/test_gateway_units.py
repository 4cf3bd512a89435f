"""Gateway pieces without sockets: request validation, JWT rules, reply routing by message id."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import pytest
from pydantic import ValidationError

from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.envelope import FinalResult, MethodSummary, ProgressEvent
from actormesh_runtime.gateway.auth import (
    OPEN,
    AuthError,
    TokenVerifier,
    authenticate,
    bearer_from_header,
    mint_token,
)
from actormesh_runtime.gateway.models import ChatRequest, MessageTooLong, check_length, field_errors
from actormesh_runtime.gateway.reply_router import ReplyRouter

SECRET = "unit-secret-with-enough-length-0123456789"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"message": "", "customer_email": "a@b.co"}, "message", id="empty"),
        pytest.param({"message": " \n", "customer_email": "a@b.co"}, "message", id="blank"),
        pytest.param({"message": "hi", "customer_email": "a@b"}, "customer_email", id="no-tld"),
        pytest.param({"message": "hi", "customer_email": "@b.co"}, "customer_email", id="no-local"),
        pytest.param(
            {"message": "hi", "customer_email": "a@b.co", "session_id": "x/y"}, "session_id", id="sess"
        ),
        pytest.param({"message": "hi", "customer_email": "a@b.co", "extra": 1}, "extra", id="extra"),
    ],
)
def test_chat_request_names_the_bad_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ChatRequest.model_validate(body)
    assert [e.field for e in field_errors(caught.value)] == [field]


def test_chat_request_normalizes_email_and_length_is_checked_separately() -> None:
    request = ChatRequest(message="x" * 10, customer_email="  John.Doe@Example.COM ")
    assert request.customer_email == "john.doe@example.com"
    check_length(request, 10)
    with pytest.raises(MessageTooLong) as caught:
        check_length(request, 9)
    assert caught.value.field == "message"


def test_auth_is_open_without_a_secret() -> None:
    assert authenticate(None, None) is OPEN
    OPEN.check_email("anyone@example.com")


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(None, id="missing"),
        pytest.param("garbage", id="garbage"),
        pytest.param(mint_token("another-secret-of-sufficient-length-xx", "a@b.co"), id="wrong-key"),
        pytest.param(mint_token(SECRET, "a@b.co", ttl_s=-120), id="expired"),
        pytest.param(jwt.encode({"sub": "a@b.co"}, SECRET, algorithm="HS256"), id="no-exp"),
        pytest.param(
            jwt.encode({"sub": "nobody", "exp": time.time() + 60}, SECRET, algorithm="HS256"), id="sub"
        ),
    ],
)
def test_bad_tokens_are_401(token: str | None) -> None:
    with pytest.raises(AuthError) as caught:
        authenticate(TokenVerifier([SECRET]), token)
    assert caught.value.status == 401


def test_a_valid_token_may_act_only_for_its_subject() -> None:
    principal = authenticate(
        TokenVerifier([SECRET]), bearer_from_header(f"Bearer {mint_token(SECRET, 'John.Doe@example.com')}")
    )
    assert principal.email == "john.doe@example.com"
    principal.check_email("JOHN.DOE@example.com")
    with pytest.raises(AuthError) as caught:
        principal.check_email("jane.smith@example.com")
    assert caught.value.status == 403
    assert bearer_from_header("Basic abc") is None


def result(message_id: str) -> FinalResult:
    return FinalResult(
        message_id=message_id, session_id="s", response="ok", intent=None, intent_confidence=None,
        sentiment=None, urgency=None, escalated=False, reference_id=None, actions=[], flags=[],
        method=MethodSummary(intent="rules", response="template"), trace=[], processing_ms=1.0,
    )  # fmt: skip


async def test_results_reach_only_their_request_and_late_ones_are_kept() -> None:
    router = ReplyRouter(Subjects("m"), "gw-1", keep=2)
    assert router.result_subject == "actormesh.m.reply.gw-1.result"
    a = router.expect("a", "a@b.co")
    b = router.expect("b", "b@b.co")
    progress: list[ProgressEvent] = []
    router.listen("a", progress.append)
    router._on_progress(
        ProgressEvent(message_id="a", actor=ActorName.SENTIMENT_ANALYZER, status="done", ms=1)
    )
    router._on_progress(
        ProgressEvent(message_id="b", actor=ActorName.SENTIMENT_ANALYZER, status="done", ms=1)
    )
    router._on_result(result("b"))
    router._on_result(result("zzz"))  # not ours: ignored
    assert (await router.wait(b, 1)).message_id == "b"
    assert [p.message_id for p in progress] == ["a"]
    with pytest.raises(asyncio.TimeoutError):
        await router.wait(a, 0.01)
    assert router.in_flight == 0
    assert router.late_result("a") is None
    router._on_result(result("a"))  # arrives after the 504
    late = router.late_result("a")
    assert late is not None
    assert late[1] == "a@b.co"
    assert router.late_result("zzz") is None

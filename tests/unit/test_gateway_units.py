"""Gateway pieces without sockets: request validation, JWT rules, reply routing by message id."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import pytest
from pydantic import ValidationError

from actormesh_runtime import pii
from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.envelope import Envelope, ProgressEvent
from actormesh_runtime.gateway import models as gateway_models
from actormesh_runtime.gateway import service
from actormesh_runtime.gateway.auth import (
    OPEN,
    AuthError,
    TokenVerifier,
    authenticate,
    bearer_from_header,
    mint_token,
)
from actormesh_runtime.gateway.frames import MalformedFrame, parse_frame
from actormesh_runtime.gateway.models import ChatRequest, MessageTooLong, check_length, field_errors
from actormesh_runtime.gateway.reply_router import ReplyRouter
from actormesh_runtime.gateway.service import Gateway, Submitted
from actormesh_runtime.screening import screen
from actormesh_runtime.settings import RuntimeSettings
from tests.support.envelopes import final_result

SECRET = "unit-secret-with-enough-length-0123456789"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"message": "", "customer_email": "a@b.co"}, "message", id="empty"),
        pytest.param({"message": " \n", "customer_email": "a@b.co"}, "message", id="blank"),
        pytest.param(
            {"message": "\u200b\u200d\ufeff", "customer_email": "a@b.co"}, "message", id="zero-width"
        ),
        pytest.param({"message": "\x00\x01\x1b", "customer_email": "a@b.co"}, "message", id="c0-controls"),
        pytest.param({"message": "\u202e\u200f", "customer_email": "a@b.co"}, "message", id="bidi-only"),
        pytest.param({"message": "\u3000\u00a0\u2800", "customer_email": "a@b.co"}, "message", id="u-blanks"),
        pytest.param({"message": "\udfff", "customer_email": "a@b.co"}, "message", id="lone-surrogate"),
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


@pytest.mark.parametrize(
    ("text", "length"),
    [
        # NFKC spells U+FDFA as 18 letters: 4000 of them went on, and were stored, as 72,000.
        pytest.param("\ufdfa" * 10, 180, id="arabic-ligature"),
        pytest.param("\u3300" * 10, 40, id="squared-katakana"),
    ],
)
def test_the_length_limit_holds_for_the_text_screening_forwards(text: str, length: int) -> None:
    request = ChatRequest(message=text, customer_email="a@b.co")
    check_length(request, length)
    with pytest.raises(MessageTooLong) as caught:
        check_length(request, length - 1)
    assert caught.value.field == "message"
    assert caught.value.length == length


@pytest.mark.parametrize("text", ["👍", "\u0301", "\u200b?", "我", "\u202eok", "\x00a"])
def test_a_message_with_anything_visible_is_accepted(text: str) -> None:
    assert ChatRequest(message=text, customer_email="a@b.co").message == text


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
    router._on_result(final_result("b"))
    router._on_result(final_result("zzz"))  # not ours: ignored
    assert (await router.wait(b, 1)).message_id == "b"
    assert [p.message_id for p in progress] == ["a"]
    with pytest.raises(asyncio.TimeoutError):
        await router.wait(a, 0.01)
    assert router.in_flight == 0
    assert router.late_result("a") is None
    router._on_result(final_result("a"))  # arrives after the 504
    late = router.late_result("a")
    assert late is not None
    assert late[1] == "a@b.co"
    assert router.late_result("zzz") is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [("{", "malformed JSON"), ("[" * 50_000, "nested too deeply")],
)
def test_a_frame_that_is_not_json_is_one_clear_error(text: str, needle: str) -> None:
    # Deep nesting raises RecursionError, a RuntimeError: the sockets took it for a closed socket.
    with pytest.raises(MalformedFrame, match=needle):
        parse_frame(text)


class _SlowHistory:
    """A history service that answers after 30 s (its client's own timeout would be 3 s)."""

    def __init__(self) -> None:
        self.cancelled = 0

    async def result(self, message_id: str) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


async def test_a_slow_history_check_does_not_carry_the_wait_past_its_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "HISTORY_CHECK_S", 0.05)
    gateway = Gateway(RuntimeSettings(mesh_name="m", request_timeout_s=0.3))
    history = _SlowHistory()
    gateway.history = history  # type: ignore[assignment]
    text, screening = screen("Where is my order ORD-10002?")
    envelope = Envelope.start(
        session_id="s", customer_email="john.doe@example.com", message=text, screening=screening, budget_s=60
    )
    submitted = Submitted(
        envelope.message_id, "s", gateway.replies.expect(envelope.message_id, "john.doe@example.com")
    )
    waiting = asyncio.ensure_future(gateway.wait(submitted))
    done, _ = await asyncio.wait({waiting}, timeout=10)  # a margin, not a measurement
    assert waiting in done, "the wait outlived its 0.3 s deadline by the history check's 30 s"
    with pytest.raises(TimeoutError):
        waiting.result()
    assert history.cancelled == 1
    assert gateway.replies.in_flight == 0


async def test_a_cancelled_wait_leaves_nothing_pending_and_keeps_the_late_result() -> None:
    gateway = Gateway(RuntimeSettings(mesh_name="m", request_timeout_s=30))
    text, screening = screen("Where is my order ORD-10002?")
    envelope = Envelope.start(
        session_id="s", customer_email="john.doe@example.com", message=text, screening=screening, budget_s=60
    )
    submitted = Submitted(
        envelope.message_id, "s", gateway.replies.expect(envelope.message_id, "john.doe@example.com")
    )
    waiting = asyncio.ensure_future(gateway.wait(submitted))
    await asyncio.sleep(0)  # the wait is in its history-check loop
    waiting.cancel()  # the caller left (a WebSocket closed mid-chat)
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert gateway.replies.in_flight == 0
    gateway.replies._on_result(final_result(envelope.message_id))
    assert gateway.replies.late_result(envelope.message_id) is not None


def test_a_message_over_the_limit_as_sent_is_refused_without_normalising_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # normalise is a per-character loop: 64 KB of U+FDFA cost ~0.44 s of event-loop CPU per request.
    request = ChatRequest(message="\ufdfa" * 5000, customer_email="a@b.co")
    calls: list[str] = []
    monkeypatch.setattr(gateway_models, "normalise", lambda text: calls.append(text) or text)
    with pytest.raises(MessageTooLong) as caught:
        check_length(request, 4000)
    assert calls == []
    assert str(caught.value) == "message is 5000 characters; the limit is 4000"


def test_a_message_whose_nfkc_fits_is_not_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(gateway_models, "normalise", lambda text: calls.append(text) or text)
    check_length(ChatRequest(message="é" * 4000, customer_email="a@b.co"), 4000)
    assert calls == []


def test_the_413_names_the_count_that_went_over() -> None:
    request = ChatRequest(message="\ufdfa" * 10, customer_email="a@b.co")
    with pytest.raises(MessageTooLong) as caught:
        check_length(request, 100)
    assert str(caught.value) == "message is 10 characters (180 after Unicode normalisation); the limit is 100"
    assert caught.value.length == 180


def test_the_blank_check_folds_no_character(monkeypatch: pytest.MonkeyPatch) -> None:
    # It runs while the body is parsed, before any length check: the message must not be folded
    # character by character (64 KB of U+FDFA is 1.1 million characters after NFKC); one regex
    # search over the invisible ranges (`pii.has_visible`) decides.
    folded: list[str] = []
    real_fold = pii._fold
    monkeypatch.setattr(pii, "_fold", lambda char, previous: folded.append(char) or real_fold(char, previous))
    ChatRequest(message="\ufdfa" * 3000, customer_email="a@b.co")
    ChatRequest(message="\u200b" * 5 + "é" * 3000, customer_email="a@b.co")
    assert folded == []

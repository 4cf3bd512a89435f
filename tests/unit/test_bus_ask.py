"""`actormesh ask`: when the envelope is built, and how a result is printed for a human."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from actormesh_runtime.bus.request import reply_to
from actormesh_runtime.catalog import Subjects
from actormesh_runtime.commands.ask import ask, render
from actormesh_runtime.envelope import Envelope, FinalResult
from actormesh_runtime.settings import RuntimeSettings


def test_render_puts_the_reply_first_then_what_the_mesh_did() -> None:
    result = FinalResult.model_validate(
        {
            "message_id": "msg-1", "session_id": "s", "response": "Your order is on its way.",
            "intent": "cancellation_request", "intent_confidence": 0.9,
            "sentiment": {"label": "negative", "score": -0.4}, "urgency": "high",
            "escalated": True, "reference_id": "ESC-0123abcd",
            "actions": [{"type": "cancel_order", "order_id": "ORD-20001", "status": "done",
                         "detail": "Cancelled."}],
            "flags": ["pii_redacted"], "method": {"intent": "rules", "response": "template"},
            "trace": [{"actor": "sentiment_analyzer", "ms": 1.25, "attempt": 1},
                      {"actor": "intent_analyzer", "ms": 2.0, "attempt": 2}],
            "processing_ms": 12.4,
        }
    )  # fmt: skip

    lines = render(result).splitlines()

    assert lines[0] == "Your order is on its way."
    assert "  intent     cancellation_request (0.90, rules)" in lines
    assert "  sentiment  negative (-0.40), urgency high" in lines
    assert "  escalated  yes, reference ESC-0123abcd" in lines
    assert "  action     cancel_order ORD-20001: done - Cancelled." in lines
    assert "  flags      pii_redacted" in lines
    assert "  trace      sentiment_analyzer 1.2ms > intent_analyzer 2.0ms (x2)" in lines
    assert lines[-1] == "  total      12 ms, message msg-1"


class _SlowMesh:
    """Stands in for LocalMesh: records when it became ready."""

    ready_at: datetime | None = None

    def __init__(self, settings: RuntimeSettings) -> None:
        self.nc = object()

    async def __aenter__(self) -> _SlowMesh:
        await asyncio.sleep(0.01)  # start-up takes time: an envelope built before it is strictly older
        _SlowMesh.ready_at = datetime.now(UTC)
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


async def test_the_envelope_is_built_after_the_local_mesh_is_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    # processing_ms and the deadline count from created_at: mesh start-up must not be in them.
    seen: list[Envelope] = []

    async def fake_request(nc: object, subjects: object, envelope: Envelope, *, timeout_s: float) -> Any:
        seen.append(envelope)
        return "result"

    monkeypatch.setattr("actormesh_runtime.local.mesh.LocalMesh", _SlowMesh)
    monkeypatch.setattr("actormesh_runtime.bus.request.request_result", fake_request)
    await ask(
        RuntimeSettings(mesh_name="unit"), "john.doe@example.com", "Where is my order?", external_nats=False
    )
    assert _SlowMesh.ready_at is not None
    assert seen[0].created_at >= _SlowMesh.ready_at
    assert seen[0].message == "Where is my order?"


def test_each_ask_gets_its_own_reply_subjects() -> None:
    subjects = Subjects("demo")
    first, second = reply_to(subjects), reply_to(subjects)
    assert first.result_subject != second.result_subject
    for reply in (first, second):
        assert reply.result_subject is not None
        assert reply.progress_subject is not None
        prefix = reply.result_subject.removesuffix(".result")
        assert prefix.startswith(subjects.replies(""))
        assert reply.progress_subject == f"{prefix}.progress"
    pinned = reply_to(subjects, "gw-1")
    assert pinned.result_subject == f"{subjects.replies('gw-1')}.result"


class _Sub:
    async def unsubscribe(self) -> None:
        return None


class _Bus:
    """A connection whose stream answers every submitted envelope with its result at once."""

    def __init__(self) -> None:
        self.submitted: list[Envelope] = []
        self.subscribed: list[str] = []
        self._callbacks: dict[str, Any] = {}

    async def subscribe(self, subject: str, cb: Any) -> _Sub:
        self.subscribed.append(subject)
        self._callbacks[subject] = cb
        return _Sub()

    def jetstream(self) -> _Bus:
        return self

    async def publish(self, subject: str, payload: bytes, **_: Any) -> object:
        envelope = Envelope.from_bytes(payload)
        self.submitted.append(envelope)
        result = FinalResult.model_validate(
            {
                "message_id": envelope.message_id, "session_id": envelope.session_id, "response": "ok",
                "intent": "order_status", "intent_confidence": 0.9,
                "sentiment": {"label": "neutral", "score": 0.0}, "urgency": "low", "escalated": False,
                "reference_id": None, "actions": [], "flags": [],
                "method": {"intent": "rules", "response": "template"}, "trace": [], "processing_ms": 1.0,
            }
        )  # fmt: skip

        class _Reply:
            data = result.model_dump_json().encode()

        assert envelope.reply.result_subject is not None
        await self._callbacks[envelope.reply.result_subject](_Reply())
        return object()


@pytest.mark.parametrize("watching", [True, False], ids=["progress-watched", "nobody-watches"])
async def test_request_result_asks_for_progress_only_when_someone_listens(watching: bool) -> None:
    from actormesh_runtime.bus.request import request_result
    from actormesh_runtime.screening import screen

    subjects = Subjects("t")
    text, screening = screen("Where is my order ORD-10002?")
    envelope = Envelope.start(
        session_id="s", customer_email="john.doe@example.com", message=text, screening=screening,
        budget_s=60, reply=reply_to(subjects),
    )  # fmt: skip
    progress_subject = envelope.reply.progress_subject
    bus = _Bus()

    result = await request_result(
        bus,  # type: ignore[arg-type]
        subjects,
        envelope,
        timeout_s=5,
        on_progress=(lambda event: None) if watching else None,
    )

    assert result.response == "ok"
    [sent] = bus.submitted
    assert sent.reply.progress_subject == (progress_subject if watching else None)
    assert (progress_subject in bus.subscribed) is watching

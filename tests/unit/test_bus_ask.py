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

"""History events as the mesh produces them (built by the real actors' functions), for store tests:
an escalated message, and an action filed for a person's approval; and the `store` fixture, a
`HistoryStore` open on a file in the test's temporary directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from actormesh_runtime.actors.escalation_router import build_escalation
from actormesh_runtime.actors.response_aggregator import build_result
from actormesh_runtime.envelope import (
    ActionOutcome,
    ActionStatus,
    ActionType,
    Decision,
    HistoryEvent,
    Sentiment,
    SentimentLabel,
    Urgency,
)
from actormesh_runtime.history.store import HistoryStore
from actormesh_runtime.policy.decision import REASON_HUMAN
from actormesh_runtime.replies.result import history_event
from tests.support.envelopes import make_envelope


def escalated(
    email: str, text: str, reason: str = REASON_HUMAN, session: str = "s1", *, message_id: str | None = None
) -> HistoryEvent:
    envelope = make_envelope(text, email, with_context=True, message_id=message_id)
    envelope.session_id = session
    envelope.sentiment = Sentiment(label=SentimentLabel.NEUTRAL, score=0.0, urgency=Urgency.LOW)
    envelope.decision = Decision(escalate=True, reasons=[reason])
    envelope.escalation = build_escalation(envelope, None)
    return history_event(envelope, build_result(envelope))


def filed(
    email: str,
    order: str,
    action: ActionType = ActionType.CREATE_REFUND_REQUEST,
    status: ActionStatus = ActionStatus.PENDING_REVIEW,
    session: str = "s",
    *,
    key: str | None = None,
) -> HistoryEvent:
    """`action` on `order` with the outcome `status` (PENDING_REVIEW: waiting for a person), under the
    idempotency key `key` (default `key-<order>`)."""
    envelope = make_envelope(f"please handle {order}", email, with_context=True)
    envelope.session_id = session
    envelope.sentiment = Sentiment(label=SentimentLabel.NEUTRAL, score=0.0, urgency=Urgency.LOW)
    envelope.decision = Decision(escalate=False, planned_actions=[action], target_order_id=order)
    envelope.actions = [
        ActionOutcome(
            type=action, order_id=order, status=status, detail="filed", idempotency_key=key or f"key-{order}"
        )
    ]
    return history_event(envelope, build_result(envelope))


def at(event: HistoryEvent, when: datetime) -> HistoryEvent:
    """The same event, received and answered at `when` (its turns are stored with that time)."""
    return event.model_copy(update={"received_at": when, "completed_at": when})


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[HistoryStore]:
    opened = HistoryStore(tmp_path / "h.db")
    await opened.open()
    yield opened
    await opened.close()

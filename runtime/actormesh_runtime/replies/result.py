"""`final_result(envelope, ...)`: the public `FinalResult` built from what an envelope holds, and
`history_event(envelope, result)`: what the history store keeps of it, and `history_event_json`, its
wire form with the result encoded once. `StoredAnswer`: the history service's answer when
response_aggregator asks what was stored for a message (`Subjects.stored_answers`).

Two callers: response_aggregator (the normal last step) and the bus's error path (`bus.errorpath`),
which answers the caller itself when even the aggregator failed. Both report the same facts the
same way; they differ only in the response, the actions, the flags and the trace they pass in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel

from actormesh_runtime.envelope import (
    ActionSummary,
    Envelope,
    FinalResult,
    HistoryEvent,
    MethodSummary,
    SentimentSummary,
    TraceEntry,
)
from actormesh_runtime.policy.approval import approval_records


def final_result(
    envelope: Envelope,
    *,
    response: str,
    response_method: Literal["template", "llm"],
    flags: list[str],
    trace: list[TraceEntry],
    include_actions: bool = True,
) -> FinalResult:
    intent, sentiment, escalation = envelope.intent, envelope.sentiment, envelope.escalation
    actions: Iterable[ActionSummary] = (
        ActionSummary(type=a.type, order_id=a.order_id, status=a.status, detail=a.detail)
        for a in (envelope.actions if include_actions else [])
    )
    return FinalResult(
        message_id=envelope.message_id,
        session_id=envelope.session_id,
        response=response,
        intent=intent.intent if intent else None,
        intent_confidence=intent.confidence if intent else None,
        sentiment=SentimentSummary(label=sentiment.label, score=sentiment.score) if sentiment else None,
        urgency=sentiment.urgency if sentiment else None,
        escalated=escalation is not None,
        reference_id=escalation.reference_id if escalation else None,
        actions=list(actions),
        flags=flags,
        method=MethodSummary(intent=intent.method if intent else "rules", response=response_method),
        trace=trace,
        processing_ms=round((datetime.now(UTC) - envelope.created_at).total_seconds() * 1000, 3),
    )


def history_event(envelope: Envelope, result: FinalResult) -> HistoryEvent:
    """The event for the history store: the screened customer text and the result, timestamped now,
    and the escalation record when the mesh escalated (stored in the same transaction as the turns)."""
    completed = datetime.now(UTC)
    return HistoryEvent(
        message_id=envelope.message_id,
        session_id=envelope.session_id,
        customer_email=envelope.customer_email,
        customer_message=envelope.message,
        received_at=envelope.created_at,
        completed_at=completed,
        result=result,
        escalation=envelope.escalation.record if envelope.escalation else None,
        approvals=approval_records(envelope, completed),
        replay=envelope.headers.replay,
    )


def history_msg_id(envelope: Envelope, *, fallback: bool = False) -> str:
    """The JetStream message id of the run's history event: one per message, and one more per replay
    (with the first run's id the stream's duplicate window, and then the store, dropped a replay's
    outcome, and its customer kept the error answer although the replay had, say, cancelled the order).
    `fallback`: the bus's last-resort event when even the aggregator failed (bus/errorpath.py)."""
    replay = envelope.headers.replay
    kind = "history:fallback" if fallback else "history"
    return f"{envelope.message_id}:{kind}" + (f":r{replay}" if replay else "")


def history_event_json(event: HistoryEvent, result_json: bytes) -> bytes:
    """`event` as JSON, its result given already encoded (`result_json`, the caller's reply).

    response_aggregator sends the same `FinalResult` to the caller and inside the history event:
    encoding it once saves the larger half of the event's encoding on every conversation.
    """
    rest = event.__pydantic_serializer__.to_json(event, exclude={"result"})  # an object: ends with "}"
    return rest[:-1] + b',"result":' + result_json + b"}"


class StoredAnswer(BaseModel):
    """The history service's answer on `Subjects.stored_answers` (the request is the message id)."""

    ok: bool = True
    error: str | None = None
    result: FinalResult | None = None
    """The result stored for the message; None when the store holds no answer to it (yet)."""

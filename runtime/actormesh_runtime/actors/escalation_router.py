"""escalation_router: hands the conversation to a human, or apologises when something broke.

On the escalation route (after decision_router or a twice-rejected draft) it writes
`envelope.escalation`: a reference id, the record a person will pick up (reason, priority, summary,
the facts the mesh had — `policy.escalation`), the wait from the real queue, and a calm reply that
promises nothing but the handoff. As the error handler (`slip.on_error_path` or `envelope.error`
set) the reply is a graceful apology with the reference id instead — and a record all the same, so
every reference a customer holds can be looked up.

The record reaches the store inside response_aggregator's `HistoryEvent` (JetStream, durable), so a
crash anywhere after this step loses nothing. The reference id is `ESC-` + the first 8 hex chars of
SHA-256(message id): a redelivered envelope gets the same id, and the store keeps one record per id.

The queue (escalations ahead, agents active) comes from the history service on
`Subjects.escalations_lookup`; when it does not answer within `QUEUE_TIMEOUT_S` the reply says the
wait is unknown rather than inventing one.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import ClassVar

from actormesh_runtime.actors.base import PlainActor
from actormesh_runtime.actors.lookup import ask_history
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import Envelope, Escalation
from actormesh_runtime.escalations import EscalationLookup, QueueSnapshot
from actormesh_runtime.policy.escalation import (
    build_record,
    envelope_priority,
    estimated_wait_minutes,
    reason_code,
)
from actormesh_runtime.priority import Priority
from actormesh_runtime.replies import templates

log = logging.getLogger(__name__)

QUEUE_TIMEOUT_S = 1.0
"""How long the handoff waits for the queue figures before saying it cannot estimate."""


def reference_id(message_id: str) -> str:
    return "ESC-" + hashlib.sha256(message_id.encode()).hexdigest()[:8]


def in_error_mode(envelope: Envelope) -> bool:
    return envelope.error is not None or envelope.slip.on_error_path


def escalation_reasons(envelope: Envelope) -> list[str]:
    """Why a human sees this (for the agent and the history, never shown to the customer)."""
    reasons: list[str] = []
    if envelope.error is not None:
        reasons.append(f"error in {envelope.error.actor.value}: {envelope.error.reason}")
    elif envelope.slip.on_error_path:
        reasons.append("error path taken")
    if envelope.decision is not None:
        reasons.extend(envelope.decision.reasons)
    if envelope.guardrail is not None and envelope.guardrail.action == "escalate":
        reasons.extend(f"guardrail: {r}" for r in envelope.guardrail.reasons)
    return list(dict.fromkeys(reasons)) or ["escalation requested"]


def build_escalation(
    envelope: Envelope,
    queue: QueueSnapshot | None,
    *,
    now: datetime | None = None,
    error_mode: bool | None = None,
) -> Escalation:
    """The escalation section: reference, record, wait and reply. Pure (the queue is passed in).

    `error_mode` defaults to what the envelope says (`in_error_mode`); the bus's last-resort fallback
    forces it."""
    ref = reference_id(envelope.message_id)
    error_mode = in_error_mode(envelope) if error_mode is None else error_mode
    reasons = escalation_reasons(envelope)
    record = build_record(envelope, ref, reasons, error_mode=error_mode, now=now or datetime.now(UTC))
    reply = (
        templates.error_reply(envelope, ref)
        if error_mode
        else templates.escalation_reply(envelope, ref, queue)
    )
    return Escalation(
        reference_id=ref,
        estimated_wait_minutes=estimated_wait_minutes(queue),
        reasons=reasons,
        error_mode=error_mode,
        reply=reply,
        record=record,
    )


class EscalationRouter(PlainActor):
    name: ClassVar[ActorName] = ActorName.ESCALATION_ROUTER

    async def handle(self, envelope: Envelope) -> None:
        queue = None
        if not in_error_mode(envelope):  # an apology quotes no wait: no need to ask
            code = reason_code(envelope, error_mode=False)
            queue = await self.queue(envelope_priority(envelope, code), reference_id(envelope.message_id))
        envelope.escalation = build_escalation(envelope, queue)

    async def queue(self, priority: Priority, ref: str) -> QueueSnapshot | None:
        """The queue escalation `ref` joins (or, run again, stands in), or None when the history service
        does not answer."""
        question = EscalationLookup(op="queue", priority=priority, refs=[ref])
        try:
            answer = await ask_history(self.deps, question, timeout_s=QUEUE_TIMEOUT_S)
        except Exception as exc:  # no responders, timeout, bad or failed answer: the reply says "unknown"
            log.info("escalation queue unknown", extra={"error": f"{type(exc).__name__}: {exc}"[:200]})
            return None
        return answer.queue

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
32 bits collide (two messages, one ref): the queue question below asks about the ref, and when the
history service says another message's record holds it (`LookupAnswer.ref_message_id`), the next
candidate (`escalations.reference_id(message_id, 1)`, 2, …) is asked about, so a chain run again
derives the same ref. Without that answer (error mode, no answer, an older history service) the ref
quoted is attempt 0, and the store, finding it taken, files the record under the next free candidate
rather than dropping it (history/escalations.py; docs/escalations.md, "Reference ids").

The queue (escalations ahead, agents active) comes from the history service on
`Subjects.escalations_lookup`; when it does not answer within `QUEUE_TIMEOUT_S` the reply says the
wait is unknown rather than inventing one.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import ClassVar

from actormesh_runtime.actors.base import PlainActor
from actormesh_runtime.actors.lookup import ask_history
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import Envelope, Escalation
from actormesh_runtime.escalations import (
    MAX_REF_ATTEMPTS,
    EscalationLookup,
    LookupAnswer,
    QueueSnapshot,
    reference_id,
)
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
    ref: str | None = None,
) -> Escalation:
    """The escalation section: reference, record, wait and reply. Pure (the queue is passed in).

    `error_mode` defaults to what the envelope says (`in_error_mode`); the bus's last-resort fallback
    forces it. `ref` defaults to the message's first candidate (`reference_id(message_id)`)."""
    ref = ref or reference_id(envelope.message_id)
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
        ref = reference_id(envelope.message_id)
        if not in_error_mode(envelope):  # an apology quotes no wait: no need to ask
            code = reason_code(envelope, error_mode=False)
            ref, queue = await self.place(envelope_priority(envelope, code), envelope.message_id)
        envelope.escalation = build_escalation(envelope, queue, ref=ref)

    async def place(self, priority: Priority, message_id: str) -> tuple[str, QueueSnapshot | None]:
        """The ref for `message_id`'s escalation and the queue it joins (or, run again, stands in).

        Candidates in order (`reference_id(message_id, attempt)`): the first that no other message's
        record holds, as far as the history service says. No answer, or one that does not say (an older
        history service), settles on the candidate asked about: the store then keeps the record under
        a free one all the same (never dropped) and logs the collision."""
        for attempt in range(MAX_REF_ATTEMPTS):
            ref = reference_id(message_id, attempt)
            answer = await self.ask(priority, ref)
            if answer is None:
                return ref, None
            holder = answer.ref_message_id
            if holder is None or holder == message_id:
                return ref, answer.queue
            log.warning(
                "escalation ref taken by another message; trying the next candidate",
                extra={"ref": ref, "message_id": message_id, "held_by": holder, "attempt": attempt},
            )
        return reference_id(message_id), None  # unreachable in practice (16 collisions in a row)

    async def ask(self, priority: Priority, ref: str) -> LookupAnswer | None:
        """The history service's answer about `ref` and the queue, or None when it does not answer."""
        question = EscalationLookup(op="queue", priority=priority, refs=[ref])
        try:
            return await ask_history(self.deps, question, timeout_s=QUEUE_TIMEOUT_S)
        except Exception as exc:  # no responders, timeout, bad or failed answer: the reply says "unknown"
            log.info("escalation queue unknown", extra={"error": f"{type(exc).__name__}: {exc}"[:200]})
            return None

"""escalation_router: hands the conversation to a human, or apologises when something broke.

On the escalation route (after decision_router or a twice-rejected draft) it writes
`envelope.escalation`: a reference id, an estimated wait by tier and urgency, the reasons, and a
calm reply that promises nothing but the handoff. As the error handler (`slip.on_error_path` or
`envelope.error` set) the reply is a graceful apology with the reference id instead.

The reference id is `ESC-` + the first 8 hex chars of SHA-256(message id): a redelivered envelope
gets the same id, so a customer never holds two references for one message.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

from actormesh_runtime.actors.base import PlainActor
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import Envelope, Escalation, Urgency
from actormesh_runtime.replies import templates

BASE_WAIT_MINUTES = {"vip": 5, "premium": 15, "standard": 30}
UNKNOWN_TIER_WAIT_MINUTES = 30
URGENCY_FACTOR = {Urgency.CRITICAL: 0.5, Urgency.HIGH: 0.75, Urgency.MEDIUM: 1.0, Urgency.LOW: 1.0}
MIN_WAIT_MINUTES = 2


def reference_id(message_id: str) -> str:
    return "ESC-" + hashlib.sha256(message_id.encode()).hexdigest()[:8]


def estimated_wait(envelope: Envelope) -> int:
    tier = envelope.context.tier if envelope.context and envelope.context.found else None
    base = BASE_WAIT_MINUTES.get(tier or "", UNKNOWN_TIER_WAIT_MINUTES)
    factor = URGENCY_FACTOR[envelope.sentiment.urgency] if envelope.sentiment else 1.0
    return max(MIN_WAIT_MINUTES, round(base * factor))


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


class EscalationRouter(PlainActor):
    name: ClassVar[ActorName] = ActorName.ESCALATION_ROUTER

    async def handle(self, envelope: Envelope) -> None:
        ref = reference_id(envelope.message_id)
        wait = estimated_wait(envelope)
        error_mode = in_error_mode(envelope)
        reply = (
            templates.error_reply(envelope, ref)
            if error_mode
            else templates.escalation_reply(envelope, ref, wait)
        )
        envelope.escalation = Escalation(
            reference_id=ref,
            estimated_wait_minutes=wait,
            reasons=escalation_reasons(envelope),
            error_mode=error_mode,
            reply=reply,
        )

"""The error path: dead-letter a copy, then divert the envelope to the error handler — bounded.

Called by the actor host when an actor raised a `PermanentError` or ran out of deliveries. The
envelope always moves forward: escalation_router (error mode) → response_aggregator. If the
aggregator itself fails while already on the error path there is nobody left to ask, so the host
publishes a minimal graceful `FinalResult` straight to the caller: the caller never hangs, and the
error path never loops.
"""

from __future__ import annotations

import logging

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from actormesh_runtime.actors.escalation_router import build_escalation
from actormesh_runtime.catalog import ActorName, DeadLetterReason, Subjects
from actormesh_runtime.envelope import Envelope, ErrorInfo, FinalResult
from actormesh_runtime.errors import InvalidEnvelope
from actormesh_runtime.observability import metrics, tracing
from actormesh_runtime.observability.emails import scrubbed
from actormesh_runtime.replies.result import final_result, history_event, history_msg_id
from actormesh_runtime.screening import redact

from . import dlq
from .publish import MSG_ID_HEADER, acked_publish, publish_to_current
from .size import HEADER_ALLOWANCE, check_fits, max_payload, trimmed

DLQ_EXCERPT_BYTES = 65536

log = logging.getLogger(__name__)

FALLBACK_REPLY = (
    "We're sorry, something went wrong while we were handling your message. "
    "Our support team has been notified and will follow up with you."
)


def fallback_result(envelope: Envelope) -> FinalResult:
    """A graceful result built only from what the envelope already holds (no actor involved).

    The reply says the support team will follow up, so it always carries a reference of a real
    record: the escalation router's, or one made here (error mode) when the router never ran. The
    record travels in the history event, like every other.
    """
    known = envelope.escalation
    if known is None or known.record is None:
        built = build_escalation(envelope, None, error_mode=True)
        if known is not None and built.record is not None:  # keep the reference the customer may hold
            built.record.ref = known.reference_id
            built = known.model_copy(update={"record": built.record})
        envelope.escalation = known = built
    reference = known.reference_id
    response = f"{FALLBACK_REPLY} Your reference is {reference}."
    # No actions: whether they happened is unknown once the aggregator failed; promise nothing.
    return final_result(
        envelope,
        response=response,
        response_method="template",
        flags=["error"],
        trace=list(envelope.trace),
        include_actions=False,
    )


async def _publish_fallback(nc: NATS, js: JetStreamContext, subjects: Subjects, envelope: Envelope) -> None:
    envelope = trimmed(envelope)
    result = fallback_result(envelope)
    if envelope.reply.result_subject:
        await nc.publish(envelope.reply.result_subject, result.model_dump_json().encode())
    event = history_event(envelope, result).model_dump_json().encode()
    check_fits(js, event, "history event")
    await acked_publish(
        js,
        subjects.history_events,
        event,
        stream=subjects.stream,
        headers={MSG_ID_HEADER: history_msg_id(envelope, fallback=True), **tracing.inject()},
    )


def _fitting(js: JetStreamContext, record: dlq.DeadLetter) -> dlq.DeadLetter:
    """The record, or — when the envelope makes it too large for the bus — the record with the
    envelope's start kept as text instead (not replayable, but the reason and the message id stay)."""
    payload = record.model_dump_json().encode()
    if len(payload) <= max_payload(js) - HEADER_ALLOWANCE:
        return record
    raw = payload[:DLQ_EXCERPT_BYTES].decode("utf-8", errors="replace")
    return record.model_copy(
        update={
            "envelope": None,
            "raw": redact(raw),
            "reason": f"{record.reason} (envelope too large to keep)",
        }
    )


async def take_error_path(
    nc: NATS,
    js: JetStreamContext,
    subjects: Subjects,
    envelope: Envelope,
    error: ErrorInfo,
    *,
    deliveries: int,
    dedup_key: str,
) -> None:
    """Dead-letter `envelope` (failed at its current step) and move it on to the error handler."""
    envelope.error = error
    record = dlq.DeadLetter(
        actor=error.actor,
        reason=error.reason,
        permanent=error.permanent,
        deliveries=deliveries,
        message_id=envelope.message_id,
        envelope=envelope,
        kind=DeadLetterReason.PERMANENT if error.permanent else DeadLetterReason.EXHAUSTED,
    )
    await dlq.store(js, subjects, _fitting(js, record), dedup_key=dedup_key)
    envelope = trimmed(envelope)
    metrics.DEAD_LETTERED.labels(error.actor.value, record.category.value).inc()
    log.warning(
        "dead-lettered",
        extra={"message_id": envelope.message_id, "actor": error.actor.value, "reason": error.reason},
    )
    if error.actor == ActorName.RESPONSE_AGGREGATOR and envelope.slip.on_error_path:
        await _publish_fallback(nc, js, subjects, envelope)
        return
    envelope.slip.divert_to_error_handler()
    envelope.headers.attempt = 1
    await publish_to_current(js, subjects, envelope)


async def dead_letter_garbage(
    js: JetStreamContext,
    subjects: Subjects,
    actor: ActorName,
    payload: bytes,
    problem: InvalidEnvelope,
    *,
    dedup_key: str,
) -> None:
    """Bytes that are not an envelope: nothing to divert and nobody to answer; keep them for a human.

    Nobody screened these bytes, so the copy kept (and the reason logged) is redacted here.
    """
    reason = scrubbed(str(problem))
    record = dlq.DeadLetter(
        actor=actor,
        reason=f"{type(problem).__name__}: {reason}"[:2000],
        permanent=True,
        deliveries=1,
        raw=scrubbed(payload[:DLQ_EXCERPT_BYTES].decode("utf-8", errors="replace")),
        kind=DeadLetterReason.INVALID,
    )
    await dlq.store(js, subjects, record, dedup_key=dedup_key)
    metrics.DEAD_LETTERED.labels(actor.value, record.category.value).inc()
    log.warning("dead-lettered undecodable payload", extra={"actor": actor.value, "reason": reason[:200]})

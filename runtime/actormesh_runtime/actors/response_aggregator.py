"""response_aggregator: the last step of every route; builds the FinalResult and sends it out.

Writes `envelope.final`, publishes a `HistoryEvent` to the mesh's history subject (JetStream,
de-duplicated by `<message_id>:history`, so a redelivery stores one history row) and then the result
JSON to `envelope.reply.result_subject` (core NATS, when a caller waits); a failure raises
`TransientError` and the bus redelivers.

One message, one answer: the store keeps the first history event of a message, and a step that may
not be the first to answer asks the history service what it holds (`Subjects.stored_answers`) and
answers that, not its own result, which may differ from the first run's: a step delivered again
(attempt > 1: a lost ack, a crash, a retry; with direct hops a whole chain run again from its first
step), and one whose history event the stream already held (the first run, still going when its
origin was redelivered, reaching this step after the rerun did).

It must answer sensibly from whatever the envelope holds: on the error path earlier sections may
be missing, and the customer still gets a graceful reply.
"""

from __future__ import annotations

import logging
import time
from typing import ClassVar, Literal

from actormesh_runtime.actors.base import PlainActor
from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.envelope import Envelope, FinalResult, TraceEntry
from actormesh_runtime.errors import TransientError
from actormesh_runtime.replies import templates
from actormesh_runtime.replies.result import (
    StoredAnswer,
    final_result,
    history_event,
    history_event_json,
    history_msg_id,
)
from actormesh_runtime.resources import ActorDeps

log = logging.getLogger(__name__)

STORED_ANSWER_TIMEOUT_S = 1.0
"""How long a step that may not be the first to answer waits for the history service to say what it
stored for the message."""

ERROR_APOLOGY = (
    "I'm sorry, something went wrong on our side while handling your message. Please try again in a few "
    "minutes; if it keeps happening, our support team is happy to help."
)


def choose_response(envelope: Envelope) -> tuple[str, Literal["template", "llm"]]:
    """The text the customer gets and how it was made. Never a rejected draft."""
    esc, verdict, draft = envelope.escalation, envelope.guardrail, envelope.draft
    on_error = envelope.slip.on_error_path or envelope.error is not None
    if esc is not None:
        if esc.reply:
            return esc.reply, "template"
        if esc.error_mode:
            return templates.error_reply(envelope, esc.reference_id), "template"
        return templates.escalation_reply(envelope, esc.reference_id, None), "template"
    if on_error:
        return ERROR_APOLOGY, "template"
    if verdict is not None and verdict.action == "replaced":
        return verdict.replacement or templates.safe_reply(envelope), "template"
    if draft is not None and verdict is not None and verdict.approved:
        return draft.text, draft.method
    if draft is not None and verdict is None and draft.method == "template":
        return draft.text, "template"  # our own templates are safe even unchecked
    return templates.safe_reply(envelope), "template"


def result_flags(envelope: Envelope) -> list[str]:
    """Short machine-readable facts about how the answer came about (stable names, documented)."""
    flags: list[str] = []
    screening, sentiment, ctx = envelope.screening, envelope.sentiment, envelope.context
    checks: list[tuple[str, bool]] = [
        ("pii_redacted", screening.pii_redacted),
        ("prompt_injection", screening.prompt_injection),
        ("escalated", envelope.escalation is not None and not envelope.escalation.error_mode),
        ("error", envelope.slip.on_error_path or envelope.error is not None),
        ("complaint", bool(sentiment and sentiment.complaint)),
        ("abusive", bool(sentiment and sentiment.abusive)),
        ("legal_threat", bool(sentiment and sentiment.legal_threat)),
        ("wants_human", bool(sentiment and sentiment.wants_human)),
        ("unknown_customer", ctx is not None and not ctx.found),
        ("partial_context", ctx is not None and bool(ctx.errors)),
        ("needs_clarification", bool(envelope.decision and envelope.decision.needs_clarification)),
        (
            "llm_fallback",
            bool(
                (envelope.intent and envelope.intent.llm_fallback_reason)
                or (envelope.draft and envelope.draft.llm_fallback_reason)
            ),
        ),
        ("regenerated", bool(envelope.draft and envelope.draft.attempt > 1)),
        ("response_replaced", bool(envelope.guardrail and envelope.guardrail.action == "replaced")),
    ]
    flags.extend(name for name, on in checks if on)
    return flags


def build_result(envelope: Envelope, own_ms: float = 0.0) -> FinalResult:
    response, response_method = choose_response(envelope)
    own = TraceEntry(
        actor=ActorName.RESPONSE_AGGREGATOR, ms=round(own_ms, 3), attempt=envelope.headers.attempt
    )
    return final_result(
        envelope,
        response=response,
        response_method=response_method,
        flags=result_flags(envelope),
        trace=[*envelope.trace, own],
    )


class ResponseAggregator(PlainActor):
    name: ClassVar[ActorName] = ActorName.RESPONSE_AGGREGATOR

    def __init__(self, deps: ActorDeps) -> None:
        super().__init__(deps)
        self.subjects = Subjects(deps.settings.mesh_name)

    async def handle(self, envelope: Envelope) -> None:
        started = time.perf_counter()
        final = build_result(envelope)
        final.trace[-1].ms = round((time.perf_counter() - started) * 1000, 3)  # own entry: the build time
        envelope.final = final
        event = history_event(envelope, final)
        publisher = self.deps.publisher
        result_json = final.__pydantic_serializer__.to_json(final)  # bytes, no str round trip
        try:
            # Stored first, then answered: the caller never holds an answer the history lacks, and a
            # step run again finds out below what the first run stored.
            new = await publisher.publish_stream(
                self.subjects.history_events,
                history_event_json(event, result_json),
                msg_id=history_msg_id(envelope),
            )
        except Exception as exc:  # any bus failure: let redelivery try again
            raise TransientError(f"publish final result: {exc}") from exc
        subject = envelope.reply.result_subject
        if not subject:
            return
        reply: bytes | None = result_json
        if envelope.headers.rerun or not new:
            # Another run of this message may have answered: delivered again, or the stream already
            # held its history event (a run still going when its origin was redelivered got here first).
            reply = await self.stored_answer(envelope.message_id, result_json, stored_as_new=new)
        if reply is None:
            return
        try:
            await publisher.publish_core(subject, reply)
        except Exception as exc:  # redelivery answers again (the gateway ignores a second reply)
            raise TransientError(f"publish final result: {exc}") from exc

    async def stored_answer(self, message_id: str, ours: bytes, *, stored_as_new: bool) -> bytes | None:
        """What a step that may not be its message's first answer sends: the result the store holds for
        the message, else ours when our history event is the one being stored, else nothing.

        A chain runs again after a lost ack or a crash, possibly after the first run stored and
        answered; its answer may differ (an escalation's queue unknown this time, an order cancelled by
        the first run). The customer and the history must see the same one, the one stored. Nothing is
        sent when the store cannot say (it does not answer, or the other run's event is still on its
        way to it): the waiting gateway reads the stored turn itself (`gateway.service`)."""
        try:
            raw = await self.deps.publisher.request(
                self.subjects.stored_answers, message_id.encode(), timeout_s=STORED_ANSWER_TIMEOUT_S
            )
            answer = StoredAnswer.model_validate_json(raw)
        except Exception as exc:  # no responders, timeout, unreadable: the store cannot say
            log.info("stored answer unknown", extra={"message_id": message_id, "error": repr(exc)[:200]})
            return None
        if not answer.ok:
            log.info("stored answer unknown", extra={"message_id": message_id, "error": answer.error})
            return None
        if answer.result is not None:
            return answer.result.__pydantic_serializer__.to_json(answer.result)
        return ours if stored_as_new else None

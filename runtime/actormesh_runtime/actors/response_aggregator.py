"""response_aggregator: the last step of every route; builds the FinalResult and sends it out.

Writes `envelope.final`, publishes the result JSON to `envelope.reply.result_subject` (core NATS,
when a caller waits) and a `HistoryEvent` to the mesh's history subject (JetStream, de-duplicated
by `<message_id>:history`, so a redelivery stores one history row). The reply goes
first (a buffered core publish), then the acked history publish; a failure raises `TransientError`
and the bus redelivers.

It must answer sensibly from whatever the envelope holds: on the error path earlier sections may
be missing, and the customer still gets a graceful reply.
"""

from __future__ import annotations

import time
from typing import ClassVar, Literal

from actormesh_runtime.actors.base import PlainActor
from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.envelope import Envelope, FinalResult, TraceEntry
from actormesh_runtime.errors import TransientError
from actormesh_runtime.replies import templates
from actormesh_runtime.replies.result import final_result, history_event, history_event_json
from actormesh_runtime.resources import ActorDeps

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
        try:
            # One after the other, no tasks: the caller's reply is a core publish that only fills the
            # client's write buffer, so the history publish still goes out at once and nothing waits
            # on the caller. The history is published even when the reply failed; either failure
            # raises, and redelivery sends both again (the history event is de-duplicated by its id;
            # the gateway ignores a second reply).
            result_json = final.__pydantic_serializer__.to_json(final)  # bytes, no str round trip
            reply_failed: Exception | None = None
            if envelope.reply.result_subject:
                try:
                    await publisher.publish_core(envelope.reply.result_subject, result_json)
                except Exception as exc:
                    reply_failed = exc
            await publisher.publish_stream(
                self.subjects.history_events,
                history_event_json(event, result_json),
                msg_id=f"{envelope.message_id}:history",
            )
            if reply_failed is not None:
                raise reply_failed
        except Exception as exc:  # any bus failure: let redelivery try again
            raise TransientError(f"publish final result: {exc}") from exc

"""A hop's span: what the actor host traces around one actor handling one envelope.

`traced_hop(actor, envelope)` is the one call the host makes (around `actor.handle`): the span is a
child of the context the envelope carries, its own context goes back into the envelope for the next
hop, and its attributes — read from the envelope only when spans are recorded — say which actor,
which delivery, and what the actor decided. `observability.tracing` does the W3C and OpenTelemetry
parts; this module only knows the envelope.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import Envelope
from actormesh_runtime.observability import tracing
from actormesh_runtime.observability.tracing import AttributeValue


def hop_attributes(actor: ActorName, envelope: Envelope) -> dict[str, AttributeValue]:
    """The span's attributes after the hop (or its failure): the envelope as the actor left it."""
    attributes: dict[str, AttributeValue] = {
        "messaging.system": "nats",
        "messaging.operation.type": "process",
        "actormesh.actor": actor.value,
        "actormesh.message_id": envelope.message_id,
        "actormesh.session_id": envelope.session_id,
        "actormesh.delivery_count": envelope.headers.attempt,
        "actormesh.retry_count": envelope.headers.attempt - 1,
        "actormesh.slip_index": envelope.slip.index,
        "actormesh.error_path": envelope.slip.on_error_path,
    }
    if envelope.intent is not None:
        attributes["actormesh.intent"] = envelope.intent.intent.value
        attributes["actormesh.intent_confidence"] = envelope.intent.confidence
    method = _method(actor, envelope)
    if method is not None:
        attributes["actormesh.method"] = method
    if envelope.escalation is not None:
        attributes["actormesh.escalation_ref"] = envelope.escalation.reference_id
    if envelope.headers.replay:
        attributes["actormesh.replay"] = envelope.headers.replay
    return attributes


def _method(actor: ActorName, envelope: Envelope) -> str | None:
    """How this actor decided: rules or the LLM (intent), template or the LLM (the reply)."""
    if actor == ActorName.INTENT_ANALYZER and envelope.intent is not None:
        return envelope.intent.method
    if actor == ActorName.RESPONSE_GENERATOR and envelope.draft is not None:
        return envelope.draft.method
    return None


def traced_hop(actor: ActorName, envelope: Envelope) -> AbstractContextManager[tracing.Span]:
    """The span around `actor` handling `envelope` (see the module docstring)."""
    return tracing.hop_span(actor.value, envelope.headers, describe=lambda: hop_attributes(actor, envelope))

"""The actors' question to the history service on `Subjects.escalations_lookup`.

context_retriever asks about the references a customer names (`status`), escalation_router about the
queue a new escalation joins (`queue`). Neither may hold a conversation up: each passes a short
timeout and, on any failure, says in the reply that it does not know rather than guessing.
"""

from __future__ import annotations

from actormesh_runtime.catalog import Subjects
from actormesh_runtime.escalations import EscalationLookup, LookupAnswer
from actormesh_runtime.resources import ActorDeps


class LookupFailed(Exception):
    """The history service answered that it could not look the question up."""


async def ask_history(deps: ActorDeps, question: EscalationLookup, *, timeout_s: float) -> LookupAnswer:
    """The history service's answer; raises when there is none in time (no responders, timeout), when
    it does not parse, or when it says the lookup failed (`LookupFailed`)."""
    raw = await deps.publisher.request(
        Subjects(deps.settings.mesh_name).escalations_lookup,
        question.model_dump_json().encode(),
        timeout_s=timeout_s,
    )
    answer = LookupAnswer.model_validate_json(raw)
    if not answer.ok:
        raise LookupFailed(answer.error or "lookup failed")
    return answer

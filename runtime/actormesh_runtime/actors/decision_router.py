"""decision_router: escalate, act or answer, and rewrite the rest of the routing slip accordingly.

Writes `envelope.decision` (policy in actormesh_runtime.policy.decision) and replaces the steps
after itself with `catalog.ESCALATION_TAIL`, or inserts execution_coordinator before the remaining
steps when actions are planned. Running twice on one envelope gives the same slip (replay-safe).
"""

from __future__ import annotations

from typing import ClassVar

from actormesh_runtime.actors.base import PlainActor
from actormesh_runtime.catalog import ESCALATION_TAIL, ActorName
from actormesh_runtime.envelope import Decision, Envelope
from actormesh_runtime.policy.decision import decide
from actormesh_runtime.resources import ActorDeps


def route_after(decision: Decision, remaining: list[ActorName]) -> list[ActorName]:
    """The steps that follow decision_router for this decision."""
    if decision.escalate:
        return list(ESCALATION_TAIL)
    rest: list[ActorName] = [step for step in remaining if step is not ActorName.EXECUTION_COORDINATOR]
    if decision.planned_actions:
        return [ActorName.EXECUTION_COORDINATOR, *rest]
    return rest


class DecisionRouter(PlainActor):
    name: ClassVar[ActorName] = ActorName.DECISION_ROUTER

    def __init__(self, deps: ActorDeps) -> None:
        super().__init__(deps)
        self._threshold = deps.settings.escalation_confidence_threshold

    async def handle(self, envelope: Envelope) -> None:
        decision = decide(
            sentiment=envelope.sentiment,
            intent=envelope.intent,
            context=envelope.context,
            screening=envelope.screening,
            threshold=self._threshold,
            now=envelope.created_at,
            message=envelope.message,
            followups=envelope.followups,
            rerun=envelope.headers.rerun,
        )
        envelope.decision = decision
        envelope.slip.replace_remaining(route_after(decision, envelope.slip.remaining))

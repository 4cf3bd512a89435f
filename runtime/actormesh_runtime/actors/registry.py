"""The actor registry: `build_actor(name, deps)` makes one actor by name.

Called by the actor host (`actormesh actor NAME`) and the local mesh. Each actor module is imported
only when asked for, so a process running one actor never imports the others' dependencies
(VADER, the LLM layer, HTTP clients).
"""

from __future__ import annotations

import importlib
from typing import cast

from actormesh_runtime.actors.base import Actor
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.resources import ActorDeps

# name -> (module under actormesh_runtime.actors, class). Every class is constructed as `Cls(deps)`.
ACTOR_CLASSES: dict[ActorName, tuple[str, str]] = {
    ActorName.SENTIMENT_ANALYZER: ("sentiment_analyzer", "SentimentAnalyzer"),
    ActorName.INTENT_ANALYZER: ("intent_analyzer", "IntentAnalyzer"),
    ActorName.CONTEXT_RETRIEVER: ("context_retriever", "ContextRetriever"),
    ActorName.DECISION_ROUTER: ("decision_router", "DecisionRouter"),
    ActorName.EXECUTION_COORDINATOR: ("execution_coordinator", "ExecutionCoordinator"),
    ActorName.RESPONSE_GENERATOR: ("response_generator", "ResponseGenerator"),
    ActorName.GUARDRAIL_VALIDATOR: ("guardrail_validator", "GuardrailValidator"),
    ActorName.ESCALATION_ROUTER: ("escalation_router", "EscalationRouter"),
    ActorName.RESPONSE_AGGREGATOR: ("response_aggregator", "ResponseAggregator"),
}


def build_actor(name: ActorName | str, deps: ActorDeps) -> Actor:
    """A new, not yet started actor. Raises KeyError/ValueError for an unknown name."""
    actor_name = ActorName(name)
    module_name, class_name = ACTOR_CLASSES[actor_name]
    module = importlib.import_module(f"actormesh_runtime.actors.{module_name}")
    cls = getattr(module, class_name)
    return cast(Actor, cls(deps))

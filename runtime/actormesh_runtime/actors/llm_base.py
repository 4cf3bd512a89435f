"""`LLMActor`: the base of the actors that may call an LLM (intent_analyzer, response_generator).

`self.llm` is the process's shared `LLMClient`, or None when LITELLM_MODEL is not set (the actor then
works on rules or templates alone). `start()` imports litellm off the event loop, so the first real
call is not slowed by the import.

`llm_budget_s` bounds each call by what is left of the caller's wait: a conversation may call the
model three times (intent, draft, a regenerated draft), each up to LLM_TIMEOUT_S (10 s), and with a
slow model those alone reached REQUEST_TIMEOUT_S (30 s): the caller got a 504 although the template
answer needed no model at all. A call now gets at most the time left before the caller stops waiting,
less a margin for the steps after it, and none when too little is left (the template answers).

It is also cut to the step's own budget, PROCESSING_TIMEOUT_S less `STEP_MARGIN_S`: with LLM_TIMEOUT_S
raised past it (a slow self-hosted model), the host cut the step before the call gave up, the step was
retried as a timeout, each delivery asked (and paid) the model again, and after MAX_DELIVER the
conversation took the error path to a human, although the rules could have answered it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from actormesh_runtime.actors.base import PlainActor
from actormesh_runtime.envelope import Envelope
from actormesh_runtime.llm.client import LLMClient, shared_client
from actormesh_runtime.llm.errors import LLMTimeout
from actormesh_runtime.resources import ActorDeps

REPLY_MARGIN_S = 2.0
"""Kept for what follows an LLM call: the guardrail, the aggregation, the reply's way back."""
MIN_LLM_S = 1.0
"""Less than this left: the model is not asked (no model answers in less)."""
STEP_MARGIN_S = 1.0
"""Kept of the step's PROCESSING_TIMEOUT_S for the actor's work after the call (the fallback)."""


class LLMActor(PlainActor):
    def __init__(self, deps: ActorDeps) -> None:
        super().__init__(deps)
        self.llm: LLMClient | None = shared_client(deps.settings, deps.extras)

    async def start(self) -> None:
        if self.llm is not None:
            await self.llm.warm_up()

    def llm_budget_s(self, envelope: Envelope) -> float:
        """Seconds this step may wait for the model: LLM_TIMEOUT_S, cut to what is left before the
        caller stops waiting (REQUEST_TIMEOUT_S after the message arrived) less `REPLY_MARGIN_S`, and to
        the step's PROCESSING_TIMEOUT_S less `STEP_MARGIN_S`. `LLMTimeout` when less than `MIN_LLM_S`
        is left: answered from rules or templates at once."""
        assert self.llm is not None
        settings = self.deps.settings
        waited = (datetime.now(UTC) - envelope.created_at).total_seconds()
        left = settings.request_timeout_s - waited - REPLY_MARGIN_S
        if left < MIN_LLM_S:
            raise LLMTimeout("not asked: the caller's wait is nearly over")
        step = settings.processing_timeout_s - STEP_MARGIN_S
        if step < MIN_LLM_S:
            raise LLMTimeout("not asked: PROCESSING_TIMEOUT_S leaves no time for a call")
        return min(self.llm.timeout_s, left, step)

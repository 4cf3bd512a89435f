"""`LLMActor`: the base of the actors that may call an LLM (intent_analyzer, response_generator).

`self.llm` is the process's shared `LLMClient`, or None when LITELLM_MODEL is not set (the actor then
works on rules or templates alone). `start()` imports litellm off the event loop, so the first real
call is not slowed by the import.
"""

from __future__ import annotations

from actormesh_runtime.actors.base import PlainActor
from actormesh_runtime.llm.client import LLMClient, shared_client
from actormesh_runtime.resources import ActorDeps


class LLMActor(PlainActor):
    def __init__(self, deps: ActorDeps) -> None:
        super().__init__(deps)
        self.llm: LLMClient | None = shared_client(deps.settings, deps.extras)

    async def start(self) -> None:
        if self.llm is not None:
            await self.llm.warm_up()

"""`ScriptedLLM`: our own LLM client interface with scripted outcomes, for unit tests (no sockets).

The real litellm-over-HTTP path is covered by tests/integration/test_llm_path.py.
"""

from __future__ import annotations

from actormesh_runtime.llm.client import LLMClient, LLMReply, Messages
from actormesh_runtime.llm.errors import LLMError
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.settings import RuntimeSettings
from tests.support.envelopes import make_deps

LLM_SETTINGS = RuntimeSettings(mesh_name="unit", litellm_model="openai/scripted")


class ScriptedLLM(LLMClient):
    """Answers each call with the next outcome (text, or an LLMError to raise); records the messages."""

    def __init__(self, *outcomes: str | LLMError) -> None:
        super().__init__(LLM_SETTINGS)
        self.outcomes = list(outcomes)
        self.calls: list[Messages] = []
        self.timeouts: list[float | None] = []
        """The time each call was given (the actor's budget)."""

    async def complete_text(
        self, messages: Messages, *, actor: str, max_tokens: int = 400, timeout_s: float | None = None
    ) -> LLMReply:
        self.calls.append(messages)
        self.timeouts.append(timeout_s)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, LLMError):
            raise outcome
        return LLMReply(outcome, 10, 5)

    def prompt_text(self, index: int = -1) -> str:
        return "\n".join(m["content"] for m in self.calls[index])


def deps_with(llm: ScriptedLLM) -> ActorDeps:
    """Deps whose shared LLM client is `llm` (what `llm.client.shared_client` hands the actors)."""
    deps = make_deps(LLM_SETTINGS)
    deps.extras["llm_client"] = llm
    return deps

"""response_generator: drafts the reply from the real data in the envelope.

Runs after decision_router (and execution_coordinator when actions were taken), and again when
guardrail_validator sends a draft back with reasons. Writes `envelope.draft`.

The template for the intent always works and is the fallback. With LITELLM_MODEL set, the LLM drafts
the reply from a prompt holding the same facts (orders, tracking, action outcomes), the store
policies and, on regeneration, the guardrail's reasons; any LLM failure (a refusal included) keeps
the template and records why. A message flagged as prompt injection gets a safe generic reply and no LLM.
"""

from __future__ import annotations

import re
from typing import ClassVar

from actormesh_runtime.actors.llm_base import LLMActor
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import DraftResponse, Envelope
from actormesh_runtime.llm import prompts
from actormesh_runtime.llm.errors import LLMError, LLMInvalidResponse
from actormesh_runtime.replies import facts, templates
from actormesh_runtime.textfold import fold, plain_apostrophes

# A model's refusal ("I'm sorry, but I can't assist with that request.") is well-formed text that
# passes every guardrail check, yet says nothing: the template has the customer's real facts. Only a
# refusal of the whole request counts: "I can't help with refunds in chat, but..." is an answer.
_REFUSAL = re.compile(
    r"(?:(?:i'm|i am|we're|we are)\s+(?:very\s+|so\s+|really\s+)?sorry|sorry|(?:i|we)\s+apologi[sz]e"
    r"|unfortunately)?[\s,.!]*(?:but\s+)?(?:i|we)(?:'m|\s+am|'re|\s+are)?\s+"
    r"(?:can't|cannot|can not|unable to|not able to|won't|will not|must decline to)\s+"
    r"(?:help|assist|comply|fulfil+|respond|answer|continue|engage)"
    r"(?:\s+(?:you|with|that|this|the|your|request|here|it)\b)*\s*(?:[.!]|$)"
)


def is_refusal(text: str) -> bool:
    return _REFUSAL.match(plain_apostrophes(fold(text.strip()))) is not None


def regeneration(envelope: Envelope) -> tuple[int, list[str]]:
    """(attempt number, reasons): attempt 2 with the guardrail's reasons when it asked for a new draft."""
    verdict, draft = envelope.guardrail, envelope.draft
    if verdict is not None and verdict.action == "regenerate" and draft is not None:
        return draft.attempt + 1, list(verdict.reasons)
    return 1, []


class ResponseGenerator(LLMActor):
    name: ClassVar[ActorName] = ActorName.RESPONSE_GENERATOR

    async def handle(self, envelope: Envelope) -> None:
        attempt, reasons = regeneration(envelope)
        template = templates.compose(envelope)
        draft = DraftResponse(text=template, method="template", attempt=attempt, regenerate_reasons=reasons)
        # A follow-up on a reference quotes its record (state, the agent's words): the template does
        # that exactly, and an LLM paraphrase could misstate it.
        if self.llm is not None and not envelope.screening.prompt_injection and not envelope.followups:
            try:
                reply = await self.llm.complete_text(
                    prompts.response_messages(
                        message=envelope.message,
                        intent=envelope.intent.intent.value if envelope.intent else "unknown",
                        facts=facts.facts(envelope),
                        template_reply=template,
                        regenerate_reasons=reasons,
                        customer_email=envelope.customer_email,
                    ),
                    actor=self.name.value,
                    timeout_s=self.llm_budget_s(envelope),
                )
            except LLMError as exc:
                draft.llm_fallback_reason = f"{exc.reason}: {exc}"[:300]
            else:
                if is_refusal(reply.text):
                    draft.llm_fallback_reason = f"{LLMInvalidResponse.reason}: refusal"
                else:
                    draft.text, draft.method = reply.text.strip(), "llm"
        envelope.draft = draft

"""intent_analyzer: one of ten intents with a confidence, and the entities the later actors need.

Second step of every route. Writes `envelope.intent`.

Rules always run: weighted phrase patterns per intent; the highest total wins (ties go to the
more specific, actionable intent), and the confidence grows with the winning score and with its
margin over the runner-up. Entities come from strict patterns: order ids `ORD-12345`, tracking
numbers `TRK123456789`, money amounts and email addresses.

With LITELLM_MODEL set, the LLM is asked for JSON, validated with pydantic; its intent wins, rules
fill any gap, and only entities that really occur in the message are kept (no hallucinated
order ids). Any LLM failure (timeout, HTTP error, garbage) leaves the rules result, with
`method="rules"` and the reason in `llm_fallback_reason`. A message flagged as prompt injection is
never shown to the LLM.
"""

from __future__ import annotations

import math
import re
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from actormesh_runtime.actors.llm_base import LLMActor
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import Entities, Envelope, Intent, IntentResult
from actormesh_runtime.llm import prompts
from actormesh_runtime.llm.errors import LLMError
from actormesh_runtime.screening import EMAIL_RE
from actormesh_runtime.textfold import fold

ORDER_ID_RE = re.compile(r"\bORD-(\d{5})\b", re.IGNORECASE)
TRACKING_RE = re.compile(r"\bTRK\d{9}\b", re.IGNORECASE)
_AMOUNT_RES = (
    re.compile(r"\$\s?(\d{1,3}(?:,\d{3})+|\d+)(\.\d{1,2})?"),
    re.compile(r"\b(\d{1,3}(?:,\d{3})+|\d+)(\.\d{1,2})?\s?(?:dollars|usd|bucks)\b", re.IGNORECASE),
)

# (pattern, weight) per intent. Each pattern counts once, so repeating a word cannot inflate a score.
# Lower-case: matched without re.IGNORECASE against the folded message (`textfold.fold`).
_RULES: dict[Intent, tuple[tuple[str, int], ...]] = {
    Intent.ESCALATION_REQUEST: (
        (
            r"(?:speak|talk|chat) (?:to|with) (?:a |an |your )?(?:human|person|manager|supervisor|agent|"
            r"representative|someone|somebody)",
            4,
        ),
        (r"real (?:person|human)|human agent|live agent", 4),
        (r"manager|supervisor|human|representative", 3),
    ),
    Intent.CANCELLATION_REQUEST: (
        (r"cancel (?:my |the |this |that |an? )?(?:order|purchase)|cancel ord-\d{5}|cancel it", 3),
        (r"want to cancel|cancellation", 3),
        (r"cancel(?:led|ling)?|don'?t want (?:it|this|the order) anymore|changed my mind", 2),
    ),
    Intent.RETURN_REQUEST: (
        (
            r"return (?:it|this|them|my|the|an?|ord-\d{5})|want to return|return label"
            r"|send (?:it|this|them) back",
            3,
        ),
        (r"exchange (?:it|this|them|for)", 3),
        (r"returns?|returning|exchange", 2),
    ),
    Intent.BILLING_ISSUE: (
        (r"(?:charged|billed) (?:me )?(?:twice|double|two times)|double[- ]charged|overcharged", 3),
        (r"refund(?:ed)?|money back|wrong (?:charge|amount)|unauthori[sz]ed charge", 3),
        (r"charged?|billing|bill|invoice|payment|paid|credit card|receipt", 2),
    ),
    Intent.DELIVERY_ISSUE: (
        (
            r"(?:hasn'?t|has not|haven'?t|didn'?t|did not|never|still not|not yet) "
            r"(?:arrived|been delivered|delivered|received|come|shown up|got(?:ten)? it)",
            3,
        ),
        (
            r"still not here|lost (?:package|parcel|order|in the mail)|wrong address|package (?:is )?missing",
            3,
        ),
        (r"delivery (?:problem|issue|exception)|stuck in transit|marked as delivered|address correction", 3),
        (r"(?:package|parcel|shipment|order|delivery)\b[^.?!]{0,20}\bstuck", 3),
        (r"late|delayed|delay|missing|lost|courier|exception|stuck", 2),
    ),
    Intent.PRODUCT_ISSUE: (
        (
            r"(?:doesn'?t|does not|won'?t|stopped|isn'?t|not) work(?:ing)?|(?:arrived|came) "
            r"(?:broken|damaged|cracked)",
            3,
        ),
        (r"wrong (?:item|size|colou?r|product)|missing (?:part|piece)s?|defective|faulty", 3),
        (r"broken|damaged|cracked|malfunction\w*|poor quality", 2),
    ),
    Intent.ACCOUNT_ISSUE: (
        (
            r"(?:reset|forgot|change|forgotten) (?:my )?password"
            r"|can'?t (?:log|sign) ?in|cannot (?:log|sign) ?in",
            3,
        ),
        (r"account (?:is |was |has been )?(?:locked|suspended|disabled|blocked|hacked|deactivated)", 3),
        (r"update my (?:email|address|account|details|profile)|delete my account", 3),
        (r"account|password|log ?in|sign ?in|profile", 2),
    ),
    Intent.ORDER_STATUS: (
        (r"where(?:'s| is) (?:my )?(?:order|package|parcel|stuff|delivery|ord-\d{5})", 3),
        (r"order status|status of (?:my )?(?:order|ord-\d{5})|track (?:my )?(?:order|package|parcel)", 3),
        (r"when will (?:my order|it|my package|ord-\d{5}) (?:arrive|ship|be delivered|get here)", 3),
        (r"ha(?:s|ve) (?:my order|it|they|ord-\d{5}) (?:shipped|been shipped)", 3),
        (r"where(?:'s| is) (?:it|that|this|the package)", 2),
        (r"track(?:ing)?|shipped|eta|arrive|status|trk\d{9}", 1),
    ),
    Intent.COMPLIMENT: (
        (r"thank you|thanks|great (?:service|job|support)|love (?:it|your|the)|well done", 3),
        (r"excellent|awesome|amazing|appreciate(?:d)?|fantastic|wonderful", 3),
    ),
    Intent.GENERAL_QUESTION: (
        (r"(?:what(?:'s| is| are)) (?:your|the) [\w\s-]{0,20}polic(?:y|ies)", 4),
        (r"do you (?:ship|sell|offer|have|accept)|shipping (?:cost|fee|policy|options)|free shipping", 4),
        (r"how (?:long|much) (?:does|is|do|will)|opening hours|store hours|warranty", 3),
        (r"hello|hi|hey|question|how do i|can i|policy", 1),
    ),
}
# Dict order above is the tie-break: specific, actionable intents before broad ones.
_COMPILED = {
    intent: tuple((re.compile(rf"\b(?:{p})\b"), w) for p, w in rules) for intent, rules in _RULES.items()
}
# Per intent, the union of its patterns: it matches exactly when one of them does (the engine backtracks
# into the alternation when the closing \b fails). A message matches two or three intents of ten, so
# the other intents cost one search each instead of one per pattern (36 searches -> ~15).
_GATES = {
    intent: re.compile(r"\b(?:" + "|".join(f"(?:{p})" for p, _ in rules) + r")\b")
    for intent, rules in _RULES.items()
}
NO_MATCH_CONFIDENCE = 0.5


def score_intents(text: str) -> dict[Intent, int]:
    folded = fold(text)
    return {
        intent: sum(w for p, w in rules if p.search(folded)) if _GATES[intent].search(folded) else 0
        for intent, rules in _COMPILED.items()
    }


def confidence_for(best: int, runner_up: int) -> float:
    """0.45 base, up to +0.25 for strength (score 3 = one strong phrase) and +0.25 for margin."""
    strength = min(1.0, best / 3)
    margin = (best - runner_up) / best
    return round(min(0.95, 0.45 + 0.25 * strength + 0.25 * margin), 2)


def _dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _amounts(text: str) -> list[float]:
    found: list[float] = []
    for pattern in _AMOUNT_RES:
        for m in pattern.finditer(text):
            value = float(m.group(1).replace(",", "") + (m.group(2) or ""))
            if math.isfinite(value):  # "$999…" with 309+ digits is infinity, not an amount
                found.append(value)
    return list(dict.fromkeys(found))


def extract_entities(text: str) -> Entities:
    return Entities(
        order_ids=_dedupe([f"ORD-{m.group(1)}" for m in ORDER_ID_RE.finditer(text)]),
        tracking_numbers=_dedupe([m.group().upper() for m in TRACKING_RE.finditer(text)]),
        amounts=_amounts(text),
        emails=_dedupe([m.group().lower() for m in EMAIL_RE.finditer(text)]),
    )


def classify(text: str) -> IntentResult:
    """The rules result: always available, never raises."""
    scores = score_intents(text)
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])  # stable: ties keep the dict order
    (best_intent, best), (_, runner_up) = ranked[0], ranked[1]
    entities = extract_entities(text)
    if best == 0:
        return IntentResult(intent=Intent.GENERAL_QUESTION, confidence=NO_MATCH_CONFIDENCE, entities=entities)
    return IntentResult(intent=best_intent, confidence=confidence_for(best, runner_up), entities=entities)


class LLMIntentReply(BaseModel):
    """What the LLM must answer; unknown fields are ignored, missing lists are empty."""

    model_config = ConfigDict(extra="ignore")

    intent: Intent
    confidence: float | None = Field(None, ge=0.0, le=1.0)
    order_ids: list[str] = Field(default_factory=list)
    tracking_numbers: list[str] = Field(default_factory=list)
    amounts: list[float] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list)


def merge(rules: IntentResult, reply: LLMIntentReply, text: str) -> IntentResult:
    """LLM intent, rules for the gaps; LLM entities only when they occur in the message."""
    upper, lower = text.upper(), text.lower()
    found = extract_entities(text)
    llm_orders = [o.upper() for o in reply.order_ids if ORDER_ID_RE.fullmatch(o) and o.upper() in upper]
    llm_tracking = [
        t.upper() for t in reply.tracking_numbers if TRACKING_RE.fullmatch(t) and t.upper() in upper
    ]
    llm_emails = [e.lower() for e in reply.emails if EMAIL_RE.fullmatch(e) and e.lower() in lower]
    confidence = reply.confidence
    if confidence is None:
        confidence = rules.confidence if reply.intent == rules.intent else 0.6
    return IntentResult(
        intent=reply.intent,
        confidence=confidence,
        entities=Entities(
            order_ids=_dedupe([*found.order_ids, *llm_orders]),
            tracking_numbers=_dedupe([*found.tracking_numbers, *llm_tracking]),
            amounts=found.amounts,  # an amount the rules did not see is not in the message
            emails=_dedupe([*found.emails, *llm_emails]),
        ),
        method="llm",
    )


class IntentAnalyzer(LLMActor):
    name: ClassVar[ActorName] = ActorName.INTENT_ANALYZER

    async def handle(self, envelope: Envelope) -> None:
        rules = classify(envelope.message)
        if self.llm is None:
            envelope.intent = rules
            return
        if envelope.screening.prompt_injection:
            rules.llm_fallback_reason = "prompt_injection: message not shown to the LLM"
            envelope.intent = rules
            return
        try:
            reply = await self.llm.complete_json(
                prompts.intent_messages(envelope.message, envelope.customer_email),
                LLMIntentReply,
                actor=self.name.value,
                timeout_s=self.llm_budget_s(envelope),
            )
        except LLMError as exc:
            rules.llm_fallback_reason = f"{exc.reason}: {exc}"[:300]
            envelope.intent = rules
            return
        envelope.intent = merge(rules, reply, envelope.message)

"""guardrail_validator: the last check before a draft reaches the customer; records its verdict.

Runs after response_generator. A draft is rejected when it contains:
- PII: a card number (Luhn), an SSN, or an email address other than the customer's own;
- profanity or hostile words, matched on word boundaries ("issue" is not "sue", "hello" not "hell");
- promises: refunds, credits or money amounts, guarantees;
- policy contradictions: a return window other than 30 days, no returns, a free-shipping threshold
  other than $50, a warranty other than 1 year.

First rejection: verdict "regenerate" and the slip becomes response_generator → guardrail_validator
→ response_aggregator, so the draft is rewritten once with the reasons. Second rejection: escalate
to a human when urgency is high or critical, else replace the draft with the safe template
(verdict "replaced", the text in `verdict.replacement`).
"""

from __future__ import annotations

import re
from typing import ClassVar

from actormesh_runtime.actors.base import ActorDeps
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import Envelope, GuardrailVerdict, Urgency
from actormesh_runtime.replies import templates
from actormesh_runtime.replies.facts import FREE_SHIPPING_OVER, RETURN_WINDOW_DAYS
from actormesh_runtime.screening import EMAIL_RE, find_card_numbers, find_ssns

REGENERATE_ROUTE = [
    ActorName.RESPONSE_GENERATOR,
    ActorName.GUARDRAIL_VALIDATOR,
    ActorName.RESPONSE_AGGREGATOR,
]
ESCALATE_ROUTE = [ActorName.ESCALATION_ROUTER, ActorName.RESPONSE_AGGREGATOR]

_PROFANITY = re.compile(
    r"\b(?:damn|hell|shit\w*|bullshit|f+u+c+k\w*|crap|bastards?|ass|asshole|bitch\w*|piss(?:ed)?|dick|wtf|stfu"
    r"|sue|idiots?|stupid|morons?|dumb|shut up)\b",
    re.IGNORECASE,
)
_PROMISES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern, re.IGNORECASE))
    for label, pattern in (
        (
            "refund promised",
            r"\b(?:we|i)(?:'ll| will| shall| are going to| am going to| can| have)\s+"
            r"(?:(?:issue|give|send|process|approve)d?\s+(?:you\s+)?(?:a\s+|your\s+)?)?(?:full\s+)?"
            r"(?:refund|reimburs|credit|compensat)\w*",
        ),
        (
            "refund promised",
            r"\byou(?:'ll| will| are going to)\s+(?:definitely\s+|certainly\s+)?(?:get|receive|be)\s+"
            r"(?:a\s+|your\s+)?(?:full\s+)?(?:refund|refunded|reimbursed|credited|compensated|money back)",
        ),
        ("refund promised", r"\brefund\s+(?:has been|is|was|will be)\s+(?:approved|processed|issued|sent)"),
        (
            "amount promised",
            r"(?:refund|credit|compensation|voucher|coupon|reimbursement)\s+(?:of\s+|for\s+)?\$\s?\d",
        ),
        (
            "amount promised",
            r"\$\s?\d[\d,]*(?:\.\d{1,2})?\s+(?:refund|credit|back|compensation|voucher|coupon)",
        ),
        ("guarantee", r"\bguarantee[ds]?\b|\b(?:i|we)\s+promise\b"),
        (
            "guarantee",
            r"\bwill\s+(?:definitely|certainly|surely)\s+(?:arrive|be delivered|be refunded|be fixed)",
        ),
    )
)
_RETURN_DAYS = (
    re.compile(r"\b(\d+)[- ]day\s+(?:return|refund|money[- ]back)", re.IGNORECASE),
    re.compile(r"\breturns?\b[^.]{0,40}?\bwithin\s+(\d+)\s+days?\b", re.IGNORECASE),
    re.compile(r"\b(\d+)\s+days?\s+(?:to|for)\s+(?:a\s+)?returns?\b", re.IGNORECASE),
)
_NO_RETURNS = re.compile(
    r"\b(?:no returns|(?:do not|don't|cannot|can't|never) accept returns"
    r"|returns are not (?:accepted|possible))\b",
    re.IGNORECASE,
)
_SHIPPING = (
    re.compile(r"free shipping[^.]{0,30}?\$\s?(\d+)", re.IGNORECASE),
    re.compile(r"\$\s?(\d+)[^.]{0,25}?free shipping", re.IGNORECASE),
)
_WARRANTY = (
    re.compile(r"\b(\d+)[- ](year|month)s?\s+warranty", re.IGNORECASE),
    re.compile(r"\bwarranty\s+(?:of|for|lasts?|is)\s+(\d+)\s+(year|month)s?", re.IGNORECASE),
)
_WARRANTY_WRONG = re.compile(r"\b(?:lifetime|no)\s+warranty\b", re.IGNORECASE)


def _pii(text: str, own_email: str) -> list[str]:
    reasons = []
    if find_card_numbers(text):
        reasons.append("pii: card number")
    if find_ssns(text):
        reasons.append("pii: social security number")
    if any(m.group().lower() != own_email.lower() for m in EMAIL_RE.finditer(text)):
        reasons.append("pii: email address other than the customer's")
    return reasons


def _policy(text: str) -> list[str]:
    reasons = []
    days = {int(m.group(1)) for p in _RETURN_DAYS for m in p.finditer(text)}
    if days - {RETURN_WINDOW_DAYS} or _NO_RETURNS.search(text):
        reasons.append(f"policy contradiction: returns are accepted within {RETURN_WINDOW_DAYS} days")
    if {int(m.group(1)) for p in _SHIPPING for m in p.finditer(text)} - {FREE_SHIPPING_OVER}:
        reasons.append(f"policy contradiction: shipping is free over ${FREE_SHIPPING_OVER}")
    months = {
        int(m.group(1)) * (12 if m.group(2).lower() == "year" else 1)
        for p in _WARRANTY
        for m in p.finditer(text)
    }
    if months - {12} or _WARRANTY_WRONG.search(text):
        reasons.append("policy contradiction: electronics have a 1-year warranty")
    return reasons


def check(text: str, own_email: str) -> list[str]:
    """Every reason to reject `text` (empty: approved). Pure; table-tested."""
    reasons = _pii(text, own_email)
    profane = sorted({m.group().lower() for m in _PROFANITY.finditer(text)})
    if profane:
        reasons.append("profanity: " + ", ".join(profane))
    reasons.extend(dict.fromkeys(label for label, p in _PROMISES if p.search(text)))
    reasons.extend(_policy(text))
    return reasons


def replacement_text(envelope: Envelope) -> str:
    """The template reply if it passes the checks (it normally does), else the generic safe reply."""
    template = templates.compose(envelope)
    return template if not check(template, envelope.customer_email) else templates.safe_reply(envelope)


class GuardrailValidator:
    name: ClassVar[ActorName] = ActorName.GUARDRAIL_VALIDATOR

    def __init__(self, deps: ActorDeps) -> None:
        self.deps = deps

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def handle(self, envelope: Envelope) -> None:
        draft = envelope.draft
        reasons = check(draft.text, envelope.customer_email) if draft else ["no draft to validate"]
        if not reasons:
            envelope.guardrail = GuardrailVerdict(approved=True, action="approved")
            return
        if draft is not None and draft.attempt < 2:
            envelope.guardrail = GuardrailVerdict(approved=False, reasons=reasons, action="regenerate")
            envelope.slip.replace_remaining(list(REGENERATE_ROUTE))
            return
        urgency = envelope.sentiment.urgency if envelope.sentiment else Urgency.LOW
        if urgency in (Urgency.HIGH, Urgency.CRITICAL):
            envelope.guardrail = GuardrailVerdict(approved=False, reasons=reasons, action="escalate")
            envelope.slip.replace_remaining(list(ESCALATE_ROUTE))
            return
        envelope.guardrail = GuardrailVerdict(
            approved=False, reasons=reasons, action="replaced", replacement=replacement_text(envelope)
        )

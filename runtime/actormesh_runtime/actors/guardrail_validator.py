"""guardrail_validator: the last check before a draft reaches the customer; records its verdict.

Runs after response_generator. A draft is rejected when it contains:
- PII: a card number (Luhn), an SSN, or an email address other than the customer's own;
- profanity or hostile words, matched on word boundaries ("issue" is not "sue", "hello" not "hell");
- promises: refunds, credits or money amounts, guarantees; discounts, coupons, vouchers, promo codes
  or store credit (offered, given or applied — not the customer's own mention quoted back);
- policy contradictions: a return window, free-shipping threshold or warranty other than the store's
  (`store_policy`), or "no returns".
An LLM draft is also rejected for an order id or tracking number the mesh does not have (made up), and
for repeating its prompt ("prompt repeated": the rules, the facts list or the reference reply quoted back,
`llm.prompts.repeats_prompt`).
Every check reads the draft as the customer will (`pii.readable`: invisible characters dropped,
fullwidth, accented and look-alike letters read as the Latin ones), so "re<U+00AD>fund" is a refund;
the draft itself goes out as written when it passes.
An agent's reply that a follow-up template quotes is a person's words and is not checked.

First rejection: verdict "regenerate" and the slip becomes response_generator → guardrail_validator
→ response_aggregator, so the draft is rewritten once with the reasons. Second rejection: escalate
to a human when urgency is high or critical, else replace the draft with the safe template
(verdict "replaced", the text in `verdict.replacement`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import ClassVar

from actormesh_runtime.actors.base import PlainActor
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import Envelope, GuardrailVerdict, Urgency
from actormesh_runtime.llm.prompts import repeats_prompt
from actormesh_runtime.replies import templates
from actormesh_runtime.screening import EMAIL_RE, find_card_numbers, find_ssns, normalise, readable
from actormesh_runtime.store_policy import (
    FREE_SHIPPING_OVER,
    RETURN_WINDOW_DAYS,
    WARRANTY_MONTHS,
    WARRANTY_YEARS,
)
from actormesh_runtime.textfold import fold, plain_apostrophes

REGENERATE_ROUTE = [
    ActorName.RESPONSE_GENERATOR,
    ActorName.GUARDRAIL_VALIDATOR,
    ActorName.RESPONSE_AGGREGATOR,
]
ESCALATE_ROUTE = [ActorName.ESCALATION_ROUTER, ActorName.RESPONSE_AGGREGATOR]

# Every pattern is lower-case and matched without re.IGNORECASE against `fold(readable(text).text)`
# (fold: same matches, same offsets, several times faster). A pattern with keywords runs only when one
# of them occurs in the folded text: each match of the pattern contains one of its keywords, so
# skipping it is exact.
_PROFANITY = re.compile(
    r"\b(?:damn|hell|shit\w*|bullshit|f+u+c+k\w*|crap|bastards?|ass|asshole|bitch\w*|piss(?:ed)?|dick|wtf|stfu"
    r"|sue|idiots?|stupid|morons?|dumb|shut up)\b"
)
_REFUND_WORDS = ("refund", "reimburs", "credit", "compensat", "money back")
_WE = (
    r"\b(?:we|i)(?:'ve|'m|'re|'d|'ll| have| had| am| are| will| would| shall| can| could)?\s+"
    r"(?:(?:also|already|just|now|gladly|happily|personally|(?:gone|went|go) ahead and"
    r"|be (?:happy|glad|pleased) to|(?:happy|glad|pleased) to|like to|love to|going to|able to)\s+)*"
)
"""A first person about to act: "I've", "we're", "I'd be happy to", "I went ahead and" (no "not")."""
_NOT_A_REFUND = r"(?!\s+(?:request|claim|application|review|form|polic|team|department|card))"
_PROMISES: tuple[tuple[str, tuple[str, ...], re.Pattern[str]], ...] = tuple(
    (label, keywords, re.compile(pattern))
    for label, keywords, pattern in (
        (
            "refund promised",
            _REFUND_WORDS,
            r"\b(?:we|i)(?:'ll| will| shall| are going to| am going to| can| have)\s+"
            r"(?:(?:issue|give|send|process|approve)d?\s+(?:you\s+)?(?:a\s+|your\s+)?)?(?:full\s+)?"
            r"(?:refund|reimburs|credit|compensat)\w*\b" + _NOT_A_REFUND,
        ),
        (
            "refund promised",
            _REFUND_WORDS,
            r"\byou(?:'ll| will| are going to)\s+(?:definitely\s+|certainly\s+)?(?:get|receive|be)\s+"
            r"(?:a\s+|your\s+)?(?:full\s+)?(?:refund|refunded|reimbursed|credited|compensated|money back)",
        ),
        # The phrasings an LLM drafts a done deal in: contractions ("I've issued", "we're refunding"),
        # "went ahead and", passives about the refund, the order or the money. A refund *request* filed
        # for review, a credit card, or the refund team stay allowed (`_NOT_A_REFUND`).
        (
            "refund promised",
            _REFUND_WORDS,
            _WE + r"(?:issu|giv|gave|sen[dt]|process|approv|initiat|arrang|authori[sz])\w*\s+(?:you\s+)?"
            r"(?:a\s+|an\s+|your\s+|the\s+)?(?:full\s+|complete\s+)?"
            r"(?:refund|reimbursement|credit|compensation|money back)\b" + _NOT_A_REFUND,
        ),
        (
            "refund promised",
            _REFUND_WORDS,
            _WE + r"(?:refund|reimburs|credit|compensat)(?:e|ed|es|ing|s)?\b" + _NOT_A_REFUND,
        ),
        (
            "refund promised",
            ("refunded", "reimbursed", "credited"),
            r"\b(?:we|i)(?:'ll| will|'re going to| are going to| can|'ve| have)\s+"
            r"(?:got|get|gotten|had|have)\s+(?:that|it|this|everything|your\s+\w+|the\s+\w+)\s+"
            r"(?:fully\s+)?(?:refunded|reimbursed|credited)",
        ),
        (
            "refund promised",
            _REFUND_WORDS,
            r"\byou(?:'ve| have)\s+(?:already\s+|now\s+)?been\s+(?:fully\s+)?"
            r"(?:refunded|reimbursed|credited|compensated)",
        ),
        (
            "refund promised",
            _REFUND_WORDS,
            r"(?:\byou(?:'re| are)\s+(?:now\s+|also\s+)?(?:getting|receiving)"
            r"|\b(?:make sure|ensure|see to it that)\s+you\s+(?:get|receive))\s+"
            r"(?:a\s+|your\s+)?(?:full\s+)?(?:refund|reimbursement|money back)\b" + _NOT_A_REFUND,
        ),
        (
            "refund promised",
            ("refunded", "reimbursed", "credited back", "returned to your"),
            r"\b(?:order|payment|purchase|charge|amount|money|funds|total|it)\s+"
            r"(?:has|have|had|will|is|are|was|were)\s+(?:already\s+)?(?:been\s+|be\s+|being\s+)?"
            r"(?:fully\s+)?(?:refunded|reimbursed|credited back|returned to your)",
        ),
        (
            "refund promised",
            ("refund",),
            # Not a condition: "if your refund is approved, it goes back to your card" promises nothing.
            "".join(f"(?<!{w} {d} )" for w in ("if", "once", "when", "whether") for d in ("the", "your", "a"))
            + r"\brefund\s+(?:has|is|was|will)\s+(?:already\s+)?(?:been\s+|be\s+|being\s+)?"
            r"(?:approved|processed|issued|sent|initiated|completed|authori[sz]ed|on (?:its|the) way)",
        ),
        (
            "amount promised",
            ("$",),
            r"(?:refund|credit|compensation|voucher|coupon|reimbursement)\s+(?:of\s+|for\s+)?\$\s?\d",
        ),
        (
            "amount promised",
            ("$",),
            r"\$\s?\d[\d,]*(?:\.\d{1,2})?\s+(?:refund|credit|back|compensation|voucher|coupon)",
        ),
        ("guarantee", ("guarantee", "promise"), r"\bguarantee[ds]?\b|\b(?:i|we)\s+promise\b"),
        (
            "guarantee",
            ("will",),
            r"\bwill\s+(?:definitely|certainly|surely)\s+(?:arrive|be delivered|be refunded|be fixed)",
        ),
    )
)
# Perks nobody in chat may hand out. A draft quoting the customer's own mention ("the coupon you
# mentioned") or declining ("we can't offer discounts") names one without promising it, so each
# pattern needs a giver (we/I + a giving verb), a receiver (you + get/receive/be given), a done deal
# (applied, sent, added...), an offer ("here's", "use code ...") or an amount — as refunds do.
_PERK = (
    r"(?:discount|coupon|voucher|promo(?:tional)?\s+code|promo|(?:store|account)\s+credit"
    r"|gift\s+card|credit\s+note)"
)
_PERK_WORDS = ("discount", "coupon", "voucher", "promo", "credit", "gift", "code", "off")
"""Every match of a `_DISCOUNTS` pattern contains one of these, so the keyword gate stays exact."""
# Up to three words between the verb and the perk ("a one-time 15% discount"), never a preposition
# that makes the perk the topic rather than the gift ("a note about the coupon").
_GAP = (
    r"(?:(?!(?:about|regarding|concerning|on|for|to|that|which|whether|if|note|question|request)\b)"
    r"[\w$%.,'-]+\s+){0,3}"
)
_GIVERS = (
    r"\b(?:we|i)(?:'ll| will| shall|'d| would| can| could|'ve| have|'m| am|'re| are)\s+"
    r"(?:(?:also|now|gladly|happily|going to|like to|love to|(?:happy|glad|pleased) to)\s+)*"
    r"(?:giv|offer|send|sent|issu|apply|appli|add|provid|email|extend|credit)\w*\s+"
    r"(?:you\s+|your\s+account\s+(?:with\s+)?)?"
)
_RECEIVERS = (
    r"(?<!whether )(?<!if )\byou(?:'ll| will| are going to|'re going to| shall|'ve| have|'re| are)\s+"
    r"(?:(?:also|now|then|definitely|certainly)\s+)*"
    r"(?:get|receive|received|got|earned|be\s+(?:given|sent|issued|offered|emailed)"
    r"|been\s+(?:given|sent|issued|offered|awarded|emailed)|(?:entitled|eligible)\s+(?:to|for)|qualify\s+for)\s+"
)
_DISCOUNTS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        _GIVERS + _GAP + _PERK,
        _RECEIVERS + _GAP + _PERK,
        r"\byou\s+qualify\s+for\s+" + _GAP + _PERK,
        _PERK + r"(?:\s+code)?\s+(?:has been|have been|is being|was|were|will be|is|are)\s+"
        r"(?:(?:now|already|automatically)\s+)?"
        r"(?:added|applied|issued|sent|credited|emailed|attached|loaded|on (?:its|the) way|waiting)\b",
        r"\b(?:here(?:'s| is| are)|there(?:'s| is)|enjoy|take)\s+" + _GAP + _PERK,
        r"\b(?:your|the)\s+(?:discount|coupon|promo(?:tional)?|voucher|gift card)\s+code\s+(?:is\b|:)",
        r"\b(?:use|enter|apply)\s+(?:the\s+)?(?:\w+\s+)?code\s*:?\s*[a-z0-9-]*\d",
        r"\b\d+\s?(?:%|percent)\s+off\s+(?:your|the|any|all)\s+(?:next|future|order|purchase)",
        r"\$\s?\d[\d,]*(?:\.\d{1,2})?\s+(?:in\s+)?" + _PERK,
        r"(?:discount|coupon|voucher|gift card|store credit)\s+(?:of|for|worth)\s+\$\s?\d",
    )
)
_RETURN_DAYS: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    (("day",), re.compile(r"\b(\d+)[- ]day\s+(?:return|refund|money[- ]back)")),
    (("within",), re.compile(r"\breturns?\b[^.]{0,40}?\bwithin\s+(\d+)\s+days?\b")),
    (("day",), re.compile(r"\b(\d+)\s+days?\s+(?:to|for)\s+(?:a\s+)?returns?\b")),
)
_NO_RETURNS = re.compile(
    r"\b(?:no returns|(?:do not|don't|cannot|can't|never) accept returns"
    r"|returns are not (?:accepted|possible))\b"
)
_SHIPPING = (
    re.compile(r"free shipping[^.]{0,30}?\$\s?(\d+)"),
    re.compile(r"\$\s?(\d+)[^.]{0,25}?free shipping"),
)
_WARRANTY = (
    re.compile(r"\b(\d+)[- ](year|month)s?\s+warranty"),
    re.compile(r"\bwarranty\s+(?:of|for|lasts?|is)\s+(\d+)\s+(year|month)s?"),
)
_WARRANTY_WRONG = re.compile(r"\b(?:lifetime|no)\s+warranty\b")


def _any_in(keywords: tuple[str, ...], folded: str) -> bool:
    return any(k in folded for k in keywords)


def _pii(text: str, read: str, own_email: str) -> list[str]:
    """`read` is `text` as the customer reads it; digits are found in `normalise(text)`, which keeps
    an invisible character between two digits as a separator, as the customer's message is screened."""
    reasons = []
    plain = normalise(text)  # an LLM draft may hide digits behind invisible or exotic characters too
    if find_card_numbers(plain):
        reasons.append("pii: card number")
    if find_ssns(plain):
        reasons.append("pii: social security number")
    own = own_email.lower()
    if "@" in read and any(m.group().lower() != own for m in EMAIL_RE.finditer(read)):
        reasons.append("pii: email address other than the customer's")
    return reasons


def _return_days(folded: str) -> set[int]:
    if "return" not in folded and "refund" not in folded and "money" not in folded:
        return set()  # every pattern needs one of these words
    return {
        int(m.group(1))
        for keywords, p in _RETURN_DAYS
        if _any_in(keywords, folded)
        for m in p.finditer(folded)
    }


def _policy(folded: str) -> list[str]:
    reasons = []
    if _return_days(folded) - {RETURN_WINDOW_DAYS} or ("return" in folded and _NO_RETURNS.search(folded)):
        reasons.append(f"policy contradiction: returns are accepted within {RETURN_WINDOW_DAYS} days")
    shipping = _SHIPPING if "free shipping" in folded and "$" in folded else ()
    if {int(m.group(1)) for p in shipping for m in p.finditer(folded)} - {FREE_SHIPPING_OVER}:
        reasons.append(f"policy contradiction: shipping is free over ${FREE_SHIPPING_OVER}")
    if "warranty" in folded:
        months = {
            int(m.group(1)) * (12 if m.group(2) == "year" else 1)
            for p in _WARRANTY
            for m in p.finditer(folded)
        }
        if months - {WARRANTY_MONTHS} or _WARRANTY_WRONG.search(folded):
            reasons.append(f"policy contradiction: electronics have a {WARRANTY_YEARS}-year warranty")
    return reasons


def check(text: str, own_email: str, own_names: Iterable[str] = ()) -> list[str]:
    """Every reason to reject `text` (empty: approved). Pure; table-tested.

    `own_names`: the customer's names, which are not hostile words when they are also one ("Hi Sue.").
    """
    read = readable(text)
    reasons = _pii(text, read.text, own_email)
    folded = plain_apostrophes(fold(read.text))
    names = {fold(readable(n).text) for n in own_names}
    # A word is reported as written (lower-cased), which is what a person looking at the draft finds.
    profane = sorted(
        {
            read.as_written(m.start(), m.end()).lower()
            for m in _PROFANITY.finditer(folded)
            if m.group() not in names
        }
    )
    if profane:
        reasons.append("profanity: " + ", ".join(profane))
    promised = (label for label, kw, p in _PROMISES if _any_in(kw, folded) and p.search(folded))
    reasons.extend(dict.fromkeys(promised))
    if _any_in(_PERK_WORDS, folded) and any(p.search(folded) for p in _DISCOUNTS):
        reasons.append("discount promised")
    reasons.extend(_policy(folded))
    return reasons


_ORDER_IDS = re.compile(r"\bord-\d+\b")
_TRACKING_NUMBERS = re.compile(r"\btrk\d+\b")


def unknown_ids(envelope: Envelope, text: str) -> list[str]:
    """The order ids and tracking numbers in `text` the mesh never had: not the customer's orders, their
    tracking or an action's outcome, nor written by the customer. A model asked for a tracking number
    it was not given makes one up, and a made-up one reads exactly like a real one."""
    known = {envelope.message}
    ctx = envelope.context
    for order in ctx.orders if ctx is not None else []:
        known.update((order.order_id, order.tracking_number or ""))
        if order.tracking is not None:
            known.add(order.tracking.tracking_number)
    for action in envelope.actions:
        known.update((action.order_id or "", action.detail, *action.data.values()))
    facts = fold(readable(" ".join(known)).text)
    have = set(_ORDER_IDS.findall(facts)) | set(_TRACKING_NUMBERS.findall(facts))
    folded = fold(readable(text).text)
    return [
        f"unknown {what}: {found.upper()}"
        for what, pattern in (("order id", _ORDER_IDS), ("tracking number", _TRACKING_NUMBERS))
        for found in dict.fromkeys(pattern.findall(folded))
        if found not in have
    ]


def customer_names(envelope: Envelope) -> list[str]:
    """The words of the customer's name, as the replies greet them."""
    ctx = envelope.context
    return (ctx.name or "").split() if ctx is not None and ctx.found else []


def without_quotes(envelope: Envelope, template: str) -> str:
    """`template` without the people's replies a follow-up quotes word for word: a person may say what
    the mesh may not (a refund they approved), and checking their words as the mesh's once replaced
    the whole follow-up with the generic safe reply."""
    for item in envelope.followups:
        if item.last_reply:
            template = template.replace(f'"{item.last_reply}"', '""')
    return template


def replacement_text(envelope: Envelope) -> str:
    """The template reply if it passes the checks (it normally does), else the generic safe reply."""
    template = templates.compose(envelope)
    passes = not check(without_quotes(envelope, template), envelope.customer_email, customer_names(envelope))
    return template if passes else templates.safe_reply(envelope)


class GuardrailValidator(PlainActor):
    name: ClassVar[ActorName] = ActorName.GUARDRAIL_VALIDATOR

    async def handle(self, envelope: Envelope) -> None:
        draft = envelope.draft
        if draft is None:
            reasons = ["no draft to validate"]
        else:
            # Only a template quotes people; an LLM draft is checked whole, and may name no order or
            # tracking number the mesh does not have (a template is built from those alone).
            text = without_quotes(envelope, draft.text) if draft.method == "template" else draft.text
            reasons = check(text, envelope.customer_email, customer_names(envelope))
            if draft.method == "llm":
                reasons.extend(unknown_ids(envelope, draft.text))
                if repeats_prompt(readable(draft.text).text):
                    reasons.append("prompt repeated")
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

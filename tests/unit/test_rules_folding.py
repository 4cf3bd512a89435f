"""guardrail_validator.check, intent_analyzer.score_intents and sentiment_analyzer's cues match folded
text with keyword gates; they must agree exactly with the previous implementation (the same patterns
with re.IGNORECASE, every pattern always run), kept here only as the reference oracle. The guardrail
reads a draft as the customer does before matching (`pii.readable`: invisible characters dropped,
look-alikes read as Latin letters; tests/unit/test_guardrail_disguises.py), and so does its reference.

The corpus mixes every rule's phrases with case changes, the characters re.IGNORECASE treats
specially (U+0130, U+0131, U+017F, U+212A), other non-ASCII letters and digits, and punctuation.
"""

from __future__ import annotations

import random
import re

import pytest

from actormesh_runtime.actors import guardrail_validator as g
from actormesh_runtime.actors import intent_analyzer as ia
from actormesh_runtime.actors import sentiment_analyzer as sa
from actormesh_runtime.envelope import Intent
from actormesh_runtime.screening import EMAIL_RE, find_card_numbers, find_ssns, normalise, readable
from actormesh_runtime.store_policy import FREE_SHIPPING_OVER, RETURN_WINDOW_DAYS
from actormesh_runtime.textfold import fold

OWN = "john.doe@example.com"


def _ic(pattern: re.Pattern[str]) -> re.Pattern[str]:
    return re.compile(pattern.pattern, re.IGNORECASE)


# ---------------------------------------------------------------- reference oracle (previous code)

_OLD_PROFANITY = _ic(g._PROFANITY)
_OLD_PROMISES = [(label, _ic(p)) for label, _, p in g._PROMISES]
_OLD_RETURN_DAYS = [_ic(p) for _, p in g._RETURN_DAYS]
_OLD_NO_RETURNS = _ic(g._NO_RETURNS)
_OLD_SHIPPING = [_ic(p) for p in g._SHIPPING]
_OLD_WARRANTY = [_ic(p) for p in g._WARRANTY]
_OLD_WARRANTY_WRONG = _ic(g._WARRANTY_WRONG)
_OLD_DISCOUNTS = [_ic(p) for p in g._DISCOUNTS]
_OLD_INTENTS = {
    intent: [(re.compile(rf"\b(?:{p})\b", re.IGNORECASE), w) for p, w in rules]
    for intent, rules in ia._RULES.items()
}


def old_check(written: str, own_email: str) -> list[str]:
    reasons = []
    plain = normalise(written)  # as check() does: PII is found after normalising, not by the fold patterns
    if find_card_numbers(plain):
        reasons.append("pii: card number")
    if find_ssns(plain):
        reasons.append("pii: social security number")
    read = readable(written)
    text = read.text
    if any(m.group().lower() != own_email.lower() for m in EMAIL_RE.finditer(text)):
        reasons.append("pii: email address other than the customer's")
    profane = sorted({read.as_written(*m.span()).lower() for m in _OLD_PROFANITY.finditer(text)})
    if profane:
        reasons.append("profanity: " + ", ".join(profane))
    reasons.extend(dict.fromkeys(label for label, p in _OLD_PROMISES if p.search(text)))
    if any(p.search(text) for p in _OLD_DISCOUNTS):
        reasons.append("discount promised")
    days = {int(m.group(1)) for p in _OLD_RETURN_DAYS for m in p.finditer(text)}
    if days - {RETURN_WINDOW_DAYS} or _OLD_NO_RETURNS.search(text):
        reasons.append(f"policy contradiction: returns are accepted within {RETURN_WINDOW_DAYS} days")
    if {int(m.group(1)) for p in _OLD_SHIPPING for m in p.finditer(text)} - {FREE_SHIPPING_OVER}:
        reasons.append(f"policy contradiction: shipping is free over ${FREE_SHIPPING_OVER}")
    months = {
        int(m.group(1)) * (12 if m.group(2).lower() == "year" else 1)
        for p in _OLD_WARRANTY
        for m in p.finditer(text)
    }
    if months - {12} or _OLD_WARRANTY_WRONG.search(text):
        reasons.append("policy contradiction: electronics have a 1-year warranty")
    return reasons


_SENTIMENT_CUES = {
    "time_pressure_strong": sa._TIME_PRESSURE_STRONG,
    "time_pressure": sa._TIME_PRESSURE,
    "repeated_failure": sa._REPEATED_FAILURE,
    "fraud": sa._FRAUD,
    "legal": sa._LEGAL,
    "abusive": sa._ABUSIVE,
    "wants_human": sa._WANTS_HUMAN,
    "complaint": sa._COMPLAINT,
}
_OLD_SENTIMENT_CUES = {name: _ic(p) for name, p in _SENTIMENT_CUES.items()}


def sentiment_cues(text: str) -> set[str]:
    folded = fold(text)
    return {name for name, p in _SENTIMENT_CUES.items() if p.search(folded)}


def old_sentiment_cues(text: str) -> set[str]:
    return {name for name, p in _OLD_SENTIMENT_CUES.items() if p.search(text)}


def old_scores(text: str) -> dict[Intent, int]:
    return {intent: sum(w for p, w in rules if p.search(text)) for intent, rules in _OLD_INTENTS.items()}


# ---------------------------------------------------------------- corpus

_N = "{n}"
FRAGMENTS = [
    # guardrail: profanity, promises, policy, PII
    "what the hell", "damn it", "this is bullshit", "fuuuck this", "you idiots", "shut up",
    "feel free to sue",
    "hello there", "the issue is", "assess the class", "passport shell",
    "we will refund you", "we'll issue you a full refund", "i can give you a credit",
    "we have processed your reimbursement",
    "you will definitely receive a refund", "you'll get your money back", "you are going to be compensated",
    "your refund has been approved", "the refund was sent", "a refund of $" + _N, "credit for $" + _N + ".50",
    "$" + _N + " back", "$ " + _N + ",000.99 voucher", "we guarantee it", "guaranteed delivery", "i promise",
    "it will definitely arrive", "it will surely be fixed", "we promise nothing",
    _N + "-day return", _N + " day money-back", "returns are accepted within " + _N + " days",
    "return it, no questions, within " + _N + " days", "you have " + _N + " days to return",
    _N + " days for a return", "no returns", "we don't accept returns", "returns are not possible",
    "free shipping over $" + _N, "$" + _N + " or more gets free shipping", "free shipping. on $" + _N,
    "a " + _N + "-year warranty", _N + " month warranty", "the warranty lasts " + _N + " years",
    "warranty of " + _N + " months", "lifetime warranty", "no warranty",
    "we'll give you a " + _N + "% discount", "i've applied a coupon", "you'll receive a promo code",
    "a discount has been applied", "here's a gift card", "use code SAVE" + _N, _N + "%\toff your next order",
    "$" + _N + " in store credit", "the coupon you mentioned", "we can't offer vouchers",
    "write to jane.smith@example.com", "my address is JOHN.DOE@example.com", "card 4111 1111 1111 1111",
    "4111-1111-1111-1112", "ssn 123-45-6789", "social security number: 123456789",
    # intents
    "i want to speak to a manager", "talk with a real person", "human agent please", "supervisor",
    "cancel my order", "cancel ORD-12345", "i changed my mind", "cancellation", "don't want it anymore",
    "return ORD-10001", "send it back", "exchange for a bigger size", "returning",
    "charged twice", "double-charged", "unauthorised charge", "invoice", "credit card", "receipt",
    "hasn't arrived", "still not here", "lost in the mail", "package is missing", "stuck in transit",
    "my parcel is stuck", "delayed", "courier",
    "doesn't work", "arrived broken", "wrong colour", "missing parts", "defective", "malfunctioning",
    "forgot my password", "can't log in", "account is locked", "delete my account", "sign in",
    "where is my order", "where's ORD-10002", "status of ORD-20002", "track my parcel",
    "when will it arrive", "has it shipped", "where is it", "TRK123456789", "eta",
    "thank you", "thanks", "great service", "love it", "well done", "awesome", "appreciated",
    "what is your return policy", "what are the shipping policies", "do you ship to canada",
    "shipping cost", "how long does it take", "opening hours", "warranty", "hey", "how do i", "can i",
    # sentiment cues
    "i need it immediately", "urgently", "asap", "right now", "by friday", "deadline", "hurry",
    "still haven't got it", "third time", "5th time", "several times", "keeps failing", "for two weeks",
    "nobody has replied", "never arrived", "this is fraud", "stolen card", "unauthorized", "identity theft",
    "my lawyer", "attorneys", "i will sue", "legal action", "take you to court", "small claims",
    "report you to the ftc", "consumer protection", "idiots", "morons", "crap", "screw you", "damn you",
    "a real person", "live chat", "representative", "speak to someone", "chat with an agent",
    "i want to complain", "unacceptable", "disappointing", "worst", "fed up", "not happy", "frustrating",
]  # fmt: skip
SPECIALS = ["\u0130", "\u0131", "\u017f", "\u212a", "\u00df", "\u03a3", "\u00e9", "\u0663", "\u00a0", "_"]
SEPARATORS = [" ", ". ", ", ", "! ", "? ", " and ", "\n", " - ", "; ", ""]
NUMBERS = ["1", "2", "12", "14", "30", "45", "50", "60", "90", "100", "0", "\u0663\u0660"]


def _mangle(rng: random.Random, fragment: str) -> str:
    fragment = fragment.replace(_N, rng.choice(NUMBERS))
    case = rng.randrange(5)
    if case == 1:
        fragment = fragment.upper()
    elif case == 2:
        fragment = fragment.title()
    elif case == 3:
        fragment = "".join(c.upper() if rng.random() < 0.5 else c for c in fragment)
    elif case == 4:  # the characters re.IGNORECASE maps to i, s and k
        swaps = {"i": "\u0131", "I": "\u0130", "s": "\u017f", "k": "\u212a"}
        fragment = "".join(swaps[c] if c in swaps and rng.random() < 0.3 else c for c in fragment)
    if rng.random() < 0.15:
        at = rng.randrange(len(fragment) + 1)
        fragment = fragment[:at] + rng.choice(SPECIALS) + fragment[at:]
    return fragment


def corpus(size: int = 3000, seed: int = 20261127) -> list[str]:
    rng = random.Random(seed)
    texts = [_mangle(rng, f) for f in FRAGMENTS]
    for _ in range(size):
        parts = [_mangle(rng, rng.choice(FRAGMENTS)) for _ in range(rng.randint(1, 6))]
        texts.append("".join(p + rng.choice(SEPARATORS) for p in parts).strip())
    return texts


CORPUS = corpus()


# ---------------------------------------------------------------- tests


def test_guardrail_check_agrees_with_the_reference_on_the_corpus() -> None:
    mismatches = [
        (t, g.check(t, OWN), old_check(t, OWN)) for t in CORPUS if g.check(t, OWN) != old_check(t, OWN)
    ]

    assert mismatches == []


def test_intent_scores_agree_with_the_reference_on_the_corpus() -> None:
    mismatches = [(t, ia.score_intents(t)) for t in CORPUS if ia.score_intents(t) != old_scores(t)]

    assert mismatches == []


def test_sentiment_cues_agree_with_the_reference_on_the_corpus() -> None:
    mismatches = [(t, sentiment_cues(t)) for t in CORPUS if sentiment_cues(t) != old_sentiment_cues(t)]

    assert mismatches == []
    assert set().union(*(sentiment_cues(t) for t in CORPUS)) == set(_SENTIMENT_CUES), "every cue fires"


def test_the_corpus_exercises_every_rule() -> None:
    """Agreement only means something if the corpus triggers every reason and every intent."""
    reasons = {r for t in CORPUS for r in g.check(t, OWN)}
    winners = {ia.classify(t).intent for t in CORPUS}

    assert {label for label, _, _ in g._PROMISES} <= reasons
    for expected in (
        "pii: card number",
        "pii: social security number",
        "pii: email address other than the customer's",
        f"policy contradiction: returns are accepted within {RETURN_WINDOW_DAYS} days",
        f"policy contradiction: shipping is free over ${FREE_SHIPPING_OVER}",
        "policy contradiction: electronics have a 1-year warranty",
        "discount promised",
    ):
        assert expected in reasons
    assert any(r.startswith("profanity: ") and "\u017f" in r for r in reasons), (
        "a long-s profanity as written"
    )
    assert winners == set(Intent)
    assert sum(1 for t in CORPUS if not g.check(t, OWN)) > 100, "clean texts too"


@pytest.mark.parametrize(
    "text",
    [
        "\u017fhit happens",  # re.IGNORECASE matched long s to s; the reason keeps the word as written
        "\u0130 will refund you",  # dotted capital I is lower-cased to two characters by str.lower()
        "we w\u0131ll refund you",
        "\u212aEEP the $5 voucher",
        "RETURNS ARE ACCEPTED WITHIN 14 DAYS",
        "a 2-YEAR WARRANTY and free shipping over $\u0663\u0660",
    ],
)
def test_special_cases_agree(text: str) -> None:
    assert g.check(text, OWN) == old_check(text, OWN)
    assert ia.score_intents(text) == old_scores(text)
    assert sentiment_cues(text) == old_sentiment_cues(text)


def test_rule_patterns_are_lower_case() -> None:
    """They are matched without re.IGNORECASE, so an upper-case letter could never match."""
    patterns = [g._PROFANITY, g._NO_RETURNS, g._WARRANTY_WRONG, *g._SHIPPING, *g._WARRANTY]
    patterns += [p for _, _, p in g._PROMISES] + [p for _, p in g._RETURN_DAYS] + list(g._DISCOUNTS)
    patterns += list(_SENTIMENT_CUES.values())
    texts = [p.pattern for p in patterns] + [p for rules in ia._RULES.values() for p, _ in rules]
    for text in texts:
        assert re.sub(r"\\.", "", text) == re.sub(r"\\.", "", text).lower(), text
    assert all(not p.flags & re.IGNORECASE for p in patterns)

"""Input screening: the first thing that happens to a customer's text, before any actor, LLM or store sees it.

The gateway and `actormesh ask` call `screen(text)` and put the redacted text and the `Screening`
flags in the new envelope. guardrail_validator reuses `find_card_numbers` / `find_ssns` on drafts.

- Card numbers: 13-19 digits, optionally grouped with single spaces or dashes, Luhn-valid.
  Digit runs that fail Luhn (order numbers, phone numbers) are left alone.
- US SSNs: `AAA-GG-SSSS` (or spaces), and nine bare digits when the text names an SSN.
- Prompt injection: instructions to ignore the rules, reveal the system prompt, change role, or
  smuggle chat-template markers. Flagged only (the text stays readable for a human agent); the
  flag makes intent_analyzer skip the LLM, decision_router skip actions and response_generator
  answer generically.
"""

from __future__ import annotations

import re

from pydantic import ValidationError

from actormesh_runtime.envelope import Screening

CARD_PLACEHOLDER = "[REDACTED-CARD]"
SSN_PLACEHOLDER = "[REDACTED-SSN]"

# A run of digit groups separated by one space or dash, not glued to more digits and not after a
# letter-dash prefix (ORD-10001 is an order id). Letters may touch it: "visa4111111111111111" is still
# a card, while TRK100000001 has too few digits to ever be one.
_DIGIT_RUN = re.compile(r"(?<![0-9])(?<![A-Za-z]-)\d+(?:[ -]\d+)*(?![0-9])")
_GROUP = re.compile(r"\d+")

EMAIL_RE = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
"""Email addresses (not redacted on input: the customer's own address is how we find them)."""

_SSN_RE = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d-])")
_SSN_BARE_RE = re.compile(
    r"(?i)\b(?:ssn|social\s+security(?:\s+(?:number|no\.?|#))?)\b\D{0,20}?(?<!\d)(\d{9})(?!\d)"
)

_INJECTION_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        (
            "ignore_instructions",
            r"\b(?:ignore|disregard|forget|override|skip)\b[\w\s,']{0,30}?"
            r"\b(?:instructions?|rules|prompts?|directions|guidelines|polic(?:y|ies)|guardrails)\b",
        ),
        (
            "reveal_system_prompt",
            r"\b(?:reveal|show|print|repeat|display|output|tell\s+me|what\s+(?:is|are)|leak)\b[\w\s']{0,25}?"
            r"\b(?:system|hidden|initial|original|developer)\s+(?:prompt|instructions?|message|rules)\b",
        ),
        (
            "role_change",
            r"\b(?:you\s+are\s+now|from\s+now\s+on,?\s+you|pretend\s+(?:to\s+be|you\s+are)|act\s+as\s+(?:an?\s+)?"
            r"(?:unrestricted|unfiltered|different|new|evil|admin|administrator|developer|system|root)"
            r"|roleplay\s+as|switch\s+(?:to|into)\s+\w+\s+mode)\b",
        ),
        ("jailbreak", r"\b(?:jailbreak|DAN\s+mode|developer\s+mode|do\s+anything\s+now|no\s+restrictions)\b"),
        (
            "template_markers",
            r"<\|(?:im_start|im_end|system|endoftext)\|>|\[/?INST\]|<<SYS>>|^\s*(?:system|assistant)\s*:|###\s*instruction",
        ),
        (
            "bypass_guardrails",
            r"\b(?:bypass|disable|turn\s+off|circumvent)\b[\w\s']{0,20}?"
            r"\b(?:rules|filters?|guardrails?|restrictions|safety|moderation)\b",
        ),
    )
)


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_in_run(run: str, offset: int) -> list[tuple[int, int]]:
    """Spans of Luhn-valid 13-19 digit windows of whole groups inside one digit run.

    The longest valid windows win and never overlap, so digits next to a card number do not
    swallow it. Windows never exceed 19 digits: a long run costs linear time, not quadratic.
    """
    groups = [(m.start() + offset, m.end() + offset, m.group()) for m in _GROUP.finditer(run)]
    windows: list[tuple[int, int, int]] = []  # (digit count, first group, last group)
    for i in range(len(groups)):
        digits = ""
        for j in range(i, len(groups)):
            digits += groups[j][2]
            if len(digits) > 19:
                break
            if len(digits) >= 13 and luhn_valid(digits):
                windows.append((len(digits), i, j))
    taken: set[int] = set()
    spans: list[tuple[int, int]] = []
    for _, first, last in sorted(windows, key=lambda w: (-w[0], w[1])):
        if taken.isdisjoint(range(first, last + 1)):
            taken.update(range(first, last + 1))
            spans.append((groups[first][0], groups[last][1]))
    return spans


def find_card_numbers(text: str) -> list[tuple[int, int]]:
    """(start, end) spans of card numbers in `text`."""
    spans: list[tuple[int, int]] = []
    for match in _DIGIT_RUN.finditer(text):
        spans.extend(_card_in_run(match.group(), match.start()))
    return spans


def find_ssns(text: str) -> list[tuple[int, int]]:
    """(start, end) spans of US social security numbers in `text`."""
    spans = [(m.start(), m.end()) for m in _SSN_RE.finditer(text)]
    spans.extend((m.start(1), m.end(1)) for m in _SSN_BARE_RE.finditer(text))
    return sorted(set(spans))


def find_injection(text: str) -> list[str]:
    """Names of the prompt-injection patterns `text` matches (empty: none)."""
    return [name for name, pattern in _INJECTION_PATTERNS if pattern.search(text)]


def _replace(text: str, spans: list[tuple[int, int]], placeholder: str) -> str:
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + placeholder + text[end:]
    return text


def screen(text: str) -> tuple[str, Screening]:
    """Redact card numbers and SSNs, flag prompt injection. Returns (redacted text, flags)."""
    redactions: list[str] = []
    cards = find_card_numbers(text)
    if cards:
        text = _replace(text, cards, CARD_PLACEHOLDER)
        redactions.append("card")
    ssns = find_ssns(text)
    if ssns:
        text = _replace(text, ssns, SSN_PLACEHOLDER)
        redactions.append("ssn")
    patterns = find_injection(text)
    screening = Screening.model_validate(
        {
            "pii_redacted": bool(redactions),
            "redactions": redactions,
            "prompt_injection": bool(patterns),
            "injection_patterns": patterns,
        }
    )
    return text, screening


def redact(text: str) -> str:
    """`text` with card numbers and SSNs replaced (no flags): for anything logged or stored."""
    return screen(text)[0]


def describe_invalid(exc: ValidationError) -> str:
    """A validation failure for logs and dead letters: where and what, never the input values.

    `str(ValidationError)` quotes the offending input, which may be a customer's unscreened text.
    """
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or 'payload'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return redact(f"{exc.error_count()} validation error(s) for {exc.title}: " + "; ".join(parts))

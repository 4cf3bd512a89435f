"""Input screening: the first thing that happens to a customer's text, before any actor, LLM or store sees it.

The gateway and `actormesh ask` call `screen(text)` and put the redacted text and the `Screening`
flags in the new envelope. guardrail_validator reuses `find_card_numbers` / `find_ssns` on drafts.

- First the text is normalised (`pii.normalise`: NFKC, invisible and default-ignorable characters
  dropped, Unicode spaces, dashes, dots and slashes folded), and the normalised text is what travels on.
- Card numbers: 13-19 digits in groups joined by short runs of spaces, dashes, dots, slashes or
  underscores, Luhn-valid. Digit runs that fail Luhn (order numbers, phone numbers) are left alone.
  Letters written for digits ("4lll 1111 1111 1111") are read as digits by a narrow rule
  (`pii.DIGIT_LOOK_ALIKES`, `pii._disguised_in_run`).
- US SSNs: `AAA-GG-SSSS` with the same separators, and nine bare digits when the text names an SSN.
- Prompt injection: instructions to ignore the rules, reveal the system prompt, change role, or
  smuggle chat-template markers, matched on the text as a person reads it (`pii.readable`: look-alike
  letters and combining marks too). Flagged only (the text stays readable for a human agent); the
  flag makes intent_analyzer skip the LLM, decision_router skip actions and response_generator
  answer generically.
"""

from __future__ import annotations

import re

from pydantic import ValidationError

from actormesh_runtime.envelope import Screening
from actormesh_runtime.pii import (
    CARD_PLACEHOLDER,
    SSN_PLACEHOLDER,
    find_card_numbers,
    find_ssns,
    luhn_valid,
    normalise,
    readable,
    redact,
    redact_found,
)

__all__ = [
    "CARD_PLACEHOLDER",
    "EMAIL_RE",
    "SSN_PLACEHOLDER",
    "describe_invalid",
    "find_card_numbers",
    "find_injection",
    "find_ssns",
    "luhn_valid",
    "normalise",
    "readable",
    "redact",
    "screen",
]

EMAIL_RE = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
"""Email addresses (not redacted on input: the customer's own address is how we find them)."""

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


def find_injection(text: str) -> list[str]:
    """Names of the prompt-injection patterns `text` matches (empty: none), read as a person (or a
    model) reads it: look-alike letters and marks hide no phrase."""
    read = readable(text).text
    return [name for name, pattern in _INJECTION_PATTERNS if pattern.search(read)]


def screen(text: str) -> tuple[str, Screening]:
    """Normalise, redact card numbers and SSNs, flag prompt injection. Returns (screened text, flags).

    The screened text is the normalised one (`pii.normalise`): what was checked is exactly what is
    forwarded, so an invisible character cannot hide a number or a phrase from the screen and then
    reappear in a prompt.
    """
    text, redactions = redact_found(text)
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


def describe_invalid(exc: ValidationError) -> str:
    """A validation failure for logs and dead letters: where and what, never the input values.

    `str(ValidationError)` quotes the offending input, which may be a customer's unscreened text.
    """
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or 'payload'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return redact(f"{exc.error_count()} validation error(s) for {exc.title}: " + "; ".join(parts))

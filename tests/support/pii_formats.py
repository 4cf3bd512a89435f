"""Hypothesis strategies: card numbers and US SSNs written every way a person (or an attacker) might.

A card is any Luhn-valid 13-19 digit number whose first digit is 1-9 (no card starts with 0, and
`pii` redacts none that does), split into groups (the usual 4-4-4-4 / 4-6-5 or any split at all), the
groups joined by one to three separator characters drawn from ASCII and Unicode spaces, dashes, dots,
slashes and invisible format characters, with invisible characters also inside groups, and digits
from several scripts. An SSN is a valid `AAA-GG-SSSS` joined the same
ways, or nine bare digits after the word "SSN". `digits_of` gives what a leak check compares: the
ASCII digits of a text after normalisation, so a number survives in any formatting or not at all.
"""

from __future__ import annotations

import itertools
import unicodedata
from dataclasses import dataclass

from hypothesis import strategies as st

from actormesh_runtime.pii import CARD_FIRST_DIGITS

SEPARATORS = [
    " ", "  ", "-", ".", "/", "_", "\\",
    "\u00a0", "\u2009", "\u202f", "\u3000", "\u2007",    # no-break, thin, narrow, ideographic, figure spaces
    "\u2010", "\u2011", "\u2013", "\u2014", "\u2212", "\uff0d",  # hyphens, dashes, minus
    "\u00b7", "\u2022", "\u2024", "\u3002", "\uff0e",    # middle dot, bullet, leaders, ideographic stops
    "\u2044", "\u2215", "\uff0f",                        # fraction and division slashes
    "\u1680", "\u2028", "\u2029",                        # ogham space, line and paragraph separators
    "\u2800",                                            # braille blank: a symbol, drawn as a space
]  # fmt: skip
"""Visible separators. NFKC turns most Unicode spaces into " " by itself; the last four it leaves alone."""
INVISIBLE = [
    "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u2062", "\u00ad", "\u202e", "\u180e",
    "\u3164", "\uffa0", "\u115f", "\u034f", "\ufe0f",  # default-ignorable but no format characters (Lo, Mn)
]  # fmt: skip
DIGIT_SCRIPTS = {
    name: "".join(chr(zero + i) for i in range(10))
    for name, zero in {
        "ascii": 0x30,
        "fullwidth": 0xFF10,
        "arabic-indic": 0x660,
        "devanagari": 0x966,
        "math-bold": 0x1D7CE,
    }.items()
}
CONTEXT_BEFORE = ["", "My card is ", "card: ", "CARD-", "pay with visa", "number #", "(", "\u200b", "ssn "]
CONTEXT_AFTER = ["", " please", ". Thanks!", ")", " exp soon", "\u2009and that is all", "!"]


def luhn_check_digit(body: str) -> str:
    total = 0
    for position, char in enumerate(reversed(body)):
        value = int(char)
        if position % 2 == 0:  # doubled: they become odd positions once the check digit is appended
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return str((10 - total % 10) % 10)


def digits_of(text: str) -> str:
    """The ASCII digits of `text` once every script's digits are ASCII (what a leak check compares)."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(str(unicodedata.digit(c)) for c in text if unicodedata.category(c) == "Nd")


@dataclass(frozen=True)
class Written:
    digits: str
    """The number's ASCII digits."""
    text: str
    """How it was written."""
    kind: str


@st.composite
def card_digits(draw: st.DrawFn) -> str:
    length = draw(st.integers(13, 19))
    first = draw(st.sampled_from(CARD_FIRST_DIGITS))
    body = first + draw(st.text("0123456789", min_size=length - 2, max_size=length - 2))
    return body + luhn_check_digit(body)


@st.composite
def ssn_digits(draw: st.DrawFn) -> str:
    area = draw(st.integers(1, 899).filter(lambda a: a != 666))
    return f"{area:03d}{draw(st.integers(1, 99)):02d}{draw(st.integers(1, 9999)):04d}"


@st.composite
def _separator(draw: st.DrawFn) -> str:
    """One to three visible separators, with invisible characters possibly mixed in, or only invisible
    characters ("4111<U+200B>1111": the digits look joined, but were typed as groups)."""
    if draw(st.integers(0, 5)) == 0:
        return "".join(draw(st.lists(st.sampled_from(INVISIBLE), min_size=1, max_size=2)))
    parts = draw(st.lists(st.sampled_from(SEPARATORS), min_size=1, max_size=3))
    text = "".join(parts)
    if len(text) > 3:  # "  " counts two: keep every separator run within what people type
        text = text[:3]
    if draw(st.booleans()):
        text = draw(st.sampled_from(INVISIBLE)) + text
    return text


@st.composite
def _groups(draw: st.DrawFn, digits: str, usual: list[list[int]]) -> list[str]:
    if draw(st.booleans()):
        sizes = [s for s in draw(st.sampled_from(usual))]
        if sum(sizes) != len(digits):
            sizes = [len(digits)]
    else:
        cuts = sorted(set(draw(st.lists(st.integers(1, len(digits) - 1), max_size=len(digits) - 1))))
        bounds = [0, *cuts, len(digits)]
        sizes = [b - a for a, b in itertools.pairwise(bounds)]
    groups, at = [], 0
    for size in sizes:
        groups.append(digits[at : at + size])
        at += size
    return groups


@st.composite
def _write(draw: st.DrawFn, digits: str, usual: list[list[int]]) -> str:
    script = DIGIT_SCRIPTS[draw(st.sampled_from(sorted(DIGIT_SCRIPTS)))]
    groups = draw(_groups(digits, usual))
    out = []
    for i, group in enumerate(groups):
        written = "".join(script[int(d)] for d in group)
        if draw(st.integers(0, 4)) == 0 and len(written) > 1:  # an invisible character inside a group
            cut = draw(st.integers(1, len(written) - 1))
            written = written[:cut] + draw(st.sampled_from(INVISIBLE)) + written[cut:]
        out.append(written)
        if i < len(groups) - 1:
            out.append(draw(_separator()))
    return "".join(out)


@st.composite
def written_cards(draw: st.DrawFn) -> Written:
    digits = draw(card_digits())
    usual = [[4, 4, 4, 4], [4, 6, 5], [4, 4, 4, 4, 3], [4, 4, 5], [4, 4, 4, 3]]
    return Written(digits, draw(_write(digits, usual)), "card")


@st.composite
def written_ssns(draw: st.DrawFn) -> Written:
    digits = draw(ssn_digits())
    if draw(st.integers(0, 5)) == 0:
        script = DIGIT_SCRIPTS[draw(st.sampled_from(sorted(DIGIT_SCRIPTS)))]
        bare = "".join(script[int(d)] for d in digits)
        return Written(
            digits, draw(st.sampled_from(["SSN ", "my ssn is ", "Social Security number: "])) + bare, "ssn"
        )
    script = DIGIT_SCRIPTS[draw(st.sampled_from(sorted(DIGIT_SCRIPTS)))]
    parts = ["".join(script[int(d)] for d in part) for part in (digits[:3], digits[3:5], digits[5:])]
    text = parts[0] + draw(_separator()) + parts[1] + draw(_separator()) + parts[2]
    return Written(digits, text, "ssn")


@st.composite
def messages_with_secrets(draw: st.DrawFn) -> tuple[str, list[Written]]:
    """A customer message holding one to three cards or SSNs, in context, and what was hidden in it."""
    secrets = draw(st.lists(st.one_of(written_cards(), written_ssns()), min_size=1, max_size=3))
    pieces = []
    for secret in secrets:
        before = draw(st.sampled_from(CONTEXT_BEFORE))
        after = draw(st.sampled_from(CONTEXT_AFTER))
        pieces.append(f"{before}{secret.text}{after}")
    return " and ".join(pieces), secrets

"""Case folding for the rule matchers (guardrail_validator, intent_analyzer).

Matching lower-case patterns without `re.IGNORECASE` against `fold(text)` is several times faster
than matching with the flag, and it finds exactly the same matches at the same offsets:
- `fold` keeps the length, so a span in the folded text is the same span in the original;
- a character folds to an ASCII letter exactly when `re.IGNORECASE` lets it match that letter.
  `str.lower()` does that for every character except three, mapped first: U+0130 (capital I with
  dot above), U+0131 (dotless i) and U+017F (long s). U+0130 is also the only character whose
  `lower()` is two characters long.
tests/unit/test_textfold.py checks both claims over every code point.
"""

from __future__ import annotations

_SPECIAL = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s"})
"""What `re.IGNORECASE` matches to an ASCII letter although `lower()` does not give that letter."""


def fold(text: str) -> str:
    """Lower-case `text` for matching lower-case patterns without `re.IGNORECASE`."""
    if text.isascii():
        return text.lower()
    return text.translate(_SPECIAL).lower()


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'"})


def plain_apostrophes(text: str) -> str:
    """Typographic apostrophes (models write "we\u2019ll") as "'", which the patterns spell contractions
    with; one character for one, so offsets still hold."""
    return text.translate(_APOSTROPHES)

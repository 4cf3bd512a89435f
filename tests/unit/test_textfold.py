"""textfold.fold: lower-case patterns on folded text match exactly what re.IGNORECASE matched.

Checked over every code point, so the rule matchers built on it (guardrail_validator,
intent_analyzer) cannot change behaviour on any input.
"""

from __future__ import annotations

import re
import string
import sys

from actormesh_runtime.textfold import fold

EVERY_CHAR = "".join(chr(cp) for cp in range(sys.maxunicode + 1))


def test_fold_keeps_the_length_of_every_character_and_of_text() -> None:
    folded = fold(EVERY_CHAR)

    assert len(folded) == len(EVERY_CHAR)
    assert all(len(fold(c)) == 1 for c in "\u0130\u0131\u017f\u212aAZ")


def test_a_character_folds_to_an_ascii_letter_exactly_when_ignorecase_matches_that_letter() -> None:
    folded = fold(EVERY_CHAR)
    any_letter = re.compile(f"[{string.ascii_lowercase}]", re.IGNORECASE)

    matched = {m.start() for m in any_letter.finditer(EVERY_CHAR)}
    folded_to_letter = {i for i, c in enumerate(folded) if c in string.ascii_lowercase}

    assert matched == folded_to_letter
    assert {EVERY_CHAR[i] for i in matched if ord(EVERY_CHAR[i]) > 127} == {
        "\u0130",
        "\u0131",
        "\u017f",
        "\u212a",
    }
    for i in matched:
        assert re.fullmatch(folded[i], EVERY_CHAR[i], re.IGNORECASE), hex(i)


def test_no_other_pattern_character_is_affected_by_ignorecase() -> None:
    others = re.compile("[" + re.escape(string.digits + string.punctuation + " ") + "]")
    without = {m.start() for m in others.finditer(EVERY_CHAR)}
    with_flag = {m.start() for m in re.compile(others.pattern, re.IGNORECASE).finditer(EVERY_CHAR)}

    folded = fold(EVERY_CHAR)

    assert without == with_flag
    assert all(EVERY_CHAR[i] == folded[i] for i in without)


def test_word_digit_and_space_classes_and_digit_values_survive_folding() -> None:
    folded = fold(EVERY_CHAR)
    for cls in (r"\w", r"\d", r"\s"):
        pattern = re.compile(cls)
        assert [m.start() for m in pattern.finditer(EVERY_CHAR)] == [
            m.start() for m in pattern.finditer(folded)
        ]
    digits = re.compile(r"\d")
    assert all(folded[m.start()] == m.group() for m in digits.finditer(EVERY_CHAR))


def test_examples() -> None:
    assert fold("Where is ORD-10002? I WANT a Refund!") == "where is ord-10002? i want a refund!"
    assert fold("\u017fHIT \u0130s \u0131nvalid \u212aEY") == "shit is invalid key"

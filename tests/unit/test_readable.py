"""pii.readable: a text as a reader takes it, for the word patterns of the guardrail and the injection
screen, and where each character it reads came from (the guardrail reports words as written)."""

from __future__ import annotations

import string
import sys
import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from actormesh_runtime.pii import readable

EVERY_CHAR = "".join(chr(cp) for cp in range(sys.maxunicode + 1))
DEFAULT_IGNORABLE_NOT_FORMAT = (
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180f\u3164\ufe00\ufe0f\uffa0\U000e0100\U000e01ef"
)
"""Default_Ignorable_Code_Point characters that are not format characters (Lo, Mn): Unicode draws
them as nothing all the same."""


@given(st.text(st.sampled_from(string.printable[:-2]), max_size=200))  # no \x0b, \x0c
@example("We will refund you.\nThanks,\tAnn")
def test_plain_ascii_is_read_as_written_without_a_map(text: str) -> None:
    read = readable(text)
    assert read.text is text
    assert read.origin is None


RIGHT_TO_LEFT = "\u202e"


@given(st.text(max_size=120).map(lambda text: text.replace(RIGHT_TO_LEFT, "")))
@example("\ufb01ne \u0130stanbul caf\u00e9 re\u00adfund \u2474 \u3164x")
def test_each_character_is_read_on_its_own_and_mapped_to_where_it_was_written(text: str) -> None:
    read = readable(text)
    assert read.text == "".join(readable(char).text for char in text)
    origin = read.origin if read.origin is not None else tuple(range(len(text)))
    assert len(origin) == len(read.text)
    assert list(origin) == sorted(origin)
    for i, at in enumerate(origin):
        assert read.text[i] in readable(text[at]).text
    for start in range(len(read.text)):
        for end in range(start + 1, min(len(read.text), start + 6) + 1):
            assert read.text[start:end] in readable(read.as_written(start, end)).text


@given(st.text(max_size=120))
def test_reading_is_idempotent(text: str) -> None:
    once = readable(text).text
    assert readable(once).text == once


def test_format_and_default_ignorable_characters_read_as_nothing() -> None:
    hidden = [c for c in EVERY_CHAR if unicodedata.category(c) == "Cf"] + list(DEFAULT_IGNORABLE_NOT_FORMAT)
    assert [c for c in hidden if readable(f"re{c}fund").text != "refund"] == [RIGHT_TO_LEFT]
    assert readable(f"re{RIGHT_TO_LEFT}fund").text == "rednuf", "drawn so: it reverses what follows"


@given(
    st.text(
        st.sampled_from(["a", "b", "\u00e9", "\ufb01", "\u200b", "\u202c", "\n", RIGHT_TO_LEFT]), max_size=40
    )
)
@example(f"x {RIGHT_TO_LEFT}dnu\u00adfer\u202c y")
def test_a_right_to_left_override_reverses_up_to_its_pop_or_the_end_of_the_line(text: str) -> None:
    def as_drawn(line: str) -> str:
        drawn, rest = "", line
        while RIGHT_TO_LEFT in rest:
            before, _, rest = rest.partition(RIGHT_TO_LEFT)
            reversed_part, pop, rest = rest.partition("\u202c")
            drawn += before + reversed_part[::-1].replace(RIGHT_TO_LEFT, "") + pop
        return drawn + rest

    read = readable(text)
    assert read.text == readable("\n".join(as_drawn(line) for line in text.split("\n"))).text
    origin = read.origin or range(len(read.text))
    assert all(read.text[i] in readable(text[at]).text for i, at in enumerate(origin))


@pytest.mark.parametrize(
    ("written", "read"),
    [
        pytest.param("r\u0435fund", "refund", id="cyrillic-e"),
        pytest.param("\u0412\u0415 \u0412\u0406LL", "BE BILL", id="cyrillic-capitals"),
        pytest.param("pr\u03bfmise", "promise", id="greek-omicron"),
        pytest.param("\u0280\u1d07\ua730\u1d1c\u0274\u1d05", "refund", id="small-capitals"),
        pytest.param("\u0585\u0578", "on", id="armenian"),
        pytest.param("\u00e9t\u00e9 na\u00efve", "ete naive", id="accents"),
        pytest.param("r\u0332e\u0332", "re", id="combining-underline"),
        pytest.param("we\u00a0will\u3000do\u2028it", "we will do it", id="unicode-spaces"),
        pytest.param("14\u2011day", "14-day", id="non-breaking-hyphen"),
        pytest.param("\u0663\u0660 days", "30 days", id="arabic-indic-digits"),
        pytest.param("a\x0cb\x00c\x7fd\x85e", "a bcd e", id="ascii-and-c1-controls"),
        pytest.param("4111\u28001111", "4111 1111", id="braille-blank"),
    ],
)
def test_examples(written: str, read: str) -> None:
    assert readable(written).text == read


def test_a_word_is_reported_with_what_hid_inside_it() -> None:
    read = readable("the he\u200bll \ufb01ne")
    start = read.text.index("hell")
    assert read.as_written(start, start + 4) == "he\u200bll"
    fi = read.text.index("fine")
    assert read.as_written(fi + 1, fi + 2) == "\ufb01", "half a ligature is the whole ligature"
    drawn = readable(f"we will {RIGHT_TO_LEFT}dnu\u200bfer\u202c you")
    start = drawn.text.index("refund")
    assert drawn.as_written(start, start + 6) == "dnu\u200bfer"

"""Card numbers written with letters for digits ("4lll 1111 1111 1111", "4III-IIII-IIII-IIII"): found
and redacted as written, by a narrow rule (`pii._disguised_in_run`), while words, order ids, tracking
numbers and ordinary numbers in sentences are left alone.

The rule: whole tokens of digits and look-alikes (O/o 0, I/l 1, S 5, B 8, and their Cyrillic, Greek and
Armenian twins), joined by the separators plain card numbers may have, 13-19 symbols, starting with a
real digit other than 0, Luhn-valid once read as digits, and either every token holding a real digit with real
digits more than half of the symbols, or printed exactly as a card is (4-4-4-4, 4-4-4-4-3, 4-6-5,
4-6-4) with one separator throughout."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from actormesh_runtime.actors.guardrail_validator import check
from actormesh_runtime.mocks.data import build_dataset
from actormesh_runtime.pii import (
    CARD_FIRST_DIGITS,
    CARD_LAYOUTS,
    DIGIT_LOOK_ALIKES,
    find_card_numbers,
    luhn_valid,
    normalise,
)
from actormesh_runtime.screening import CARD_PLACEHOLDER, screen
from tests.support.envelopes import JOHN
from tests.support.pii_formats import DIGIT_SCRIPTS, INVISIBLE, SEPARATORS, card_digits, luhn_check_digit

CARD = "pii: card number"
LATIN = {"0": "Oo", "1": "Il", "5": "S", "8": "B"}
"""The ASCII look-alikes of each digit that has one."""
NON_LATIN = {
    "0": "\u041e\u043e\u039f\u03bf\u0585",
    "1": "\u0406\u04c0\u0399",
    "5": "\u0405",
    "8": "\u0412\u0392",
}


def reads_as(text: str) -> str:
    """The digits a (normalised) written card number stands for."""
    return "".join(
        DIGIT_LOOK_ALIKES.get(c, c) for c in normalise(text) if c.isdigit() or c in DIGIT_LOOK_ALIKES
    )


def _printed(one: str) -> str:
    """4111-1111-1111-1111 with `one` for every 1."""
    return "4" + one * 3 + ("-" + one * 4) * 3


# (written card, the digits it stands for): every one Luhn-valid, every one missed before.
DISGUISED = [
    pytest.param("4lll 1111 1111 1111", "4111111111111111", id="l-for-1"),
    pytest.param("4III-IIII-IIII-IIII", "4111111111111111", id="I-for-1-printed-as-a-card"),
    pytest.param("4lIl 1111 1111 1111", "4111111111111111", id="l-and-I"),
    pytest.param("4111 llll 1111 1111", "4111111111111111", id="a-whole-group-of-letters"),
    pytest.param("5S55 5555 5555 4444", "5555555555554444", id="S-for-5"),
    pytest.param("55OO OOOO OOOO OOO4", "5500000000000004", id="O-for-0-printed-as-a-card"),
    pytest.param("5500 oooo 0000 0004", "5500000000000004", id="o-for-0"),
    pytest.param("37B2 B22463 1OOO5", "378282246310005", id="amex-B-for-8"),
    pytest.param("3O56 93O9O2 59O4", "30569309025904", id="diners-4-6-4"),
    pytest.param("6234 S678 9O12 34S6 78O", "6234567890123456780", id="19-digits-4-4-4-4-3"),
    pytest.param("4lll1111 1111 1111", "4111111111111111", id="groups-of-8-4-4"),
    # The separators plain card numbers may have.
    pytest.param("4lll.1111.1111.1111", "4111111111111111", id="dots"),
    pytest.param("4lll/1111/1111/1111", "4111111111111111", id="slashes"),
    pytest.param("4lll_1111_1111_1111", "4111111111111111", id="underscores"),
    pytest.param("4lll, 1111, 1111, 1111", "4111111111111111", id="commas"),
    pytest.param("4lll+1111+1111+1111", "4111111111111111", id="plus-signs"),
    pytest.param("4lll -- 1111 -- 1111 -- 1111", "4111111111111111", id="four-character-separators"),
    pytest.param("4III\u2013IIII\u2013IIII\u2013IIII", "4111111111111111", id="en-dashes"),
    pytest.param("4lll\u00a01111\u20091111\u30001111", "4111111111111111", id="unicode-spaces"),
    # With what `normalise` already undoes.
    pytest.param("4l\u200bll 1111 1111 1111", "4111111111111111", id="zero-width-space-in-a-group"),
    pytest.param("4lll\u200b1111\u200b1111\u200b1111", "4111111111111111", id="zero-width-separators"),
    pytest.param("4I\u00adII-IIII-II\u2060II-IIII", "4111111111111111", id="soft-hyphen-word-joiner"),
    pytest.param("4lll\u31641111\u31641111\u31641111", "4111111111111111", id="hangul-filler"),
    pytest.param(
        "\uff14\uff4c\uff4c\uff4c\uff0d\uff11\uff11\uff11\uff11\uff0d\uff11\uff11\uff11\uff11\uff0d"
        "\uff11\uff11\uff11\uff11",
        "4111111111111111",
        id="fullwidth",
    ),
    pytest.param("\U0001d7d2lll 1111 1111 1111", "4111111111111111", id="math-bold-digit"),
    pytest.param(_printed("\u2160"), "4111111111111111", id="roman-numeral-one"),
    pytest.param("4\u0406\u0406\u0406 1111 1111 1111", "4111111111111111", id="cyrillic-I"),
    pytest.param("55\u041e0 0000 0000 0004", "5500000000000004", id="cyrillic-O"),
    pytest.param(_printed("\u0399"), "4111111111111111", id="greek-iota-printed-as-a-card"),
]


@pytest.mark.parametrize(("written", "digits"), DISGUISED)
@pytest.mark.parametrize(
    ("before", "after"),
    [("", ""), ("my card is ", ", exp 12/29"), ("card: ", "."), ("(", ")"), ("CARD-", " please")],
)
def test_a_card_written_with_letters_is_redacted_as_written(
    written: str, digits: str, before: str, after: str
) -> None:
    assert luhn_valid(digits)
    assert reads_as(written) == digits

    screened, screening = screen(f"{before}{written}{after}")

    assert screened == f"{before}{CARD_PLACEHOLDER}{after}"
    assert screening.redactions == ["card"]


@pytest.mark.parametrize(("written", "digits"), DISGUISED)
def test_the_guardrail_refuses_a_draft_holding_one(written: str, digits: str) -> None:
    assert CARD in check(f"Thanks! The card {written} is on file.", JOHN)


def test_the_span_is_the_card_as_written() -> None:
    text = "Pay with 4lll-1111-1111-1111, not 4III IIII IIII IIII or 5S55 5555 5555 4444."
    assert [text[start:end] for start, end in find_card_numbers(text)] == [
        "4lll-1111-1111-1111",
        "4III IIII IIII IIII",
        "5S55 5555 5555 4444",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "4111 1111 1111 1111 5S55 5555 5555 4444",
            f"{CARD_PLACEHOLDER} {CARD_PLACEHOLDER}",
            id="plain-then-disguised",
        ),
        pytest.param(
            "5S55 5555 5555 4444 4111 1111 1111 1111",
            f"{CARD_PLACEHOLDER} {CARD_PLACEHOLDER}",
            id="disguised-then-plain",
        ),
        pytest.param(
            "5S55 5555 5555 4444 4111 1111 1111 1111exp 12/29",
            f"{CARD_PLACEHOLDER} {CARD_PLACEHOLDER}exp 12/29",
            id="disguised-then-plain-glued-to-a-word",
        ),
        pytest.param(
            "ORD-10001 4lll 1111 1111 1111", f"ORD-10001 {CARD_PLACEHOLDER}", id="after-an-order-id"
        ),
        pytest.param("10001 4lll 1111 1111 1111", f"10001 {CARD_PLACEHOLDER}", id="digits-before-it"),
        pytest.param(
            "4lll 1111 1111 1111, ssn 123-45-6789", f"{CARD_PLACEHOLDER}, ssn [REDACTED-SSN]", id="and-an-ssn"
        ),
        # The zero-led window "0006 4lll 1111 1111" reads Luhn-valid: it used to take the card's first
        # three groups, leaving its last in the text.
        pytest.param("0006 4lll 1111 1111 1111", f"0006 {CARD_PLACEHOLDER}", id="after-zero-led-digits"),
    ],
)
def test_a_disguised_card_next_to_other_numbers(text: str, expected: str) -> None:
    assert screen(text)[0] == expected


@pytest.mark.parametrize(
    "text",
    [
        # Read as digits, these fail Luhn (the first reads 5055 5555 5555 4444: O is 0, not 5).
        pytest.param("card 5O55 5555 5555 4444", id="O-for-5-is-not-luhn"),
        pytest.param("card 4lll 1111 1111 1112", id="luhn-invalid"),
        pytest.param("card 4III-IIII-IIII-IIIS", id="printed-as-a-card-luhn-invalid"),
        # Words, and words between numbers.
        pytest.param("SOLID", id="solid"),
        pytest.param("SOS! lOl, BOSS, I, IS, SO, Oslo, BIOS, ISO", id="look-alike-words"),
        pytest.param("ISO 9001, ISO 14001, ISO 27001", id="standards"),
        pytest.param("Call 555-123-4567 so I can help", id="phone-then-so-I"),
        pytest.param("Call me at 555 123 4567 lol 0 I", id="phone-then-words"),
        pytest.param("Bulbs from the 1980s, 1990s, 2000s and 2010s", id="decades"),
        pytest.param("I paid $49.99 on 12/05/2026 for 2 items, BOB", id="prices-and-dates"),
        pytest.param("Room 1O1, floor 3, building B 1O", id="room-numbers"),
        pytest.param("IIII IIII IIII IIII", id="no-real-digit"),
        pytest.param("lOOO 1111 1111 1111", id="starts-with-a-letter"),
        # Luhn-valid once read as digits, but starting with 0, as no card number does.
        pytest.param("00OO OOOO OOOO OOOO", id="starts-with-0-printed-as-a-card"),
        pytest.param("0lll 1111 1111 1119", id="starts-with-0-mostly-digits"),
        pytest.param("4lll111111111111111111111", id="too-long"),
        pytest.param("4lll-1111 1111", id="too-short"),
        # A letter-heavy number not printed as a card: one separator throughout, groups of four.
        pytest.param("4III-IIII IIII-IIII", id="mixed-separators-letters-majority"),
        pytest.param("4III IIIIII IIIIII", id="unusual-groups-letters-majority"),
        # Ids the mesh and its commerce APIs use, however many in a row.
        pytest.param("ORD-10001, ORD-10002, ORD-10003, ORD-20001, ORD-20002, ORD-30001", id="order-ids"),
        pytest.param("ORD-1OOO1 ORD-1OOO2 ORD-1OOO3 ORD-2OOO1", id="order-ids-with-letters"),
        pytest.param("TRK100000001 TRK100000002 TRK100000003 TRK200000001", id="tracking-numbers"),
        pytest.param("TRK1OOOOOOO1 / TRK1OOOOOOO2", id="tracking-numbers-with-letters"),
        pytest.param("CUST-1001 CUST-1002 CUST-1003 CUST-1004", id="customer-ids"),
        pytest.param("ESC-0b1d2e3f ESC-1234abcd ESC-12345678", id="escalation-refs"),
        pytest.param("UPS 1Z 999 AA1 01 2345 678 4, 1Z999AA10123456784", id="ups-tracking"),
        pytest.param("traceparent 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", id="traceparent"),
        pytest.param("550E8400-E29B-41D4-A716-446655440000", id="uppercase-uuid"),
        pytest.param(
            "2026-12-07T08:06:41.123456Z 2026-12-07T08:06:42.000001Z 2026-12-07T08:06:43Z",
            id="utc-timestamps",
        ),
    ],
)
def test_what_is_not_a_disguised_card(text: str) -> None:
    screened, screening = screen(text)
    assert screened == text
    assert not screening.pii_redacted
    assert CARD not in check(text, JOHN)


def test_no_id_of_the_demo_data_is_redacted() -> None:
    data = build_dataset()
    ids = [*data.orders, *data.customers, *data.tracking]
    assert {"ORD-10001", "CUST-1001", "TRK100000001"} <= set(ids)
    for joiner in (" ", ", ", "-", " / ", "\n"):
        text = joiner.join(ids)
        assert screen(text)[0] == text


def test_a_long_run_of_look_alikes_stays_linear() -> None:
    text = "1 l " * 4000
    assert screen(text)[0] == text


# ---------------------------------------------------------------- as properties

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PRINTED = sorted(CARD_LAYOUTS)
ONLY_WHOLE = [layout for layout in PRINTED if len(layout) < 5]
"""Layouts in which no shorter window of whole groups holds 13 symbols (4-4-4-4-3 holds 16 and 15)."""
BEFORE = ["", "My card is ", "card: ", "CARD-", "number #", "(", "visa ", "\u200b"]
AFTER = ["", " please", ". Thanks!", ")", " exp soon", "!"]


@st.composite
def _letters_for(draw: st.DrawFn, digits: str, positions: list[int]) -> list[str]:
    """`digits` as symbols, a look-alike letter at each of `positions` (digits that have one)."""
    symbols = list(digits)
    for at in positions:
        script = draw(st.sampled_from([LATIN, NON_LATIN]))
        symbols[at] = draw(st.sampled_from(script[digits[at]]))
    return symbols


@st.composite
def mostly_digits(draw: st.DrawFn) -> tuple[str, str]:
    """(written, digits): any grouping, any separators (and invisible characters) between groups, digits
    of any script; letters for fewer than half of the digits, never for a whole group or the first."""
    digits = draw(card_digits())
    cuts = sorted(set(draw(st.lists(st.integers(1, len(digits) - 1), max_size=5))))
    bounds = [0, *cuts, len(digits)]
    groups = [range(a, b) for a, b in itertools.pairwise(bounds)]
    can = [at for at in range(1, len(digits)) if digits[at] in LATIN]
    chosen = draw(st.lists(st.sampled_from(can), unique=True, max_size=(len(digits) - 1) // 2)) if can else []
    chosen = [at for at in chosen if any(other not in chosen for other in groups[_group_of(bounds, at)])]
    symbols = draw(_letters_for(digits, chosen))
    script = DIGIT_SCRIPTS[draw(st.sampled_from(sorted(DIGIT_SCRIPTS)))]
    out = []
    for n, group in enumerate(groups):
        for at in group:
            out.append(script[int(symbols[at])] if symbols[at].isdigit() else symbols[at])
            if draw(st.integers(0, 9)) == 0 and at != group[-1]:
                out.append(draw(st.sampled_from(INVISIBLE)))
        if n < len(groups) - 1:
            if draw(st.integers(0, 5)) == 0:
                out.append(draw(st.sampled_from(INVISIBLE)))
            else:
                out.append("".join(draw(st.lists(st.sampled_from(SEPARATORS), min_size=1, max_size=2)))[:3])
    return "".join(out), digits


def _group_of(bounds: list[int], at: int) -> int:
    return next(n for n in range(len(bounds) - 1) if bounds[n] <= at < bounds[n + 1])


@st.composite
def printed_as_a_card(draw: st.DrawFn, *, luhn: bool = True) -> tuple[str, str]:
    """(written, digits): a card's layout, one visible separator throughout, the first digit 1-9 and
    letters for any digits but the first (all of them may be letters)."""
    layout = draw(st.sampled_from(PRINTED if luhn else ONLY_WHOLE))
    length = sum(layout)
    first = draw(st.sampled_from(CARD_FIRST_DIGITS))
    body = first + draw(st.text("0123456789", min_size=length - 2, max_size=length - 2))
    check_digit = int(luhn_check_digit(body))
    digits = body + str(check_digit if luhn else (check_digit + draw(st.integers(1, 9))) % 10)
    can = [at for at in range(1, length) if digits[at] in LATIN]
    chosen = draw(st.lists(st.sampled_from(can), unique=True, min_size=1)) if can else []
    symbols = draw(_letters_for(digits, chosen))
    separator = draw(st.sampled_from(SEPARATORS))
    groups, at = [], 0
    for size in layout:
        groups.append("".join(symbols[at : at + size]))
        at += size
    return separator.join(groups), digits


@PROPERTY
@given(
    st.one_of(mostly_digits(), printed_as_a_card()),
    st.sampled_from(BEFORE),
    st.sampled_from(AFTER),
)
@example(("4lll 1111 1111 1111", "4111111111111111"), "", "")
@example(("4III-IIII-IIII-IIII", "4111111111111111"), "", "")
@example(("37B2 B22463 1OOO5", "378282246310005"), "card: ", ".")
def test_every_disguised_card_is_redacted_and_refused(case: tuple[str, str], before: str, after: str) -> None:
    written, digits = case
    assert luhn_valid(digits)
    screened, screening = screen(f"{before}{written}{after}")
    assert screened == normalise(before) + CARD_PLACEHOLDER + normalise(after), (written, screened)
    assert screening.redactions == ["card"]
    assert CARD in check(f"We have {before}{written}{after} on file.", JOHN)


def _without_look_alikes(text: str) -> str:
    return "".join("x" if c in DIGIT_LOOK_ALIKES else c for c in text)


@PROPERTY
@given(printed_as_a_card(luhn=False), st.sampled_from(["", "card: ", "(", "number #"]))
@example(("5O55 5555 5555 4444", "5055555555554444"), "card ")
def test_letters_never_make_a_card_of_a_number_that_fails_luhn(case: tuple[str, str], before: str) -> None:
    """What is found in a non-Luhn number with letters is what is found with those letters as x: the
    letters add nothing (the digits around them are still read as plain groups)."""
    written, digits = case
    assert not luhn_valid(digits)
    text = normalise(f"{before}{written}.")
    assert find_card_numbers(text) == find_card_numbers(_without_look_alikes(text))


_IDS = st.one_of(
    st.text("0123456789OolISB", min_size=5, max_size=5).map(lambda s: f"ORD-{s}"),
    st.text("0123456789OolISB", min_size=9, max_size=9).map(lambda s: f"TRK{s}"),
    st.text("0123456789OolISB", min_size=4, max_size=4).map(lambda s: f"CUST-{s}"),
    st.text("0123456789abcdef", min_size=8, max_size=8).map(lambda s: f"ESC-{s}"),
    st.text("0123456789abcdef", min_size=12, max_size=30)
    .map(lambda s: f"a{s}f")
    .filter(
        lambda s: not any(len(run) >= 13 for run in "".join(c if c.isdigit() else " " for c in s).split())
    ),
)


@PROPERTY
@given(st.lists(_IDS, min_size=1, max_size=8), st.sampled_from([" ", ", ", "-", " / ", "; ", "\n", " and "]))
def test_ids_are_never_redacted_however_many_and_however_written(ids: list[str], joiner: str) -> None:
    """Order ids, tracking numbers and customer ids (with letters for digits, as a customer may type
    them), escalation references and the hex ids the mesh mints, in any number and order."""
    text = joiner.join(ids)
    assert screen(text)[0] == text


_LOOK_ALIKE_TEXT = st.lists(
    st.sampled_from(
        [
            *"0123456789",
            " ",
            "-",
            ".",
            ",",
            "/",
            "  ",
            *"OolISB",
            "x",
            "\u041e",
            "ORD-",
            "TRK",
            "4lll",
            "IIII",
            "5S55",
        ]
    ),
    max_size=40,
).map("".join)


@PROPERTY
@given(_LOOK_ALIKE_TEXT)
@example("4lll 1111 1111 1111")
@example("4III-IIII-IIII-IIII x 4111 1111 1111 1111")
def test_the_shape_check_never_changes_what_is_found(text: str) -> None:
    assert find_card_numbers(text) == find_card_numbers(text, check_shape=False)

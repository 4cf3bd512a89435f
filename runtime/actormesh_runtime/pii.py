"""Finding and redacting card numbers and US SSNs in any text, however it is formatted. Standard library only.

`normalise(text)` first undoes the tricks that hide digits and words from a regular expression, then
the finders look for digit groups joined by any short run of separators, and Luhn decides what is a
card. No card number starts with 0 (`CARD_FIRST_DIGITS`), so a window that does is never one, however
Luhn reads it (leading zeros never change a Luhn sum: "0001 2345 6789 0128", an order or tracking
number with leading zeros, would be valid one time in ten). A card number may also be written with
letters for some of its digits ("4lll 1111 1111 1111", "4III-IIII-IIII-IIII": O/o for 0, I/l for 1,
S for 5, B for 8, see `DIGIT_LOOK_ALIKES`); such a run is a card only by a narrow rule
(`_disguised_in_run`: it starts with a real digit other than 0, reads as a Luhn-valid number, and is
mostly digits in every group or printed exactly as a card is), so words, order ids and tracking
numbers never are. `redact(text)` does both and is what logs, dead letters,
stores and LLM errors go through; `screening.screen` adds the prompt-injection flags for a customer's
message. This module sits at the bottom of the runtime's layers (nothing but the standard library),
so every layer can redact.

Normalisation, in order:
- NFKC: fullwidth digits and letters become ASCII, compatibility spaces (U+00A0, U+2009, U+3000…)
  become spaces;
- every decimal digit of any script becomes its ASCII digit;
- Unicode format characters (category Cf: U+200B, U+2060, U+FEFF, bidi controls…), every other
  default-ignorable code point (Unicode draws them as nothing: the Hangul fillers U+3164/U+FFA0 are
  letters, variation selectors and U+034F are marks), other control characters and combining marks
  after a digit are invisible; between two digits they become a space (they separated something),
  elsewhere they are dropped (so "ign\\u200bore" reads "ignore") — but for the zero-width joiner
  and the emoji variation selector after a pictograph (the joiner only before one too), which hold
  emoji sequences together;
- every other space separator, and the braille blank U+2800 (a symbol drawn as a space), becomes a
  space, dash-like characters "-", dot-like "." and slash-like "/".

`readable(text)` is what word patterns read (the guardrail's checks of a draft, the injection flags):
the same folding, every combining mark dropped too, letters of other scripts that look Latin read
as Latin and what a right-to-left override reverses read in the order it is drawn, with each
character's position in the text as written. It only reads: the text itself goes
on as written (a draft) or normalised (a customer's message), never as read.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass

CARD_PLACEHOLDER = "[REDACTED-CARD]"
SSN_PLACEHOLDER = "[REDACTED-SSN]"

_INVISIBLE = "\u200b"
"""What every invisible character becomes while normalising (itself invisible, so removed at the end)."""
_DASHES = {"\u2212", "\u2796", "\ufe63", "\uff0d", "\u2043"}
_DOTS = {"\u00b7", "\u2022", "\u2024", "\u2027", "\u2219", "\u22c5", "\u30fb", "\uff65", "\u3002", "\uff61"}
_SLASHES = {"\u2044", "\u2215", "\u29f8", "\uff0f", "\u2216", "\u29f5", "\uff3c"}
_KEEP_CONTROLS = {"\n", "\r", "\t"}
_BLANKS = {"\u2800"}
"""Drawn as a space, though neither a space separator nor default-ignorable."""
_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip
"""Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): drawn as nothing. Most are
format characters already; the Hangul fillers (Lo) and the variation selectors (Mn) are not."""
_IGNORABLE_STARTS = [lo for lo, _ in _IGNORABLE_RANGES]

_GLUE = "-./_\\,+;*#"
"""The punctuation that may join digit groups: "4111-1111", "4111.1111", "4111,1111", "5555+5555".
Not ":": a log line's time ("08:06:41.123456+00:00") would then be 16 digits, a card by Luhn one
time in ten."""
SEPARATORS = " \t\r\n" + _GLUE
"""What may stand between the digit groups of one number (after normalisation), up to MAX_SEPARATOR
characters in a row: "4111 1111", "4111--1111", "4111 / 1111", "4111, 1111", "4111  1111"."""
MAX_SEPARATOR = 4
_SEP = rf"[{re.escape(SEPARATORS)}]{{1,{MAX_SEPARATOR}}}"

# A run of digit groups joined by short separator runs, not glued to more digits. Letters may touch it:
# "visa4111111111111111" is still a card, while TRK100000001 has too few digits to ever be one.
_DIGIT_RUN = re.compile(rf"(?<![0-9])[0-9]+(?:{_SEP}[0-9]+)*(?![0-9])")
_GROUP = re.compile(r"[0-9]+")
_ID_PREFIX = re.compile(r"[A-Za-z]-$")
"""An id such as ORD-10001: its digits never start a card number (but a whole card after a prefix
such as CARD- still is one, see `_card_in_run`)."""

_SSN_SEP = rf"[{re.escape(SEPARATORS)}]{{1,{MAX_SEPARATOR}}}"
_SSN_RE = re.compile(
    rf"(?<![0-9])(?<![0-9][{re.escape(_GLUE)}])(?!000|666|9[0-9][0-9])[0-9]{{3}}{_SSN_SEP}(?!00)[0-9]{{2}}"
    rf"{_SSN_SEP}(?!0000)[0-9]{{4}}(?![0-9])(?![{re.escape(_GLUE)}][0-9])"
)
_SSN_BARE_RE = re.compile(
    # No word boundaries: "visaSSN 123456789" and "ssn123456789" name an SSN too.
    r"(?i)(?:ssn|social\s*security(?:\s*(?:number|no\.?|#))?)\D{0,20}?(?<![0-9])([0-9]{9})(?![0-9])"
)
_BETWEEN_DIGITS = re.compile(rf"(?<=[0-9]){_INVISIBLE}+(?=[0-9])")

DIGIT_LOOK_ALIKES = {
    "O": "0", "o": "0", "I": "1", "l": "1", "S": "5", "B": "8",
    # The same letters in Cyrillic, Greek and Armenian (NFKC has already made fullwidth ones, the
    # script small l U+2113 and the Roman numeral one U+2160 ASCII).
    "\u041e": "0", "\u043e": "0", "\u039f": "0", "\u03bf": "0", "\u0585": "0",
    "\u0406": "1", "\u04c0": "1", "\u0399": "1", "\u0405": "5", "\u0412": "8", "\u0392": "8",
}  # fmt: skip
"""Letters typed (or read by OCR) for digits in a disguised card number ("4lll 1111 1111 1111").
Deliberately not: Z (every UTC timestamp ends "…41Z", UPS tracking numbers start "1Z"), lowercase s
("the 1990s, 2000s"), b, e and the other hex letters (the ids the mesh mints are hex), "|" (it
joins table columns into one token), g, q, G, T, A, E (rarely written for a digit)."""
_AS_DIGITS = str.maketrans(DIGIT_LOOK_ALIKES)
_SYMBOLS = "0-9" + "".join(DIGIT_LOOK_ALIKES)
_TOKEN = re.compile(rf"[{_SYMBOLS}]+")
_NOT_GLUED = r"(?![^\W_])"
"""Followed by no letter or digit of any script."""
_DISGUISED_RUN = re.compile(
    rf"[0-9](?<![^\W_][0-9])[{_SYMBOLS}]*{_NOT_GLUED}(?:{_SEP}[{_SYMBOLS}]+{_NOT_GLUED})*"
)
"""Whole words of digits and look-alikes (touching no other letter or digit) joined by separator runs,
from a word that starts with a digit (as a disguised card does: so `re` skips to the next digit)."""
CARD_FIRST_DIGITS = "123456789"
"""What a payment card number starts with (its major industry identifier is never 0)."""
CARD_LAYOUTS = frozenset({(4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4)})
"""How card numbers are printed (16 and 19 digits, American Express, Diners Club)."""

# Shapes every match must contain, as patterns that start with a digit (so `re` skips to the next digit
# instead of trying lookbehinds at every position). Most texts (and every template reply) hold order
# ids, tracking numbers and dates but no such shape, and then the finders stop after one quick search.
_CARD_SHAPE = re.compile(rf"[0-9](?:[{re.escape(SEPARATORS)}]{{0,{MAX_SEPARATOR}}}[{_SYMBOLS}]){{12}}")
"""A digit and 12 more digits or look-alikes, each pair apart by at most a separator run: inside every
card window (13-19 digits of whole groups joined by separator runs) and every disguised one (which
starts with a real digit). One search, as cheap as a digits-only one: ordinary text pays nothing more."""
_SSN_SHAPE = re.compile(rf"[0-9]{{3}}{_SSN_SEP}[0-9]{{2}}{_SSN_SEP}[0-9]{{4}}")
"""What `_SSN_RE` matches without its lookarounds."""
_NINE_DIGITS = re.compile(r"[0-9]{9}")
"""Inside every `_SSN_BARE_RE` match (whose case-insensitive keyword cannot be scanned for quickly)."""


def _ignorable(char: str) -> bool:
    at = bisect_right(_IGNORABLE_STARTS, ord(char)) - 1
    return at >= 0 and ord(char) <= _IGNORABLE_RANGES[at][1]


def _fold(char: str, previous: str) -> str:
    """One non-ASCII character of NFKC text, folded (see the module docstring)."""
    category = unicodedata.category(char)
    if category == "Nd":
        return str(unicodedata.digit(char))
    if (category in ("Cf", "Cc", "Co", "Cs", "Cn") and char not in _KEEP_CONTROLS) or _ignorable(char):
        return _INVISIBLE
    if category in ("Mn", "Me") and (previous.isdigit() or previous in (" ", _INVISIBLE)):
        return _INVISIBLE
    if category in ("Zs", "Zl", "Zp") or char in _BLANKS:
        return " "
    if category == "Pd" or char in _DASHES:
        return "-"
    if char in _DOTS:
        return "."
    if char in _SLASHES:
        return "/"
    return char


_EMOJI_JOINERS = {"\u200d", "\ufe0f"}
"""The zero-width joiner and the emoji variation selector: kept after a pictograph (`_joins_emoji`)."""


def _joins_emoji(char: str, previous: str, following: str) -> bool:
    """Whether `char` glues an emoji sequence together ("👨\u200d👩\u200d👧", "🏳\ufe0f\u200d🌈"):
    after a symbol (So, or Sk: the skin tones) or a variation selector it hides no digit or letter,
    and dropping it showed the agent three people for a family. A joiner is kept only when a symbol
    or a variation selector follows too ("ign©\u200dore" reads "ign©ore"). After a digit (keycaps)
    both are dropped."""
    if char not in _EMOJI_JOINERS or not previous or previous.isascii():
        return False
    if char == "\u200d" and not (following == "\ufe0f" or _is_symbol(following)):
        return False
    return previous == "\ufe0f" or _is_symbol(previous)


def _is_symbol(char: str) -> bool:
    return bool(char) and not char.isascii() and unicodedata.category(char) in ("So", "Sk")


def normalise(text: str) -> str:
    """`text` as the finders and the injection screen read it (and as it is forwarded).

    Never longer than `unicodedata.normalize("NFKC", text)`: each NFKC character folds to one
    character or to nothing, and a run of invisible ones between digits to one space."""
    if text.isascii() and text.isprintable():
        return text
    nfkc = unicodedata.normalize("NFKC", text)
    out: list[str] = []
    previous = ""
    for at, char in enumerate(nfkc):
        folded = char if char.isascii() and (char.isprintable() or char in _KEEP_CONTROLS) else None
        if folded is None and _joins_emoji(char, previous, nfkc[at + 1 : at + 2]):
            folded = char
        if folded is None:
            folded = _fold(char, previous) if not char.isascii() else _INVISIBLE
        out.append(folded)
        if folded != _INVISIBLE:
            previous = folded
    joined = _BETWEEN_DIGITS.sub(" ", "".join(out))
    return joined.replace(_INVISIBLE, "")


INVISIBLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x0000, 0x0020), (0x007F, 0x00A0), (0x00AD, 0x00AD), (0x034F, 0x034F), (0x0600, 0x0605),
    (0x061C, 0x061C), (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2),
    (0x115F, 0x1160), (0x1680, 0x1680), (0x17B4, 0x17B5), (0x180B, 0x180F), (0x2000, 0x200F),
    (0x2028, 0x202F), (0x205F, 0x206F), (0x2800, 0x2800), (0x3000, 0x3000), (0x3164, 0x3164),
    (0xD800, 0xDFFF), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFFB),
    (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x13438), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip
"""What screening drops (or reads as a space) whatever surrounds it: controls, format characters,
space separators, lone surrogates, the default-ignorable code points and the braille blank. A message
of nothing else is empty (`has_visible`). A short list of ranges rather than "whatever `normalise`
drops" (which includes every unassigned code point) so that the gateway's OpenAPI schema can say the
same in a pattern (`INVISIBLE_CLASS`); tests/unit/test_screening.py derives it from `unicodedata` and
checks `normalise` drops every one of them."""


def _class_of(ranges: tuple[tuple[int, int], ...]) -> str:
    """The body of a regular-expression character class holding `ranges`, read alike by Python and
    ECMA (with the `u` flag): BMP characters as `\\uXXXX` escapes, others as themselves."""

    def one(code: int) -> str:
        return f"\\u{code:04X}" if code <= 0xFFFF else chr(code)

    return "".join(one(lo) if lo == hi else f"{one(lo)}-{one(hi)}" for lo, hi in ranges)


INVISIBLE_CLASS = _class_of(INVISIBLE_RANGES)
_VISIBLE = re.compile(f"[^{INVISIBLE_CLASS}]")


def has_visible(text: str) -> bool:
    """Whether `text` holds a character outside `INVISIBLE_RANGES`: one regular-expression search in
    C, stopping at the first (the gateway asks this of every message before any length check)."""
    return _VISIBLE.search(text) is not None


_LOOK_ALIKES = {
    look_alike: latin
    for look_alikes, latins in (
        # Cyrillic
        (
            "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0455\u0456\u0458\u04bb\u0501\u051b\u051d\u04cf\u04af",
            "aeopcyxsijhdqwly",
        ),
        (
            "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0423\u0405\u0406\u0408\u04c0",
            "ABEKMHOPCTXYSIJl",
        ),
        ("\u04ae\u051a\u051c", "YQW"),
        # Greek
        ("\u03b1\u03bf\u03b9\u03ba\u03bd\u03c1\u03c5\u03c7\u03b3", "aoikvpuxy"),
        (
            "\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7",
            "ABEZHIKMNOPTYX",
        ),
        # Armenian, IPA
        ("\u0585\u057d\u0578\u0570\u0581\u0566", "ounhgq"),
        ("\u0251\u0261\u0269\u0237", "agij"),
        # Latin small capitals
        ("\u1d00\u0299\u1d04\u1d05\u1d07\ua730\u0262\u029c\u026a\u1d0a\u1d0b\u029f", "abcdefghijkl"),
        ("\u1d0d\u0274\u1d0f\u1d18\u0280\ua731\u1d1b\u1d1c\u1d20\u1d21\u028f\u1d22", "mnoprstuvwyz"),
    )
    for look_alike, latin in zip(look_alikes, latins, strict=True)
}
"""Not Unicode's whole confusables table: the letters that pass for Latin ones in running text.
Only `readable` uses it, for English patterns, which real Russian or Greek words do not spell this
way (neither script has a letter drawn like f or r); the text itself is never rewritten with it."""
_READ_TABLE_MAX = 8192


def _read_char(char: str) -> str:
    """`char` as a reader takes it: "" when drawn as nothing, possibly several characters (the
    ligature U+FB01 reads "fi"), every mark dropped (U+00E9, e with an acute accent, reads "e")."""
    if char in _KEEP_CONTROLS:
        return char
    if char.isspace() or char in _BLANKS:
        return " "
    if unicodedata.category(char) in ("Cf", "Cc", "Co", "Cs", "Cn") or _ignorable(char):
        return ""
    out = []
    for part in unicodedata.normalize("NFKD", char):
        if unicodedata.category(part) in ("Mn", "Me") or _ignorable(part):
            continue
        folded = part if part.isascii() else _fold(part, "")
        out.append(_LOOK_ALIKES.get(folded, folded))
    return "".join(out).replace(_INVISIBLE, "")


class _ReadTable(dict[int, str]):
    """`_read_char` as a `str.translate` table, so a whole text is read in C; characters are added as they
    turn up, up to a bound (a draft may hold any characters at all)."""

    def __missing__(self, code: int) -> str:
        read = _read_char(chr(code))
        if len(self) < _READ_TABLE_MAX:
            self[code] = read
        return read


_READ_TABLE = _ReadTable({code: chr(code) for code in range(0x20, 0x7F)} | {ord(c): c for c in "\t\n\r"})
_ASCII_HIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Readable:
    """A text as a reader takes it (`readable`), and where each of its characters was written."""

    text: str
    written: str
    origin: tuple[int, ...] | None = None
    """`origin[i]`: the index in `written` of the character `text[i]` was read from (None: `i`)."""

    def as_written(self, start: int, end: int) -> str:
        """What `text[start:end]` was read from, the invisible characters inside it included."""
        if self.origin is None or start >= end:
            return self.written[start:end]
        span = self.origin[start:end]  # not in order where a right-to-left override reversed it
        return self.written[min(span) : max(span) + 1]


_RIGHT_TO_LEFT = re.compile("\u202e([^\u202c\u202d\n\r\u2029]*)")
"""A right-to-left override and what it draws reversed: up to a pop, a left-to-right override or the
end of the paragraph (nested embeddings are not followed: no draft needs one)."""


def readable(text: str) -> Readable:
    """`text` as word patterns should read it (see the module docstring), in the order it is drawn."""
    if text.isascii() and (text.isprintable() or _ASCII_HIDDEN.search(text) is None):
        return Readable(text, text)  # nearly every draft: nothing to read differently
    if "\u202e" not in text:
        return _read(text)
    # "\u202ednufer" is drawn, and read, "refund".
    order = list(range(len(text)))
    for match in _RIGHT_TO_LEFT.finditer(text):
        order[match.start(1) : match.end(1)] = reversed(order[match.start(1) : match.end(1)])
    drawn = _read("".join(text[at] for at in order))
    origin = range(len(drawn.text)) if drawn.origin is None else drawn.origin
    return Readable(drawn.text, text, tuple(order[at] for at in origin))


def _read(text: str) -> Readable:
    read = text.translate(_READ_TABLE)
    lengths = {char: n for char in set(text) if (n := len(_READ_TABLE[ord(char)])) != 1}
    if not lengths:
        return Readable(read, text)
    origin: list[int] = []
    done = 0
    for at, char in enumerate(text):
        if char in lengths:
            origin.extend(range(done, at))
            origin.extend([at] * lengths[char])
            done = at + 1
    origin.extend(range(done, len(text)))
    return Readable(read, text, tuple(origin))


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_in_run(run: str, offset: int, *, after_id_prefix: bool) -> list[tuple[int, int]]:
    """Spans of Luhn-valid 13-19 digit windows of whole groups inside one digit run, never starting
    with 0 (`CARD_FIRST_DIGITS`).

    The longest valid windows win and never overlap, so digits next to a card number do not
    swallow it. Windows never exceed 19 digits: a long run costs linear time, not quadratic.
    After an id prefix (ORD-10001) the first group starts only a window that is the whole run: the
    id never glues to an unrelated number that follows it, while "CARD-4111 1111 1111 1111" is caught.
    """
    groups = [(m.start() + offset, m.end() + offset, m.group()) for m in _GROUP.finditer(run)]
    if sum(len(g[2]) for g in groups) < 13:
        return []  # most runs (order numbers, dates, prices) are too short to hold a card
    windows: list[tuple[int, int, int]] = []  # (digit count, first group, last group)
    for i in range(len(groups)):
        if groups[i][2][0] not in CARD_FIRST_DIGITS:
            # Not a card, and it must not compete: a zero-led window would take a card's first groups.
            continue
        digits = ""
        for j in range(i, len(groups)):
            digits += groups[j][2]
            if len(digits) > 19:
                break
            whole_run = i == 0 and j == len(groups) - 1
            if i == 0 and after_id_prefix and not whole_run:
                continue
            if len(digits) >= 13 and luhn_valid(digits):
                windows.append((len(digits), i, j))
    return [(groups[first][0], groups[last][1]) for first, last in _longest(windows)]


def _longest(windows: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """(first group, last group) of the longest `windows` (digit count, first, last) that do not overlap."""
    taken: set[int] = set()
    chosen: list[tuple[int, int]] = []
    for _, first, last in sorted(windows, key=lambda w: (-w[0], w[1])):
        if taken.isdisjoint(range(first, last + 1)):
            taken.update(range(first, last + 1))
            chosen.append((first, last))
    return chosen


def _disguised_in_run(run: str, offset: int, *, after_id_prefix: bool) -> list[tuple[int, int]]:
    """Spans of disguised card numbers inside one run of whole tokens (`_DISGUISED_RUN`).

    A window of whole tokens is one when it holds 13-19 symbols, starts with a real digit other than 0
    (`CARD_FIRST_DIGITS`: a look-alike letter, or 0, never starts one), holds at
    least one look-alike letter (digits alone are `_card_in_run`'s), reads (`DIGIT_LOOK_ALIKES`) as a
    Luhn-valid number, and either every token holds a real digit and real digits are more than half of
    its symbols ("4lll 1111 1111 1111", "5S55-5555-5555-4444"), or its tokens are printed as a card is
    (`CARD_LAYOUTS`) with one and the same separator between them ("4III-IIII-IIII-IIII"). So a word
    of look-alikes alone ("SOS", "ISO 9001, ISO 14001") never joins digits into a number.
    Windows of digits alone compete too (and are left to `_card_in_run`), so a card number next to a
    disguised one does not take its first group: "4111 1111 1111 1111 5S55 5555 5555 4444" is two."""
    tokens = [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(run)]
    if sum(len(t[2]) for t in tokens) < 13:
        return []
    seps = [run[tokens[k][1] : tokens[k + 1][0]] for k in range(len(tokens) - 1)]
    windows: list[tuple[int, int, int]] = []
    for i in range(len(tokens)):
        if tokens[i][2][0] not in CARD_FIRST_DIGITS:
            continue
        written = ""
        for j in range(i, len(tokens)):
            written += tokens[j][2]
            if len(written) > 19:
                break
            if (i == 0 and after_id_prefix and j != len(tokens) - 1) or len(written) < 13:
                continue
            digits = written.translate(_AS_DIGITS)
            if not luhn_valid(digits):
                continue
            if digits == written:
                windows.append((len(written), i, j))
                continue
            window = [t[2] for t in tokens[i : j + 1]]
            mostly_digits = sum(c.isdigit() for c in written) * 2 > len(written) and not any(
                t.isalpha() for t in window
            )
            printed = tuple(map(len, window)) in CARD_LAYOUTS and len(set(seps[i:j])) == 1
            if mostly_digits or printed:
                windows.append((len(written), i, j))
    return [
        (tokens[first][0] + offset, tokens[last][1] + offset)
        for first, last in _longest(windows)
        if not all(t[2].isdigit() for t in tokens[first : last + 1])  # digits alone: `_card_in_run`'s
    ]


def _disguised_cards(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for match in _DISGUISED_RUN.finditer(text):
        if match.group().translate(_AS_DIGITS) != match.group():  # else digits alone: `_card_in_run`'s
            after_id = bool(_ID_PREFIX.search(text, max(0, match.start() - 2), match.start()))
            spans.extend(_disguised_in_run(match.group(), match.start(), after_id_prefix=after_id))
    return spans


def find_card_numbers(text: str, *, check_shape: bool = True) -> list[tuple[int, int]]:
    """(start, end) spans of card numbers in `text` (normalise it first: `redact` does), written in
    digits or with look-alike letters for some of them (`_disguised_in_run`).

    Disguised ones are found first and hidden from the digit runs, which then never glue what is left
    of one ("55 5555 5555 4444" of "5S55 5555 5555 4444") to the next number.
    `check_shape=False` examines every run even where `_CARD_SHAPE` finds nothing (tests compare)."""
    spans: list[tuple[int, int]] = []
    if check_shape and not _CARD_SHAPE.search(text):
        return spans
    disguised = sorted(_disguised_cards(text))
    digits = text
    if disguised:
        parts, done = [], 0
        for start, end in disguised:
            parts += [text[done:start], "\x00" * (end - start)]
            done = end
        digits = "".join([*parts, text[done:]])
    for match in _DIGIT_RUN.finditer(digits):
        after_id = bool(_ID_PREFIX.search(digits, max(0, match.start() - 2), match.start()))
        spans.extend(_card_in_run(match.group(), match.start(), after_id_prefix=after_id))
    return sorted(spans + disguised) if disguised else spans


def find_ssns(text: str, *, check_shape: bool = True) -> list[tuple[int, int]]:
    """(start, end) spans of US social security numbers in `text` (normalise it first).

    `check_shape=False` runs both patterns even where their shapes are absent (tests compare)."""
    spans = []
    if not check_shape or _SSN_SHAPE.search(text):
        spans = [(m.start(), m.end()) for m in _SSN_RE.finditer(text)]
    if not check_shape or _NINE_DIGITS.search(text):
        spans.extend((m.start(1), m.end(1)) for m in _SSN_BARE_RE.finditer(text))
    return sorted(set(spans))


def _replace(text: str, spans: list[tuple[int, int]], placeholder: str) -> str:
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + placeholder + text[end:]
    return text


def redact_found(text: str) -> tuple[str, list[str]]:
    """Normalised `text` with card numbers and SSNs replaced, and which kinds were found."""
    text = normalise(text)
    kinds: list[str] = []
    cards = find_card_numbers(text)
    if cards:
        text = _replace(text, cards, CARD_PLACEHOLDER)
        kinds.append("card")
    ssns = find_ssns(text)
    if ssns:
        text = _replace(text, ssns, SSN_PLACEHOLDER)
        kinds.append("ssn")
    return text, kinds


def redact(text: str) -> str:
    """`text` with card numbers and SSNs replaced: for anything logged, stored or forwarded."""
    return redact_found(text)[0]


def contains_pii(text: str) -> list[str]:
    """Kinds of personal data in `text` ("card", "ssn"), however formatted."""
    return redact_found(text)[1]

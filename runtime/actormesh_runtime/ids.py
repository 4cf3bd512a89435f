"""Random identifiers the runtime mints (message, session, trace and span ids).

Every log line and stored text goes through card-number redaction (`pii`), which must catch a card
number glued to letters ("card4111111111111111") or split by separators ("4111-1111 1111 1111"). A
plain random hex id holds a Luhn-valid run of 13 or more decimal digits about once in 500 draws, and
two ids joined by a dash (a `traceparent`, `msg-…`) can form one across the dash. When that happens
the redaction rewrites the id inside log lines: the one field an operator greps for stops matching.
So a minted id starts and ends with a letter (no digit run crosses into a neighbour) and is redrawn
until no run of its digits is as long as a card number.
"""

from __future__ import annotations

import hashlib
import re
import secrets

_CARD_LENGTH_RUN = re.compile(r"[0-9]{13}")
_LETTERS = "abcdef"

# The OS's generator, not `random`: a message id is also the JetStream de-duplication key, and the
# `random` module's state is shared (a library or Hypothesis may seed it; a private generator would
# repeat itself in forked children), so a repeated id would silently drop a message.
_getrandbits = secrets.randbits


def random_hex(chars: int = 32) -> str:
    """`chars` (at least 3) lowercase hex digits: a letter first and last, never 13 decimal digits in
    a row, never all zero. About 4 * chars - 3 random bits (a 16-character span id keeps 61 of 64)."""
    middle_chars = chars - 2
    while True:
        bits = _getrandbits(4 * middle_chars + 6)
        middle = f"{bits >> 6:0{middle_chars}x}"[-middle_chars:]
        if _CARD_LENGTH_RUN.search(middle) is None:
            first, last = divmod(bits & 0b111111, 8)
            return f"{_LETTERS[first % 6]}{middle}{_LETTERS[last % 6]}"


def digest_hex(data: bytes, chars: int = 32) -> str:
    """The deterministic counterpart of `random_hex`, same shape: `chars` hex digits of sha256 over
    `data`, a letter first and last, never 13 decimal digits in a row (rehashed with a counter until
    so, which the same `data` always repeats). For ids that must be equal whenever their inputs are."""
    counter = 0
    while True:
        digest = hashlib.sha256(counter.to_bytes(4, "big") + data).hexdigest()
        middle = digest[1 : chars - 1]
        if _CARD_LENGTH_RUN.search(middle) is None:
            first, last = int(digest[0], 16), int(digest[chars - 1], 16)
            return f"{_LETTERS[first % 6]}{middle}{_LETTERS[last % 6]}"
        counter += 1

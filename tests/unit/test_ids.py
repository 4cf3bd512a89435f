"""Minted ids never look like a card number to the log redaction (which would rewrite them in logs)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from actormesh_runtime import ids
from actormesh_runtime.envelope import Headers, new_message_id
from actormesh_runtime.gateway.models import new_session_id
from actormesh_runtime.observability import tracing
from actormesh_runtime.pii import redact

# A Luhn-valid 16-digit card number inside otherwise ordinary hex.
CARD_SHAPED = "4111111111111111abcdefabcdefab"
PLAIN = "0123456789abcdef0123456789abcd"


def draws_of(*middles: str, ends: int = 0b000001) -> Callable[[int], int]:
    """A stand-in for `getrandbits` giving each middle in turn, with the first/last letter bits."""
    values = iter([(int(m, 16) << 6) | ends for m in middles])
    return lambda bits: next(values)


def test_an_id_holding_a_card_number_is_redrawn(monkeypatch: pytest.MonkeyPatch) -> None:
    assert redact(f"a{CARD_SHAPED}b") != f"a{CARD_SHAPED}b"  # what the redraw protects from
    monkeypatch.setattr(ids, "_getrandbits", draws_of(CARD_SHAPED, PLAIN))
    assert ids.random_hex(32) == f"a{PLAIN}b"


def test_ids_start_and_end_with_a_letter_so_no_digit_run_crosses_a_dash() -> None:
    # "…29581166766-33f9…" was read as one card number across the dash of a traceparent.
    for _ in range(200):
        value = ids.random_hex(16)
        assert value[0] in "abcdef"
        assert value[-1] in "abcdef"


def test_an_all_zero_draw_is_not_an_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "_getrandbits", draws_of("000000", ends=0))
    assert ids.random_hex(8) == "a000000a"


@pytest.mark.parametrize("chars", [8, 12, 16, 32])
def test_ids_have_the_asked_length_in_lowercase_hex(chars: int) -> None:
    value = ids.random_hex(chars)
    assert len(value) == chars
    assert value == value.lower()
    int(value, 16)


def test_every_minted_id_survives_redaction() -> None:
    # About 1 in 500 plain uuid4 hex ids holds a Luhn-valid 13-19 digit run: 5,000 draws of each
    # kind would all but surely include one if the ids were not redrawn.
    for _ in range(5000):
        trace = tracing.new_trace()
        for value in (new_message_id(), new_session_id(), trace.trace_id, trace.span_id):
            assert redact(value) == value
        traceparent = Headers(deadline=0).traceparent
        assert redact(traceparent) == traceparent


def test_seeding_the_random_module_does_not_repeat_ids() -> None:
    # A message id is the JetStream de-duplication key: a repeat would drop a conversation.
    random.seed(7)
    first = new_message_id()
    random.seed(7)
    assert new_message_id() != first

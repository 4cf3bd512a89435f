"""What keeps every bus publish within the server's max_payload (bus/size.py), without a server."""

from __future__ import annotations

import pytest

from actormesh_runtime.bus.dlq import DeadLetter
from actormesh_runtime.bus.errorpath import _fitting
from actormesh_runtime.bus.size import HEADER_ALLOWANCE, MESSAGE_EXCERPT_CHARS, TooLarge, check_fits, trimmed
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.errors import PermanentError
from tests.support.envelopes import make_envelope


class Client:
    max_payload = 10_000


def test_a_payload_leaves_room_for_the_headers_the_server_counts() -> None:
    check_fits(Client(), b"x" * (10_000 - HEADER_ALLOWANCE), "fits")
    with pytest.raises(TooLarge, match=f"10000 bytes; the bus carries at most {10_000 - HEADER_ALLOWANCE}"):
        check_fits(Client(), b"x" * 10_000, "a message")
    assert issubclass(TooLarge, PermanentError), "retrying cannot make it fit"


def test_trimming_cuts_only_a_huge_message() -> None:
    small = make_envelope("Where is my order ORD-10002?")
    assert trimmed(small) is small
    huge = make_envelope("h" * 500_000)
    cut = trimmed(huge)
    assert len(cut.message) < MESSAGE_EXCERPT_CHARS + 100
    assert cut.message.endswith("[truncated: too large for the bus]")
    assert cut.message_id == huge.message_id
    assert len(huge.message) == 500_000, "the original is left as it was"


def test_a_dead_letter_too_large_for_the_bus_keeps_its_reason_and_an_excerpt() -> None:
    class JetStream:
        _nc = Client()

    envelope = make_envelope("h" * 50_000)
    record = DeadLetter(actor=ActorName.SENTIMENT_ANALYZER, reason="boom", permanent=True, deliveries=1,
                        message_id=envelope.message_id, envelope=envelope)  # fmt: skip
    kept = _fitting(JetStream(), record)  # type: ignore[arg-type]
    assert kept.envelope is None
    assert kept.message_id == envelope.message_id
    assert kept.reason == "boom (envelope too large to keep)"
    assert kept.raw is not None
    assert kept.raw.startswith('{"actor":"sentiment_analyzer"')
    small = record.model_copy(update={"envelope": make_envelope("hi")})
    assert _fitting(JetStream(), small) is small

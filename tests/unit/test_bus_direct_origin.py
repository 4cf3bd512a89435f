"""`bus.direct`: what a direct hop carries, and what it must carry before a host will process it."""

from __future__ import annotations

from typing import Any, cast

from nats.aio.msg import Msg

from actormesh_runtime.bus.direct import encode_hop, origin_of
from actormesh_runtime.catalog import Subjects

STREAM = Subjects("m").stream
ACK = f"$JS.ACK.{STREAM}.{Subjects('m').consumer('sentiment_analyzer')}.2.41.40.1733400000000000000.0"
ENVELOPE = b'{"message_id":"m-1","text":"line one\\nline two"}'
NC = cast(Any, object())


def hop(data: bytes) -> Msg:
    return Msg(_client=NC, subject="actormesh.m.direct.intent_analyzer", data=data)


def test_the_origin_becomes_the_message_to_settle_and_keeps_its_timer() -> None:
    found = origin_of(NC, hop(encode_hop(ACK, 1733400000.25, ENVELOPE)), STREAM)

    assert found is not None
    origin, reset_at = found
    assert (origin.reply, origin.data, reset_at) == (ACK, ENVELOPE, 1733400000.25)
    assert origin._client is NC, "settled on the receiving host's connection"


def test_an_unreadable_timer_counts_as_due() -> None:
    found = origin_of(NC, hop(ACK.encode() + b" soon\n" + ENVELOPE), STREAM)

    assert found is not None
    assert found[1] == 0.0


def test_a_hop_without_an_origin_of_this_stream_is_refused() -> None:
    assert origin_of(NC, hop(ENVELOPE), STREAM) is None, "a bare envelope"
    assert origin_of(NC, hop(encode_hop(ACK, 1.0, ENVELOPE)), Subjects("other").stream) is None
    assert origin_of(NC, hop(encode_hop("reply.somewhere", 1.0, ENVELOPE)), STREAM) is None

"""`bus.direct.origin_of`: what a direct hop must carry before a host will process it."""

from __future__ import annotations

from typing import Any, cast

from nats.aio.msg import Msg

from actormesh_runtime.bus.direct import ORIGIN_HEADER, RESET_HEADER, origin_of
from actormesh_runtime.catalog import Subjects

STREAM = Subjects("m").stream
ACK = f"$JS.ACK.{STREAM}.{Subjects('m').consumer('sentiment_analyzer')}.2.41.40.1733400000000000000.0"
NC = cast(Any, object())


def hop(headers: dict[str, str] | None) -> Msg:
    return Msg(_client=NC, subject="actormesh.m.direct.intent_analyzer", data=b"{}", headers=headers)


def test_the_origin_becomes_the_message_to_settle_and_keeps_its_timer() -> None:
    found = origin_of(NC, hop({ORIGIN_HEADER: ACK, RESET_HEADER: "1733400000.25"}), STREAM)

    assert found is not None
    origin, reset_at = found
    assert (origin.reply, origin.data, reset_at) == (ACK, b"{}", 1733400000.25)
    assert origin._client is NC, "acked on the receiving host's connection"


def test_an_unreadable_timer_counts_as_due() -> None:
    found = origin_of(NC, hop({ORIGIN_HEADER: ACK, RESET_HEADER: "soon"}), STREAM)

    assert found is not None
    assert found[1] == 0.0


def test_a_hop_without_an_origin_of_this_stream_is_refused() -> None:
    assert origin_of(NC, hop(None), STREAM) is None
    assert origin_of(NC, hop({ORIGIN_HEADER: ACK}), Subjects("other").stream) is None
    assert origin_of(NC, hop({ORIGIN_HEADER: "reply.somewhere"}), STREAM) is None

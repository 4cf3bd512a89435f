"""`bus.direct`: what a direct hop carries, what it must carry before a host will process it, and when
it is too old to run."""

from __future__ import annotations

from typing import Any, cast

import pytest
from nats.aio.msg import Msg

from actormesh_runtime.bus.direct import CLOCK_SLACK_S, encode_hop, expired, origin_of
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


@pytest.mark.parametrize(
    ("waited_s", "dropped"),
    [
        (0.0, False),
        (30.0, False),  # the origin's ack wait is just over: the sender's clock may be ahead
        (30.0 + CLOCK_SLACK_S - 0.01, False),
        (30.0 + CLOCK_SLACK_S + 0.01, True),  # past ack wait and the clock slack: redelivered by now
        (3600.0, True),
        (-5.0, False),  # the sender's clock is ahead of ours
    ],
)
def test_a_hop_is_dropped_only_once_its_origin_is_certainly_past_its_ack_wait(
    waited_s: float, dropped: bool
) -> None:
    now = 1733400100.0
    assert expired(now - waited_s, 30.0, now) is dropped


def test_a_hop_with_an_unreadable_timer_is_never_taken_as_expired() -> None:
    # origin_of reads an unreadable reset time as 0: the step runs (and resets the timer first).
    assert expired(0.0, 30.0, 1733400100.0) is False

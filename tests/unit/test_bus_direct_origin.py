"""`bus.direct`: what a direct hop carries, what it must carry before a host will process it, and when
it is too old to run."""

from __future__ import annotations

from typing import Any, cast

import pytest
from nats.aio.msg import Msg

from actormesh_runtime.bus.direct import (
    CLOCK_SLACK_S,
    SETTLE,
    RemoteOrigin,
    encode_hop,
    expired,
    origin_of,
    seal,
    seal_key,
    settle_of,
)
from actormesh_runtime.catalog import Subjects

SUBJECTS = Subjects("m")
STREAM = SUBJECTS.stream
FIRST = SUBJECTS.consumer("sentiment_analyzer")
NEXT = SUBJECTS.consumer("intent_analyzer")
ACK = f"$JS.ACK.{STREAM}.{FIRST}.2.41.40.1733400000000000000.0"
ENVELOPE = b'{"message_id":"m-1","text":"line one\\nline two"}'
KEY = seal_key("sentiment-password")
SEAL = seal(KEY, ACK)


class Published:
    """Stands in for the receiving host's connection: what it publishes."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def publish(self, subject: str, payload: bytes = b"") -> None:
        self.sent.append((subject, payload))


NC = cast(Any, Published())


def hop(data: bytes) -> Msg:
    return Msg(_client=NC, subject="actormesh.m.direct.intent_analyzer", data=data)


def test_the_origin_becomes_the_message_to_settle_and_keeps_its_timer() -> None:
    found = origin_of(NC, hop(encode_hop(ACK, 1733400000.25, ENVELOPE, SEAL)), SUBJECTS, NEXT)

    assert found is not None
    origin, reset_at = found
    assert (origin.reply, origin.data, reset_at) == (ACK, ENVELOPE, 1733400000.25)
    assert origin._client is NC, "settled on the receiving host's connection"
    assert isinstance(origin, RemoteOrigin), "another actor's delivery: settled through that actor"
    assert (origin.seal, origin.settle_to) == (SEAL, SUBJECTS.direct("sentiment_analyzer"))


def test_an_origin_of_our_own_consumer_is_settled_directly() -> None:
    found = origin_of(NC, hop(encode_hop(ACK, 1.0, ENVELOPE, SEAL)), SUBJECTS, FIRST)

    assert found is not None
    assert type(found[0]) is Msg


async def test_a_remote_origins_verbs_go_to_its_actor_as_sealed_settles_it_accepts() -> None:
    connection = Published()
    found = origin_of(cast(Any, connection), hop(encode_hop(ACK, 1.0, ENVELOPE, SEAL)), SUBJECTS, NEXT)
    assert found is not None
    origin = found[0]

    await origin.in_progress()
    await origin.nak(delay=1.5)

    assert [to for to, _ in connection.sent] == [SUBJECTS.direct("sentiment_analyzer")] * 2
    carried_out = [settle_of(payload, STREAM, FIRST, KEY) for _, payload in connection.sent]
    assert carried_out == [(ACK, b"+WPI"), (ACK, b'-NAK {"delay": 1500000000}')]


@pytest.mark.parametrize(
    "payload",
    [
        SETTLE + f"{ACK} {seal(seal_key('another actor'), ACK)}\n".encode() + b"+ACK",  # forged seal
        SETTLE + f"{ACK} \n".encode() + b"+ACK",  # no seal (a hop from a release before seals)
        SETTLE + f"{ACK.replace(FIRST, NEXT)} {seal(KEY, ACK.replace(FIRST, NEXT))}\n".encode() + b"+ACK",
        SETTLE
        + f"$JS.ACK.OTHER.{FIRST}.1.1.1.1.0 {seal(KEY, f'$JS.ACK.OTHER.{FIRST}.1.1.1.1.0')}\n".encode(),
        SETTLE + f"{ACK} {SEAL}\n".encode() + b"+NXT",  # not an acknowledgement
        SETTLE + f"{ACK} {SEAL}\n".encode() + b'-NAK {"delay": "soon"}',
        SETTLE + f"{ACK} {SEAL}\n".encode() + b"+ACK extra",
        SETTLE + f"{ACK} {SEAL}".encode(),  # no verb line at all
    ],
    ids=[
        "forged-seal",
        "no-seal",
        "another-consumer",
        "another-stream",
        "not-a-verb",
        "bad-nak",
        "ack-args",
        "cut",
    ],
)
def test_a_settle_is_carried_out_only_when_sealed_by_us_for_our_own_delivery(payload: bytes) -> None:
    assert settle_of(payload, STREAM, FIRST, KEY) is None


def test_an_unreadable_timer_counts_as_due() -> None:
    found = origin_of(NC, hop(ACK.encode() + b" soon\n" + ENVELOPE), SUBJECTS, NEXT)

    assert found is not None
    assert found[1] == 0.0


def test_a_hop_without_an_origin_of_this_stream_is_refused() -> None:
    assert origin_of(NC, hop(ENVELOPE), SUBJECTS, NEXT) is None, "a bare envelope"
    assert origin_of(NC, hop(encode_hop(ACK, 1.0, ENVELOPE)), Subjects("other"), NEXT) is None
    assert origin_of(NC, hop(encode_hop("reply.somewhere", 1.0, ENVELOPE)), SUBJECTS, NEXT) is None
    unknown = f"$JS.ACK.{STREAM}.no_such_actor.2.41.40.1.0"
    assert origin_of(NC, hop(encode_hop(unknown, 1.0, ENVELOPE)), SUBJECTS, NEXT) is None, (
        "no actor to settle it"
    )


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

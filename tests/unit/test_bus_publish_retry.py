"""An acked publish rides out a stream that answers nobody for a while (a clustered NATS electing a new
stream leader after losing a server), within a bounded budget; other errors are not retried."""

from __future__ import annotations

from typing import Any

import pytest
from nats.js.api import PubAck
from nats.js.errors import NoStreamResponseError

from actormesh_runtime.bus import dlq, publish
from actormesh_runtime.catalog import ActorName, DeadLetterReason, Subjects
from tests.support.envelopes import make_envelope


class FlakyStream:
    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or NoStreamResponseError()
        self.calls: list[dict[str, Any]] = []

    async def publish(self, subject: str, payload: bytes, **kwargs: Any) -> PubAck:
        self.calls.append({"subject": subject, **kwargs})
        if len(self.calls) <= self.failures:
            raise self.error
        return PubAck(stream="S", seq=len(self.calls))


@pytest.mark.looptime
async def test_publish_retries_until_the_stream_answers_with_one_message_id() -> None:
    js = FlakyStream(failures=5)
    env = make_envelope("hello")
    ack = await publish.publish_payload(js, Subjects("t"), env, b"{}")  # type: ignore[arg-type]
    assert ack == PubAck(stream="S", seq=6)
    assert len(js.calls) == 6
    assert {c["headers"][publish.MSG_ID_HEADER] for c in js.calls} == {env.dedup_id()}


@pytest.mark.looptime
async def test_publish_gives_up_after_the_budget() -> None:
    js = FlakyStream(failures=10_000)
    with pytest.raises(NoStreamResponseError):
        await publish.publish_payload(js, Subjects("t"), make_envelope("hello"), b"{}")  # type: ignore[arg-type]
    assert 5 < len(js.calls) < 20


async def test_other_errors_are_not_retried() -> None:
    js = FlakyStream(failures=1, error=ValueError("bad"))
    with pytest.raises(ValueError, match="bad"):
        await publish.publish_payload(js, Subjects("t"), make_envelope("hello"), b"{}")  # type: ignore[arg-type]
    assert len(js.calls) == 1


@pytest.mark.looptime
async def test_dead_letters_and_history_events_ride_out_an_election_too() -> None:
    # Every acked publish of the bus goes through the same retry: the DLQ record and the
    # aggregator's history event (BusPublisher.publish_stream), each with its own message id.
    subjects = Subjects("t")
    env = make_envelope("hello")
    js = FlakyStream(failures=3)
    record = dlq.DeadLetter(
        actor=ActorName.INTENT_ANALYZER,
        reason="boom",
        permanent=True,
        deliveries=1,
        message_id=env.message_id,
        envelope=env,
        kind=DeadLetterReason.PERMANENT,
    )
    await dlq.store(js, subjects, record, dedup_key="42")  # type: ignore[arg-type]
    assert len(js.calls) == 4
    assert {c["headers"][publish.MSG_ID_HEADER] for c in js.calls} == {"dlq:42"}

    js = FlakyStream(failures=2)
    await publish.BusPublisher(None, js).publish_stream(subjects.history_events, b"{}", msg_id="m:history")  # type: ignore[arg-type]
    assert [c["headers"][publish.MSG_ID_HEADER] for c in js.calls] == ["m:history"] * 3

"""An acked publish rides out a stream that answers nobody for a while (a clustered NATS electing a new
stream leader after losing a server), within a bounded budget; other errors are not retried."""

from __future__ import annotations

from typing import Any

import pytest
from nats.js.errors import NoStreamResponseError

from actormesh_runtime.bus import publish
from actormesh_runtime.catalog import Subjects
from tests.support.envelopes import make_envelope


class FlakyStream:
    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or NoStreamResponseError()
        self.calls: list[dict[str, Any]] = []

    async def publish(self, subject: str, payload: bytes, **kwargs: Any) -> str:
        self.calls.append({"subject": subject, **kwargs})
        if len(self.calls) <= self.failures:
            raise self.error
        return "ack"


@pytest.mark.looptime
async def test_publish_retries_until_the_stream_answers_with_one_message_id() -> None:
    js = FlakyStream(failures=5)
    env = make_envelope("hello")
    ack = await publish.publish_payload(js, Subjects("t"), env, b"{}")  # type: ignore[arg-type]
    assert ack == "ack"  # type: ignore[comparison-overlap]
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

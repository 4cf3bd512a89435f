"""`bus.publish.publish_progress` sends exactly the `ProgressEvent` the gateway and `ask` parse, and
nothing when the caller asked for no progress (no subject)."""

from __future__ import annotations

import json
from typing import Any

from actormesh_runtime.bus.publish import publish_progress
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import Envelope, ProgressEvent, ReplyTo
from actormesh_runtime.screening import screen


class Capture:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def publish(self, subject: str, payload: bytes = b"", **_: Any) -> None:
        self.sent.append((subject, payload))


def envelope(progress_subject: str | None) -> Envelope:
    text, screening = screen('Where is "my" order ORD-10002?')
    reply = ReplyTo(result_subject="r", progress_subject=progress_subject)
    return Envelope.start(
        session_id="s", customer_email="john.doe@example.com", message=text, screening=screening,
        budget_s=60, message_id='msg-"quoted"-\\1', reply=reply,
    )  # fmt: skip


async def test_the_event_is_the_progress_event_model_as_json() -> None:
    nc = Capture()
    env = envelope("r.progress")
    await publish_progress(nc, env, ActorName.GUARDRAIL_VALIDATOR, "retrying", 12.34567, 2)  # type: ignore[arg-type]
    [(subject, payload)] = nc.sent
    expected = ProgressEvent(
        message_id=env.message_id,
        actor=ActorName.GUARDRAIL_VALIDATOR,
        status="retrying",
        ms=12.346,
        attempt=2,
    )
    assert subject == "r.progress"
    assert ProgressEvent.model_validate_json(payload) == expected
    assert json.loads(payload) == json.loads(expected.model_dump_json())


async def test_no_subject_no_event() -> None:
    nc = Capture()
    await publish_progress(nc, envelope(None), ActorName.INTENT_ANALYZER, "done", 1.0, 1)  # type: ignore[arg-type]
    assert nc.sent == []

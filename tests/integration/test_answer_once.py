"""One message, one answer, through a real nats-server and history service: when response_aggregator
runs again for a message (a lost ack, a crash; with direct hops a whole chain run again from its first
step) after the first run stored its turn, the caller gets the stored answer, not a second, different
one; and while the first run's event still waits in the stream for the store, the rerun sends nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from actormesh_runtime.actors.response_aggregator import ResponseAggregator
from actormesh_runtime.bus.connection import open_bus
from actormesh_runtime.bus.publish import BusPublisher
from actormesh_runtime.envelope import DraftResponse, Envelope, FinalResult, GuardrailVerdict, ReplyTo
from actormesh_runtime.history.service import HistoryService
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.settings import RuntimeSettings
from tests.support.envelopes import JOHN, make_envelope
from tests.support.eventually import eventually_async

pytestmark = pytest.mark.integration


def _settings(nats_server: str, tmp_path: Path) -> RuntimeSettings:
    return RuntimeSettings(
        mesh_name=f"once{uuid.uuid4().hex[:8]}", nats_url=nats_server, sqlite_db_path=str(tmp_path / "h.db")
    )


def _first_and_again(result_subject: str) -> tuple[Envelope, Envelope]:
    """A message's envelope at the last step, and the same message run again (delivery 2) whose
    draft differs, as an escalation reply does when the queue could not be read the second time."""
    first = make_envelope("Where is my order ORD-10002?", JOHN, with_context=True)
    first.reply = ReplyTo(result_subject=result_subject)
    first.draft = DraftResponse(text="Your order ships today.")
    first.guardrail = GuardrailVerdict(approved=True)
    again = first.model_copy(deep=True)
    again.draft = DraftResponse(text="We could not check your order just now.")
    again.headers.attempt = 2
    return first, again


class _Replies:
    def __init__(self) -> None:
        self.got: list[FinalResult] = []

    async def on_reply(self, msg: Msg) -> None:
        self.got.append(FinalResult.model_validate_json(msg.data))


async def _aggregator(nc: NATS, settings: RuntimeSettings) -> ResponseAggregator:
    return ResponseAggregator(ActorDeps(settings=settings, publisher=BusPublisher(nc, nc.jetstream())))


async def test_a_rerun_after_the_turn_was_stored_answers_the_stored_result(
    nats_server: str, tmp_path: Path
) -> None:
    settings = _settings(nats_server, tmp_path)
    history = HistoryService(settings)
    await history.start()
    nc = await open_bus(settings, name="answer-once-test")
    try:
        replies = _Replies()
        subject = f"actormesh.{settings.mesh_name}.reply.test.result"
        await nc.subscribe(subject, cb=replies.on_reply)
        aggregator = await _aggregator(nc, settings)
        first, again = _first_and_again(subject)

        await aggregator.handle(first)
        stored = await eventually_async(
            lambda: history.store.result(first.message_id), what="the first run's turn stored", timeout_s=20
        )
        await aggregator.handle(again)
        await nc.flush()
        await eventually_async(lambda: _count(replies, 2), what="two replies", timeout_s=10)
    finally:
        await nc.close()
        await history.stop()

    assert first.final is not None
    assert again.final is not None
    assert again.final.response != first.final.response, "the rerun really did come to another answer"
    assert [r.response for r in replies.got] == [first.final.response] * 2
    assert stored is not None
    assert stored.result.response == first.final.response


async def test_a_rerun_while_the_first_answer_waits_for_the_store_sends_nothing(
    nats_server: str, tmp_path: Path
) -> None:
    settings = _settings(nats_server, tmp_path)
    nc = await open_bus(settings, name="answer-once-test")  # the streams, but no history service yet
    history: HistoryService | None = None
    try:
        replies = _Replies()
        subject = f"actormesh.{settings.mesh_name}.reply.test.result"
        await nc.subscribe(subject, cb=replies.on_reply)
        aggregator = await _aggregator(nc, settings)
        first, again = _first_and_again(subject)

        await aggregator.handle(first)
        await aggregator.handle(again)  # the store does not answer: nothing it could contradict goes out
        await nc.flush()
        await asyncio.sleep(0.2)
        replies_before_the_store = [r.response for r in replies.got]
        history = HistoryService(settings)
        await history.start()
        stored = await eventually_async(
            lambda: history.store.result(first.message_id), what="the turn stored", timeout_s=20
        )
    finally:
        await nc.close()
        if history is not None:
            await history.stop()

    assert first.final is not None
    assert replies_before_the_store == [first.final.response]
    assert stored is not None
    assert stored.result.response == first.final.response


async def _count(replies: _Replies, n: int) -> bool:
    return len(replies.got) >= n

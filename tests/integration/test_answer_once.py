"""One message, one answer, through a real nats-server and history service: when response_aggregator
runs again for a message (a lost ack, a crash; with direct hops a whole chain run again from its first
step) after the first run stored its turn, the caller gets the stored answer, not a second, different
one; and while the first run's event still waits in the stream for the store, the rerun sends nothing;
and when two runs overlap (the origin redelivered while the first run still went on) and the rerun
reaches the last step first, the first run answers what the rerun stored.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from actormesh_runtime.actors.response_aggregator import ResponseAggregator
from actormesh_runtime.bus.connection import open_bus
from actormesh_runtime.bus.publish import BusPublisher
from actormesh_runtime.catalog import Subjects
from actormesh_runtime.envelope import DraftResponse, Envelope, FinalResult, GuardrailVerdict, ReplyTo
from actormesh_runtime.history.service import HistoryService
from actormesh_runtime.history.store import StoredResult
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.settings import RuntimeSettings
from tests.support.envelopes import JOHN, make_envelope
from tests.support.eventually import eventually_async
from tests.support.gateway import stack_settings

pytestmark = pytest.mark.integration


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


@dataclass
class _LastStep:
    """response_aggregator on a real bus, the replies it sends, and one message's two runs."""

    nc: NATS
    aggregator: ResponseAggregator
    first: Envelope
    again: Envelope
    replies: list[FinalResult] = field(default_factory=list)

    async def on_reply(self, msg: Msg) -> None:
        self.replies.append(FinalResult.model_validate_json(msg.data))


@contextlib.asynccontextmanager
async def _last_step(settings: RuntimeSettings) -> AsyncIterator[_LastStep]:
    nc = await open_bus(settings, name="answer-once-test")  # creates the streams
    try:
        subject = f"{Subjects(settings.mesh_name).replies('test')}.result"
        aggregator = ResponseAggregator(
            ActorDeps(settings=settings, publisher=BusPublisher(nc, nc.jetstream()))
        )
        step = _LastStep(nc, aggregator, *_first_and_again(subject))
        await nc.subscribe(subject, cb=step.on_reply)
        yield step
    finally:
        await nc.close()


@pytest.mark.parametrize("there_first", ["first run", "rerun"])
async def test_whichever_run_stored_first_is_what_both_answer(
    nats_server: str, tmp_path: Path, there_first: str
) -> None:
    """ "rerun": the origin was redelivered while the first run still went on (after a NATS restart),
    and the rerun reached the last step first; the first run, at delivery 1, must not answer its own."""
    settings = stack_settings(nats_server, tmp_path)
    history = HistoryService(settings)
    await history.start()
    try:
        async with _last_step(settings) as step:
            earlier, later = (
                (step.first, step.again) if there_first == "first run" else (step.again, step.first)
            )
            await step.aggregator.handle(earlier)
            stored: StoredResult | None = await eventually_async(
                lambda: history.store.result(earlier.message_id), what="the turn stored", timeout_s=20
            )
            await step.aggregator.handle(later)
            await step.nc.flush()
            await eventually_async(lambda: len(step.replies) == 2, what="two replies", timeout_s=10)
    finally:
        await history.stop()

    answered, other = earlier.final, later.final
    assert answered is not None
    assert other is not None
    assert other.response != answered.response, "the two runs really did come to different answers"
    assert [r.response for r in step.replies] == [answered.response] * 2
    assert stored is not None
    assert stored.result.response == answered.response


async def test_a_rerun_while_the_first_answer_waits_for_the_store_sends_nothing(
    nats_server: str, tmp_path: Path
) -> None:
    settings = stack_settings(nats_server, tmp_path)
    history = HistoryService(settings)
    try:
        async with _last_step(settings) as step:  # no history service yet
            await step.aggregator.handle(step.first)
            await step.aggregator.handle(step.again)  # the store does not answer: nothing is sent
            await step.nc.flush()
            await asyncio.sleep(0.2)
            replies_before_the_store = [r.response for r in step.replies]
            await history.start()
            stored: StoredResult | None = await eventually_async(
                lambda: history.store.result(step.first.message_id), what="the turn stored", timeout_s=20
            )
    finally:
        await history.stop()

    first = step.first.final
    assert first is not None
    assert replies_before_the_store == [first.response]
    assert stored is not None
    assert stored.result.response == first.response


async def test_a_replayed_dead_letter_answers_and_stores_its_own_outcome(
    nats_server: str, tmp_path: Path
) -> None:
    """`actormesh dlq replay` runs a message again on purpose, after its first run stored (mostly an
    error answer): the replay's outcome is new, so it is answered and replaces the stored one. With the
    first run's history message id it was dropped as a duplicate and the error answer sent again."""
    settings = stack_settings(nats_server, tmp_path)
    history = HistoryService(settings)
    await history.start()
    try:
        async with _last_step(settings) as step:
            await step.aggregator.handle(step.first)
            await eventually_async(
                lambda: history.store.result(step.first.message_id), what="the first run stored", timeout_s=20
            )
            replay = step.again.model_copy(deep=True)
            replay.headers.attempt = 1  # what `dlq replay` publishes: delivery 1 of a replay
            replay.headers.replay = 1
            await step.aggregator.handle(replay)
            await step.nc.flush()
            await eventually_async(lambda: len(step.replies) == 2, what="two replies", timeout_s=10)

            async def replay_stored() -> StoredResult | None:
                stored = await history.store.result(step.first.message_id)
                return stored if stored is not None and stored.result.response != first_answer else None

            first_answer = step.first.final.response if step.first.final else ""
            stored = await eventually_async(replay_stored, what="the replay's outcome stored", timeout_s=20)
    finally:
        await history.stop()

    assert replay.final is not None
    assert replay.final.response != first_answer
    assert [r.response for r in step.replies] == [first_answer, replay.final.response]
    assert stored is not None
    assert stored.result.response == replay.final.response

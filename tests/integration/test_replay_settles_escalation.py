"""A replayed dead letter that answers settles the error escalation its first run opened (real
nats-server, the nine actors, the history service on a SQLite file, a gateway, `actormesh dlq`).

A message fails for good: it is dead-lettered, the customer gets the apology with a reference and the
agents' queue holds an error escalation for it. An operator replays the dead letter once the cause is
fixed and the customer is answered. Before, the error escalation stayed open: a person was asked to
handle a conversation that had been answered. What must stay as it was: an escalation a person has
claimed (it is theirs), one of another message (the customer asked for a person), one of the same
message when the replay itself escalates, and one whose replay failed again.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from actormesh_runtime.actors.base import Actor
from actormesh_runtime.actors.escalation_router import in_error_mode
from actormesh_runtime.bus.errorpath import FALLBACK_REPLY
from actormesh_runtime.bus.process import ActorFactory, default_factory
from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.envelope import Envelope, FinalResult, HistoryEvent
from actormesh_runtime.errors import PermanentError
from actormesh_runtime.escalations import REPLAY_SETTLED_NOTE
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.settings import RuntimeSettings
from tests.support.escalation_events import published_events
from tests.support.eventually import eventually_async
from tests.support.gateway import JOHN, Stack, gateway_stack, poll_json, stack_settings

pytestmark = pytest.mark.integration

WHERE = "Where is my order ORD-10002?"


class Switch:
    """Whether the breakable actor fails; the test turns it off before replaying. `even_on_error_path`:
    it fails there too (the aggregator's last resort, the bus's fallback answer, is what runs then)."""

    def __init__(self, *, even_on_error_path: bool = False) -> None:
        self.broken = True
        self.even_on_error_path = even_on_error_path


class BreakableActor:
    """A real actor that fails permanently while its switch is on, except as the error handler (the
    error path must still answer the customer, as it does when a real dependency is down)."""

    def __init__(self, inner: Actor, switch: Switch) -> None:
        self.inner = inner
        self.name = inner.name
        self.switch = switch

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def handle(self, envelope: Envelope) -> None:
        if self.switch.broken and (self.switch.even_on_error_path or not in_error_mode(envelope)):
            raise PermanentError(f"{self.name.value} is broken")
        await self.inner.handle(envelope)


def breakable(actor: ActorName, switch: Switch) -> ActorFactory:
    def build(name: ActorName, deps: ActorDeps) -> Actor:
        real = default_factory(name, deps)
        return BreakableActor(real, switch) if name == actor else real  # type: ignore[return-value]

    return build


async def dlq_command(settings: RuntimeSettings, *args: str) -> None:
    from actormesh_runtime.cli import main

    base = ["dlq", "--nats-url", settings.nats_url, "--mesh", settings.mesh_name]
    assert await asyncio.to_thread(main, [*base, *args]) == 0


async def replay_dead_letter_of(settings: RuntimeSettings, message_id: str, replay: int = 0) -> None:
    """`actormesh dlq replay` of the dead letter of `message_id` (of its run number `replay`), found
    with `actormesh dlq list --json` as an operator would."""
    from actormesh_runtime.bus import dlq

    subjects = Subjects(settings.mesh_name)
    nc = await nats.connect(settings.nats_url)
    try:

        async def listed() -> list[dlq.StoredDeadLetter]:
            return [
                item
                for item in await dlq.list_records(nc.jetstream(), subjects)
                if item.record.message_id == message_id
                and item.record.envelope is not None
                and item.record.envelope.headers.replay == replay
            ]

        [item] = await eventually_async(listed, what=f"the dead letter of {message_id} (run {replay})")
    finally:
        await nc.close()
    await dlq_command(settings, "replay", str(item.id))


def stored_run(db: Path, message_id: str) -> int | None:
    """Which run's answer the store holds for `message_id` (the `replay` of its agent turn), read from
    the SQLite file itself: the replay's answer and the settling are one transaction, so once it shows
    the replay's run, the escalation has been settled or left, for good."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT replay FROM turns WHERE message_id = ? AND role = 'agent'", (message_id,)
        ).fetchone()
    return None if row is None else int(row[0])


async def answered_by_run(db: Path, message_id: str, run: int) -> None:
    await eventually_async(
        lambda: stored_run(db, message_id) == run, what=f"run {run} of {message_id} stored", timeout_s=60
    )


async def history_drained(stack: Stack) -> None:
    """Until the history writer has nothing pending or unacked (what was published is handled)."""
    subjects = Subjects(stack.mesh.settings.mesh_name)
    js = stack.mesh.nc.jetstream()

    async def drained() -> bool:
        info = await js.consumer_info(subjects.stream, subjects.history_consumer)
        return info.num_pending == 0 and info.num_ack_pending == 0

    await eventually_async(drained, what="the history consumer drained", timeout_s=60)


async def chat(api: httpx.AsyncClient, text: str, session: str) -> dict[str, Any]:
    answer = await api.post(
        "/api/chat", json={"message": text, "customer_email": JOHN, "session_id": session}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def escalation(api: httpx.AsyncClient, ref: str) -> dict[str, Any]:
    body: dict[str, Any] = (await poll_json(api, f"/api/escalations/{ref}"))["escalation"]
    return body


async def run_stack(
    tmp_path: Path,
    nats_server: str,
    actor: ActorName,
    scenario: Callable[[Stack, Switch, Path], Any],
    switch: Switch | None = None,
) -> None:
    switch = switch or Switch()
    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings, factory=breakable(actor, switch)) as stack:
        await scenario(stack, switch, Path(settings.sqlite_db_path))


async def test_a_replay_that_answers_settles_the_error_escalation(nats_server: str, tmp_path: Path) -> None:
    async def scenario(stack: Stack, switch: Switch, db: Path) -> None:
        settings = stack.mesh.settings
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as api:
            human = await chat(api, "I want to talk to a human", "replayed")  # another message's escalation
            failed = await chat(api, WHERE, "replayed")
            assert "error" in failed["flags"]
            ref, message_id = failed["reference_id"], failed["message_id"]
            before = await escalation(api, ref)
            assert (before["state"], before["reason"]) == ("open", "error")

            switch.broken = False
            await replay_dead_letter_of(settings, message_id)
            await answered_by_run(db, message_id, 1)

            result = await poll_json(api, f"/api/messages/{message_id}")
            assert "ORD-10002" in result["response"]
            assert not result["escalated"]
            settled = await escalation(api, ref)
            assert settled["state"] == "resolved"
            assert settled["resolution_note"] == REPLAY_SETTLED_NOTE
            assert settled["claimed_by"] is None
            assert (await escalation(api, human["reference_id"]))["state"] == "open"
            queue = (await api.get("/api/escalations", params={"state": "open"})).json()
            assert [e["ref"] for e in queue["items"]] == [human["reference_id"]]

            # The replay's history event stored again (a redelivery past the duplicate window).
            again = HistoryEvent(
                message_id=message_id, session_id="replayed", customer_email=JOHN, customer_message=WHERE,
                received_at=datetime.now(UTC), completed_at=datetime.now(UTC),
                result=FinalResult.model_validate(result), replay=1,
            )  # fmt: skip
            await stack.mesh.nc.jetstream().publish(
                Subjects(settings.mesh_name).history_events,
                again.model_dump_json().encode(),
                headers={"Nats-Msg-Id": f"{message_id}:history:r1:again"},
            )
            await history_drained(stack)
            assert await escalation(api, ref) == settled
        subjects = Subjects(settings.mesh_name)
        events = await eventually_async(
            lambda: published_events(settings.nats_url, subjects, subjects.escalations_updated),
            what="the escalation.updated event of the settling",
        )
        assert [(e.change, e.escalation.ref, e.escalation.state.value) for e in events] == [
            ("resolved", ref, "resolved")
        ]

    await run_stack(tmp_path, nats_server, ActorName.RESPONSE_GENERATOR, scenario)


async def test_an_escalation_a_person_claimed_stays_theirs(nats_server: str, tmp_path: Path) -> None:
    async def scenario(stack: Stack, switch: Switch, db: Path) -> None:
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as api:
            failed = await chat(api, WHERE, "claimed")
            ref, message_id = failed["reference_id"], failed["message_id"]
            claim = await api.post(f"/api/escalations/{ref}/claim", json={"agent": "ann"})
            assert claim.status_code == 200, claim.text
            reply = await api.post(
                f"/api/escalations/{ref}/reply", json={"agent": "ann", "text": "Looking into it now."}
            )
            assert reply.status_code == 200, reply.text

            switch.broken = False
            await replay_dead_letter_of(stack.mesh.settings, message_id)
            await answered_by_run(db, message_id, 1)

            record = await escalation(api, ref)
            assert (record["state"], record["claimed_by"]) == ("claimed", "ann")
            assert [r["text"] for r in record["replies"]] == ["Looking into it now."]
            assert record["resolution_note"] is None

    await run_stack(tmp_path, nats_server, ActorName.RESPONSE_GENERATOR, scenario)


async def test_a_replay_that_escalates_leaves_the_escalation_open(nats_server: str, tmp_path: Path) -> None:
    """The customer asked for a person; the handoff broke, so the error path opened the escalation. The
    replay hands over properly: somebody still has to answer, and the queue shows why (the customer
    asked) instead of a system error, with one `reclassified` event for live consoles."""

    async def scenario(stack: Stack, switch: Switch, db: Path) -> None:
        settings = stack.mesh.settings
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as api:
            failed = await chat(api, "I want to talk to a human", "handoff")
            assert "error" in failed["flags"]
            ref, message_id = failed["reference_id"], failed["message_id"]
            before = await escalation(api, ref)
            assert before["reason"] == "error"

            switch.broken = False
            await replay_dead_letter_of(settings, message_id)
            await answered_by_run(db, message_id, 1)

            result = await poll_json(api, f"/api/messages/{message_id}")
            assert result["escalated"]
            assert result["reference_id"] == ref
            after = await escalation(api, ref)
            assert (after["state"], after["reason"]) == ("open", "human_requested")
            assert after["created_at"] == before["created_at"]
        subjects = Subjects(settings.mesh_name)
        events = await eventually_async(
            lambda: published_events(settings.nats_url, subjects, subjects.escalations_updated),
            what="the escalation.updated event of the reclassifying",
        )
        assert [(e.change, e.escalation.ref, e.escalation.reason.value) for e in events] == [
            ("reclassified", ref, "human_requested")
        ]

    await run_stack(tmp_path, nats_server, ActorName.ESCALATION_ROUTER, scenario)


async def test_a_replay_that_fails_again_leaves_it_open_until_one_answers(
    nats_server: str, tmp_path: Path
) -> None:
    async def scenario(stack: Stack, switch: Switch, db: Path) -> None:
        settings = stack.mesh.settings
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as api:
            failed = await chat(api, WHERE, "twice")
            ref, message_id = failed["reference_id"], failed["message_id"]

            await replay_dead_letter_of(settings, message_id)  # still broken: fails again
            await answered_by_run(db, message_id, 1)
            assert (await escalation(api, ref))["state"] == "open"
            result = await poll_json(api, f"/api/messages/{message_id}")
            assert result["reference_id"] == ref

            switch.broken = False
            await replay_dead_letter_of(settings, message_id, replay=1)
            await answered_by_run(db, message_id, 2)
            record = await escalation(api, ref)
            assert (record["state"], record["resolution_note"]) == ("resolved", REPLAY_SETTLED_NOTE)

    await run_stack(tmp_path, nats_server, ActorName.RESPONSE_GENERATOR, scenario)


async def test_a_replay_whose_aggregator_fails_again_stores_its_own_fallback_answer(
    nats_server: str, tmp_path: Path
) -> None:
    """When even the aggregator fails on the error path, the bus answers with the fallback and stores it
    as the run's history event. A replay's fallback is its own run's: with the first run's message id,
    the stream's duplicate window dropped it and the store kept the first run as the last one."""

    async def scenario(stack: Stack, switch: Switch, db: Path) -> None:
        settings = stack.mesh.settings
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as api:
            failed = await chat(api, WHERE, "fallback")
            assert failed["response"].startswith(FALLBACK_REPLY)
            message_id = failed["message_id"]
            await answered_by_run(db, message_id, 0)

            nc = await nats.connect(settings.nats_url)
            try:
                letters = await eventually_async(
                    lambda: _dead_letters_of(nc, settings, message_id), what="the failed run's dead letters"
                )
            finally:
                await nc.close()
            await dlq_command(settings, "replay", str(letters[0].id))  # still broken: fails the same way
            await answered_by_run(db, message_id, 1)

    await run_stack(
        tmp_path, nats_server, ActorName.RESPONSE_AGGREGATOR, scenario, Switch(even_on_error_path=True)
    )


async def _dead_letters_of(nc: Any, settings: RuntimeSettings, message_id: str) -> list[Any]:
    from actormesh_runtime.bus import dlq

    return [
        item
        for item in await dlq.list_records(nc.jetstream(), Subjects(settings.mesh_name))
        if item.record.message_id == message_id
    ]

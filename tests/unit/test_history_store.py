"""The SQLite history store on its own (a real file, no sockets): migrations, WAL, idempotent writes,
redaction as a second line of defence, per-customer reads."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from actormesh_runtime.approvals import ApprovalRecord
from actormesh_runtime.envelope import (
    ActionStatus,
    ActionSummary,
    ActionType,
    FinalResult,
    HistoryEvent,
    Intent,
    MethodSummary,
)
from actormesh_runtime.history.checkpoint import Checkpointer
from actormesh_runtime.history.store import MIGRATIONS, SCHEMA_VERSION, HistoryStore
from tests.support.envelopes import JOHN
from tests.support.history_events import escalated, filed


def event(
    message_id: str, *, session: str = "s1", email: str = "john.doe@example.com", text: str = "hi"
) -> HistoryEvent:
    now = datetime.now(UTC)
    result = FinalResult(
        message_id=message_id,
        session_id=session,
        response=f"answer to {text}",
        intent=Intent.ORDER_STATUS,
        intent_confidence=0.9,
        sentiment=None,
        urgency=None,
        escalated=True,
        reference_id="ESC-0123abcd",
        actions=[ActionSummary(type=ActionType.CANCEL_ORDER, order_id="ORD-20001", status=ActionStatus.DONE,
                               detail="cancelled")],
        flags=["escalated"],
        method=MethodSummary(intent="rules", response="template"),
        trace=[],
        processing_ms=1.0,
    )  # fmt: skip
    return HistoryEvent(
        message_id=message_id,
        session_id=session,
        customer_email=email,
        customer_message=text,
        received_at=now,
        completed_at=now,
        result=result,
    )


async def test_migrations_are_versioned_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store = HistoryStore(path)
    await store.open()
    assert await store.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
    await store.close()
    reopened = HistoryStore(path)
    await reopened.open()  # no migration runs twice
    assert await reopened.schema_version() == SCHEMA_VERSION
    await reopened.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = HistoryStore(path)
    with pytest.raises(RuntimeError, match="newer"):
        await store.open()
    await store.close()


async def test_replayed_events_add_nothing_and_turns_keep_order(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.db")
    await store.open()
    try:
        assert await store.add_events([event("m1", text="first"), event("m2", text="second")]) == 4
        assert await store.add_events([event("m1", text="first")]) == 0  # a redelivery
        turns = await store.conversation("s1")
        assert [(t.message_id, t.role) for t in turns] == [
            ("m1", "customer"), ("m1", "agent"), ("m2", "customer"), ("m2", "agent"),
        ]  # fmt: skip
        agent = turns[1]
        assert agent.escalated is True
        assert agent.reference_id == "ESC-0123abcd"
        assert agent.actions[0]["status"] == "done"
        stored = await store.result("m2")
        assert stored is not None
        assert stored.result.response == "answer to second"
        assert stored.customer_email == "john.doe@example.com"
        assert await store.result("nope") is None
    finally:
        await store.close()


async def test_the_store_redacts_even_unscreened_text(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.db")
    await store.open()
    try:
        await store.add_events([event("m1", text="card 4111-1111-1111-1111 ssn 123-45-6789")])
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "h.db") as db:
        dump = "\n".join(db.iterdump())
    assert "4111-1111" not in dump  # (a stored timestamp may hold 4111)
    assert "123-45-6789" not in dump
    assert "[REDACTED-CARD]" in dump
    assert "[REDACTED-SSN]" in dump


async def test_reads_can_be_limited_to_one_customer(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.db")
    await store.open()
    try:
        await store.add_events([event("m1"), event("m2", email="Jane.Smith@example.com")])
        jane = await store.conversation("s1", customer_email="jane.smith@example.com")
        assert {t.message_id for t in jane} == {"m2"}
        assert {t.customer_email for t in jane} == {"jane.smith@example.com"}
    finally:
        await store.close()


def replayed(first: HistoryEvent, replay: int, response: str) -> HistoryEvent:
    """The event of a replayed dead letter's run: same message, its own outcome."""
    result = first.result.model_copy(update={"response": response, "flags": [], "escalated": False})
    return first.model_copy(update={"result": result, "replay": replay})


async def test_a_replays_outcome_replaces_the_stored_answer_once(tmp_path: Path) -> None:
    """`actormesh dlq replay` runs a message again after its first run stored an error answer: the
    replay's outcome is what the conversation and the result must show (it was dropped as a duplicate)."""
    store = HistoryStore(tmp_path / "h.db")
    await store.open()
    try:
        first = event("m1", text="cancel please")
        await store.add_events([first])
        fixed = replayed(first, 1, "ORD-20001 has been cancelled.")
        assert await store.add_events([fixed]) == 2  # both turns of m1 rewritten, none added
        assert await store.add_events([fixed]) == 0  # the replay's own redelivery
        assert await store.add_events([first]) == 0  # an earlier run's event arriving late
        turns = await store.conversation("s1")
        assert [(t.role, t.text) for t in turns] == [
            ("customer", "cancel please"), ("agent", "ORD-20001 has been cancelled."),
        ]  # fmt: skip
        assert [t.flags for t in turns] == [[], []]
        stored = await store.result("m1")
        assert stored is not None
        assert stored.result.response == "ORD-20001 has been cancelled."
        assert await store.add_events([replayed(first, 2, "second replay")]) == 2
        assert (await store.conversation("s1"))[1].text == "second replay"
    finally:
        await store.close()


def test_only_a_replays_event_carries_its_replay_number() -> None:
    # An older history service (during a rollout) refuses unknown fields: 0 is left out.
    assert b'"replay"' not in event("m1").model_dump_json().encode()
    assert b'"replay":1' in replayed(event("m1"), 1, "x").model_dump_json().encode()


async def test_no_read_shows_a_batch_before_its_commit_or_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's connection sees a batch's rows before the commit (and rows a rollback then removes):
    a transcript read there once showed turns the file did not hold yet, and the agent console's queue
    could list an escalation that was then rolled back. Reads have a connection of their own."""
    store = HistoryStore(tmp_path / "h.db")
    await store.open()
    try:
        inside, resume = asyncio.Event(), asyncio.Event()
        insert = store.approvals.insert

        async def paused(records: list[ApprovalRecord]) -> None:
            await insert(records)
            inside.set()  # turns, owner, escalation and approval rows inserted, not committed
            await resume.wait()

        monkeypatch.setattr(store.approvals, "insert", paused)
        batch = [
            escalated(JOHN, "I want a human", session="s-escalated"),
            filed(JOHN, "ORD-10001", session="s-approval"),
        ]
        writing = asyncio.ensure_future(store.add_events(batch))
        await inside.wait()
        assert await reads(store, batch) == ([], None, None, [], 0, [], 0)
        resume.set()
        assert await writing == 4
        assert await reads(store, batch) == (
            ["customer", "agent"], JOHN, JOHN, [batch[0].escalation.ref], 1, ["ORD-10001"], 1
        )  # fmt: skip
    finally:
        await store.close()


async def reads(store: HistoryStore, batch: list[HistoryEvent]) -> tuple[object, ...]:
    """What the customer, the agent console and the history service's lookups would read."""
    escalation = batch[0].escalation
    assert escalation is not None
    turns = await store.conversation(batch[0].session_id)
    stored = await store.result(batch[0].message_id)
    queue, _ = await store.escalations.page(None, 50, None)
    approvals, _ = await store.approvals.page(None, 50, None)
    return (
        [t.role for t in turns],
        stored.customer_email if stored else None,
        await store.session_owner(batch[0].session_id),
        [r.ref for r in queue],
        sum((await store.escalations.open_counts()).values()),
        [a.order.order_id for a in approvals],
        sum((await store.approvals.pending_counts()).values()),
    )


async def test_a_claim_that_fails_to_commit_is_not_committed_by_the_next_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = HistoryStore(tmp_path / "h.db")
    await store.open()
    try:
        commit = store.db.commit

        async def failing() -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(store.db, "commit", failing)
        with pytest.raises(sqlite3.OperationalError):
            await store.claim_session("s-claimed", "john.doe@example.com")
        monkeypatch.setattr(store.db, "commit", commit)
        assert not store.db.in_transaction
        await store.add_events([event("m1")])  # the next writer commits only its own rows
        assert await store.session_owner("s-claimed") is None
    finally:
        await store.close()


async def test_a_limited_read_keeps_the_newest_turns_in_order(tmp_path: Path) -> None:
    """A long session reopened in the widget, or an escalation read by an agent, must end with its
    latest message, not stop at the first `limit` turns."""
    store = HistoryStore(tmp_path / "h.db")
    await store.open()
    try:
        await store.add_events([event(f"m{i}", text=f"message {i}") for i in range(1, 5)])
        turns = await store.conversation("s1", limit=3)
        assert [(t.message_id, t.role) for t in turns] == [
            ("m3", "agent"), ("m4", "customer"), ("m4", "agent"),
        ]  # fmt: skip
        everything = await store.conversation("s1")
        assert [t.message_id for t in everything][::2] == ["m1", "m2", "m3", "m4"]
    finally:
        await store.close()


async def test_checkpoints_run_off_the_writer_connection(tmp_path: Path) -> None:
    """The writer never checkpoints inside a commit (two fsyncs that every claim would queue behind);
    the checkpointer's own connection folds the WAL in, and the writer then restarts it."""
    store = HistoryStore(tmp_path / "h.db")
    await store.open()
    checkpointer = Checkpointer(store, interval_s=3600)  # run by hand here
    await checkpointer.start()
    try:
        for i in range(800):  # well past SQLite's 1000-page automatic checkpoint
            await store.claim_session(f"s{i}", "jane@example.com")
        busy, frames, done = await checkpointer.run_once()
        assert frames > 1000, "the writer checkpointed on its own connection"
        assert (busy, done) == (0, frames)
        await store.claim_session("one-more", "jane@example.com")
        _, frames_after, _ = await checkpointer.run_once()
        assert frames_after < 50, "the writer did not restart the checkpointed WAL"
    finally:
        await checkpointer.stop()
        await store.close()


async def test_claiming_an_owned_session_returns_its_owner_without_a_write(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.db")
    await store.open()
    try:
        assert await store.claim_session("s1", "Jane@Example.com") == "jane@example.com"
        written: list[str] = []
        await store.db.set_trace_callback(written.append)
        assert await store.claim_session("s1", "john.doe@example.com") == "jane@example.com"
        assert await store.claim_session("s1", "jane@example.com") == "jane@example.com"
        assert written == []  # nothing on the single writer's connection: two reads on the reader's
    finally:
        await store.close()


async def test_a_read_never_misses_a_commit_made_while_another_read_was_under_way(tmp_path: Path) -> None:
    """A connection's statements share one snapshot while any of them is active: a read overlapping
    another one (the service answers many queries at once) read the database as that one began. A
    session claimed a moment before then had no owner, and the chat failed with a 503 (seen in CI)."""
    store = HistoryStore(tmp_path / "h.db")
    await store.open()
    try:
        await store.add_events([event("m1")])
        reading, finish = asyncio.Event(), asyncio.Event()

        async def long_read() -> None:
            async with store.reading() as db, db.execute("SELECT id FROM turns") as cursor:
                await cursor.fetchone()  # the statement is active: its snapshot is held
                reading.set()
                await finish.wait()

        first = asyncio.ensure_future(long_read())
        await reading.wait()
        await store.add_events([event("m2", session="s2")])  # committed on the writer meanwhile
        owner = asyncio.ensure_future(store.session_owner("s2"))
        await asyncio.sleep(0)
        finish.set()
        await first
        assert await owner == "john.doe@example.com"
    finally:
        await store.close()

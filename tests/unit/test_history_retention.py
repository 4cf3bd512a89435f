"""HISTORY_RETENTION_DAYS on a real SQLite file: an old conversation goes whole (turns, owner, escalations
and their replies, approvals), a recent one or one still in use stays, and a conversation someone may
still act on (an unsettled escalation or approval) is kept however old."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from actormesh_runtime.envelope import HistoryEvent
from actormesh_runtime.history.retention import RetentionLoop, _delete, prune
from actormesh_runtime.history.store import HistoryStore
from tests.support.envelopes import JANE, JOHN, history_event
from tests.support.history_events import (
    at,
    escalated,
    filed,
)

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)
CUTOFF = NOW - timedelta(days=30)


async def age(store: HistoryStore, session: str, when: datetime = OLD) -> None:
    """Every turn of `session` written at `when` (a person's reply or decision is stored as of now)."""
    async with store.writing():
        await store.db.execute(
            "UPDATE turns SET created_at = ? WHERE session_id = ?", (when.isoformat(), session)
        )


async def rows(store: HistoryStore, table: str, session: str) -> int:
    column = (
        "ref IN (SELECT ref FROM escalations WHERE session_id = ?)"
        if table == "escalation_replies"
        else ("session_id = ?")
    )
    async with (
        store.reading() as db,
        db.execute(f"SELECT COUNT(*) FROM {table} WHERE {column}", (session,)) as c,
    ):
        row = await c.fetchone()
    assert row is not None
    return int(row[0])


def old(message_id: str, session: str) -> HistoryEvent:
    return at(history_event(message_id, session), OLD)


async def test_an_old_conversation_goes_whole_and_a_recent_one_stays(store: HistoryStore) -> None:
    ticket = escalated(JOHN, "I want a human", session="old-escalated")
    assert ticket.escalation is not None
    await store.add_events([
        old("m1", "old"), old("m2", "old"), history_event("m3", "recent"),
        old("m4", "long"), history_event("m5", "long"), ticket,
    ])  # fmt: skip
    ref = ticket.escalation.ref
    for op in ("claim", "reply", "resolve"):
        await store.escalations.transition(ref, op, "ann", "done" if op != "claim" else None)  # type: ignore[arg-type]
    await age(store, "old-escalated")
    assert await rows(store, "escalation_replies", "old-escalated") == 1

    assert await prune(store, CUTOFF) == 2
    for session in ("old", "old-escalated"):
        assert await store.conversation(session) == []
        assert await store.session_owner(session) is None
        for table in ("escalations", "escalation_replies", "turns"):
            assert await rows(store, table, session) == 0, (table, session)
    assert await store.escalations.get(ref) is None
    assert len(await store.conversation("recent")) == 2
    assert len(await store.conversation("long")) == 4, "a conversation still in use is not cut at its start"
    assert await store.session_owner("long") == JOHN
    assert await prune(store, CUTOFF) == 0


async def test_a_conversation_someone_may_still_act_on_is_kept_until_it_is_settled(
    store: HistoryStore,
) -> None:
    opened = escalated(JOHN, "I want a human", session="open")
    claimed = escalated(JANE, "a person please", session="claimed")
    pending = filed(JOHN, "ORD-10001", session="pending")
    approved = filed(JANE, "ORD-20001", session="approved")
    denied = filed(JOHN, "ORD-10002", session="denied")
    await store.add_events([opened, claimed, pending, approved, denied])
    assert claimed.escalation is not None
    await store.escalations.transition(claimed.escalation.ref, "claim", "ann")
    await store.approvals.decide(approved.approvals[0].id, "approve", "ann", amount=None, reason=None)
    await store.approvals.decide(
        denied.approvals[0].id, "deny", "ann", amount=None, reason="refunded already"
    )
    for session in ("open", "claimed", "pending", "approved", "denied"):
        await age(store, session)

    assert await prune(store, CUTOFF) == 1  # the denial is settled
    assert await rows(store, "approvals", "denied") == 0
    for session in ("open", "claimed", "pending", "approved"):
        assert await rows(store, "turns", session) == 2, session

    assert opened.escalation is not None
    await store.escalations.transition(opened.escalation.ref, "claim", "bob")
    await store.escalations.transition(opened.escalation.ref, "resolve", "bob", "sorted")
    await store.approvals.record_execution(approved.approvals[0].id, "done", "refunded")
    await age(store, "approved")  # the execution told the customer just now
    assert await prune(store, CUTOFF) == 2
    assert {s for s in ("open", "approved") if await rows(store, "turns", s)} == set()
    for session in ("claimed", "pending"):
        assert await rows(store, "turns", session) == 2, session


async def test_batches_and_owners_whose_chat_never_stored_a_turn(store: HistoryStore) -> None:
    await store.add_events([old(f"m{i}", f"s{i}") for i in range(5)])
    await store.claim_session("never-stored", JOHN)
    await store.claim_session("just-claimed", JANE)
    async with store.writing():
        await store.db.execute(
            "UPDATE session_owners SET created_at = ? WHERE session_id = 'never-stored'", (OLD.isoformat(),)
        )
    assert await prune(store, CUTOFF, batch=2) == 5
    assert await store.count_turns() == 0
    assert await store.session_owner("never-stored") is None
    assert await store.session_owner("just-claimed") == JANE


async def test_a_conversation_that_came_back_to_life_before_its_batch_is_kept(store: HistoryStore) -> None:
    """Candidates are found outside the write; a turn stored in between must save the conversation."""
    await store.add_events([old("m1", "s")])
    await store.add_events([history_event("m2", "s")])
    assert await _delete(store, ["s"], CUTOFF.isoformat()) == 0
    assert await rows(store, "turns", "s") == 4


async def test_the_scan_reads_a_page_at_a_time_so_a_transcript_read_waits_for_one_page(
    store: HistoryStore,
) -> None:
    """Reads on the reading connection go one at a time: a scan of the whole table in one read made every
    customer's transcript read wait for it (half a second at a million turns, measured)."""
    sessions = ["", *(f"s{i}" for i in range(8))]  # "" sorts first: the first page must not skip it
    await store.add_events([old(f"m{i}", session) for i, session in enumerate(sessions)])
    await store.add_events([history_event(f"r{i}", f"recent{i}") for i in range(3)])
    statements: list[str] = []
    assert store._reader is not None
    await store._reader.set_trace_callback(statements.append)

    async with store.reading():  # the scan and a customer's read queue up behind a read in progress
        pruning = asyncio.create_task(prune(store, CUTOFF, page=2, batch=2))
        await asyncio.sleep(0.05)
        reading = asyncio.create_task(store.conversation("recent2"))
        await asyncio.sleep(0.05)
    assert await pruning == 9
    assert len(await reading) == 2

    pages = [i for i, sql in enumerate(statements) if "GROUP BY session_id" in sql]
    transcript = next(i for i, sql in enumerate(statements) if sql.startswith("SELECT * FROM (SELECT"))
    assert len(pages) == 7, "12 conversations, 2 a page, and the empty page that ends the scan"
    assert transcript == pages[0] + 1, "the customer's read waited for one page, not for the whole scan"
    assert await store.count_turns() == 6


async def test_the_loop_counts_what_it_deleted(store: HistoryStore) -> None:
    before = REGISTRY.get_sample_value("actormesh_history_pruned_conversations_total") or 0.0
    await store.add_events([old("m1", "a"), old("m2", "b"), history_event("m3", "c")])
    loop = RetentionLoop(store, days=30)
    assert await loop.run_once() == 2
    assert REGISTRY.get_sample_value("actormesh_history_pruned_conversations_total") == before + 2
    assert (REGISTRY.get_sample_value("actormesh_history_prune_last_success_timestamp_seconds") or 0) > 0
    await store.close()
    assert await loop.run_once() is None  # a failed run is logged, never raised into the service

"""Escalation records in a real SQLite file (no sockets): created once with the turns, the queue
order and its pages, transitions that persist, the queue figures behind the wait, and lookups that
answer a customer only about their own references."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from actormesh_runtime.catalog import Subjects
from actormesh_runtime.escalations import SUMMARY_MAX_CHARS, EscalationLookup, EscalationState, LookupAnswer
from actormesh_runtime.history.escalation_ops import EscalationOps
from actormesh_runtime.history.escalations import ts
from actormesh_runtime.history.protocol import HistoryQuery
from actormesh_runtime.history.store import HistoryStore
from actormesh_runtime.policy.decision import REASON_LEGAL
from actormesh_runtime.priority import Priority
from tests.support.envelopes import BOB, JANE, JOHN
from tests.support.history_events import (
    escalated,
)


async def test_a_redelivered_event_creates_no_second_record(store: HistoryStore) -> None:
    event = escalated(JOHN, "I want a human")
    assert event.escalation is not None
    assert await store.add_events([event]) == 2
    again = event.model_copy(deep=True)
    assert again.escalation is not None
    again.escalation.summary = "a later build of the same escalation"
    assert await store.add_events([again]) == 0
    page, _ = await store.escalations.page(None, 50, None)
    assert [r.ref for r in page] == [event.escalation.ref]
    assert page[0].summary == event.escalation.summary  # the first one stored wins
    assert page[0].model_dump(exclude={"created_at"}) == event.escalation.model_dump(exclude={"created_at"})


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="cut-by-the-policy"),
        # A summary of the full length that the store's NFKC normalisation lengthens ("…" is "...").
        pytest.param("x" * 490 + "…" * 10, id="lengthened-by-normalisation"),
        # Each SSN (11 characters) becomes [REDACTED-SSN] (14) when the store redacts the summary.
        pytest.param("ssn 123-45-6789 " * 31 + "x" * 4, id="lengthened-by-redaction"),
    ],
)
async def test_a_long_escalated_message_keeps_the_queue_readable(store: HistoryStore, text: str) -> None:
    """The summary is redacted (and normalised) when stored; once that made it longer than the record
    allows, every read of the queue failed and the history batch was redelivered for good."""
    event = escalated(JOHN, "I want to speak to a manager " + "please " * 70)
    assert event.escalation is not None
    if text:
        assert len(text) == SUMMARY_MAX_CHARS
        event.escalation.summary = text
    assert await store.add_events([event]) == 2
    page, _ = await store.escalations.page(None, 50, None)
    assert [r.ref for r in page] == [event.escalation.ref]
    assert len(page[0].summary) <= SUMMARY_MAX_CHARS
    assert "123-45-6789" not in page[0].summary


async def test_a_summary_stored_too_long_by_an_earlier_version_is_still_read(store: HistoryStore) -> None:
    event = escalated(JOHN, "I want a human")
    assert event.escalation is not None
    await store.add_events([event])
    await store.db.execute("UPDATE escalations SET summary = ?", ("x" * (SUMMARY_MAX_CHARS + 2),))
    await store.db.commit()
    page, _ = await store.escalations.page(None, 50, None)
    assert len(page[0].summary) == SUMMARY_MAX_CHARS


async def test_queue_order_and_pages(store: HistoryStore) -> None:
    events = [
        escalated(BOB, "talk to a human", session="a"),
        escalated(JOHN, "talk to a person", session="b"),
        escalated(JANE, "my lawyer will call", REASON_LEGAL, session="c"),
    ]
    for event in events:
        await store.add_events([event])
    refs = [e.escalation.ref for e in events if e.escalation is not None]
    first, cursor = await store.escalations.page(None, 2, None)
    assert [r.ref for r in first] == [refs[2], refs[0]]  # urgent first, then the oldest normal one
    assert cursor is not None
    rest, end = await store.escalations.page(None, 2, cursor)
    assert [r.ref for r in rest] == [refs[1]]
    assert end is None
    await store.escalations.transition(refs[0], "claim", "ann")
    only_open, _ = await store.escalations.page(EscalationState.OPEN, 50, None)
    assert [r.ref for r in only_open] == [refs[2], refs[1]]


async def test_transitions_persist_and_a_reply_is_a_turn(store: HistoryStore, tmp_path: Path) -> None:
    event = escalated(JOHN, "I want a human", session="conv")
    await store.add_events([event])
    assert event.escalation is not None
    ref = event.escalation.ref
    await store.escalations.transition(ref, "claim", "ann")
    await store.escalations.transition(ref, "reply", "ann", "Card 4111 1111 1111 1111? We never need it.")
    await store.escalations.transition(ref, "resolve", "ann", "answered")
    await store.close()
    reopened = HistoryStore(tmp_path / "h.db")
    await reopened.open()
    try:
        record = await reopened.escalations.get(ref)
        turns = await reopened.conversation("conv")
    finally:
        await reopened.close()
    assert record is not None
    assert (record.state, record.claimed_by, record.resolution_note) == (
        EscalationState.RESOLVED,
        "ann",
        "answered",
    )
    assert [r.text for r in record.replies] == ["Card [REDACTED-CARD]? We never need it."]
    assert [(t.role, t.author) for t in turns] == [("customer", None), ("agent", None), ("agent", "ann")]
    assert turns[-1].reference_id == ref
    assert turns[-1].text == record.replies[0].text


async def test_queue_figures(store: HistoryStore) -> None:
    now = datetime.now(UTC)
    for i, email in enumerate((BOB, JOHN, JANE)):
        await store.add_events([escalated(email, "talk to a human", session=f"q{i}")])
    page, _ = await store.escalations.page(None, 10, None)
    done, busy = page[0].ref, page[1].ref
    assert (await store.escalations.queue(Priority.NORMAL)).agents_active == 0
    await store.escalations.transition(done, "claim", "ann")
    await store.escalations.transition(done, "reply", "ann", "hello")
    await store.escalations.transition(busy, "claim", "bob")
    await store.escalations.transition(busy, "reply", "bob", "hi")
    # Ann's case took 12 minutes from claim to resolution (times set directly: no waiting in a test).
    await store.db.execute(
        "UPDATE escalations SET state = 'resolved', claimed_at = ?, resolved_at = ? WHERE ref = ?",
        (ts(now - timedelta(minutes=20)), ts(now - timedelta(minutes=8)), done),
    )
    # Bob replied two hours ago: not an active agent any more.
    await store.db.execute(
        "UPDATE escalation_replies SET at = ? WHERE agent = 'bob'", (ts(now - timedelta(hours=2)),)
    )
    await store.db.commit()
    queue = await store.escalations.queue(Priority.NORMAL)
    assert (queue.ahead, queue.agents_active) == (1, 1)  # busy is claimed, not open; one still open
    assert queue.handling_minutes == pytest.approx(12.0, abs=0.01)
    assert (await store.escalations.queue(Priority.URGENT)).ahead == 0
    counts = await store.escalations.open_counts()
    assert counts == {Priority.URGENT: 0, Priority.HIGH: 0, Priority.NORMAL: 2, Priority.LOW: 0}


async def test_a_customer_learns_only_about_their_own_references(store: HistoryStore) -> None:
    johns = escalated(JOHN, "I want a human", session="j")
    await store.add_events([johns])
    assert johns.escalation is not None
    ref = johns.escalation.ref
    await store.escalations.transition(ref, "claim", "ann")
    await store.escalations.transition(ref, "reply", "ann", "Looking into it now.")
    ops = EscalationOps(store, Subjects("unit"))

    async def ask(email: str, *refs: str) -> LookupAnswer:
        question = EscalationLookup(op="status", refs=list(refs), customer_email=email)
        return await ops.lookup(question.model_dump_json().encode())

    [own] = (await ask(JOHN.upper(), ref)).followups
    assert (own.found, own.state, own.claimed, own.last_reply) == (
        True,
        EscalationState.CLAIMED,
        True,
        "Looking into it now.",
    )
    [foreign] = (await ask(BOB, ref)).followups
    [missing] = (await ask(BOB, "ESC-00000000")).followups
    # Someone else's reference is indistinguishable from one that does not exist.
    assert foreign.model_dump() == missing.model_dump(exclude={"ref"}) | {"ref": ref}
    assert not foreign.found
    assert foreign.state is None
    assert foreign.last_reply is None
    assert not (await ask("", ref)).ok


async def test_agent_ops_answer_404_409_422(store: HistoryStore) -> None:
    event = escalated(JOHN, "I want a human")
    await store.add_events([event])
    assert event.escalation is not None
    ref = event.escalation.ref
    ops = EscalationOps(store, Subjects("unit"))  # not connected: changes are stored, events are skipped
    missing = await ops.answer(HistoryQuery(op="escalation_claim", ref="ESC-00000000", agent="ann"))
    assert missing.refused == "not_found"
    early = await ops.answer(HistoryQuery(op="escalation_reply", ref=ref, agent="ann", text="hi"))
    assert early.refused == "conflict"
    no_agent = await ops.answer(HistoryQuery(op="escalation_claim", ref=ref, agent=" "))
    assert (no_agent.refused, (no_agent.error or "").split(":")[0]) == ("invalid", "agent")
    claimed = await ops.answer(HistoryQuery(op="escalation_claim", ref=ref, agent="ann"))
    assert claimed.escalation is not None
    assert claimed.escalation.state is EscalationState.CLAIMED
    bad_cursor = await ops.answer(HistoryQuery(op="escalations", cursor="nonsense"))
    assert (bad_cursor.refused, (bad_cursor.error or "").split(":")[0]) == ("invalid", "cursor")


async def test_a_follow_up_on_an_open_one_says_where_it_stands(store: HistoryStore) -> None:
    older = escalated(BOB, "talk to a human", session="o1")
    mine = escalated(JOHN, "talk to a person", session="o2")
    for event in (older, mine):
        await store.add_events([event])
    assert mine.escalation is not None
    ops = EscalationOps(store, Subjects("unit"))
    question = EscalationLookup(op="status", refs=[mine.escalation.ref], customer_email=JOHN)
    [followup] = (await ops.lookup(question.model_dump_json().encode())).followups
    assert followup.state is EscalationState.OPEN
    assert followup.queue is not None
    assert (followup.queue.ahead, followup.queue.agents_active) == (1, 0)  # Bob's older one is ahead


async def test_a_chain_run_again_is_told_the_queue_in_front_of_its_stored_escalation(
    store: HistoryStore,
) -> None:
    # The first run asked before its escalation was stored: one (Bob's) ahead. Run again (a lost ack
    # reruns a direct-hop chain), it asks after: still one ahead, not two counting itself, so the
    # rerun's reply quotes the same wait. A new escalation (its ref not stored) counts both.
    older = escalated(BOB, "talk to a human", session="r1")
    mine = escalated(JOHN, "talk to a person", session="r2")
    await store.add_events([older])
    assert mine.escalation is not None
    ops = EscalationOps(store, Subjects("unit"))

    async def queue_for(ref: str) -> int:
        question = EscalationLookup(op="queue", priority=Priority.NORMAL, refs=[ref])
        answer = await ops.lookup(question.model_dump_json().encode())
        assert answer.queue is not None
        return answer.queue.ahead

    first_run = await queue_for(mine.escalation.ref)
    await store.add_events([mine])
    rerun = await queue_for(mine.escalation.ref)
    someone_new = await queue_for("ESC-00000000")

    assert (first_run, rerun, someone_new) == (1, 1, 2)


async def test_records_read_together_keep_their_own_replies(store: HistoryStore) -> None:
    """Pages and a customer's lookups load many records at once: each keeps its replies, in order."""
    events = [
        escalated(JOHN, "talk to a human", session="r1"),
        escalated(JOHN, "a person please", session="r2"),
    ]
    for event in events:
        await store.add_events([event])
    one, two = (e.escalation.ref for e in events if e.escalation is not None)
    for ref in (one, two):
        await store.escalations.transition(ref, "claim", "ann")
    for ref, text in ((one, "first"), (two, "other"), (one, "second")):
        await store.escalations.transition(ref, "reply", "ann", text)
    page, _ = await store.escalations.page(None, 10, None)
    assert {r.ref: [x.text for x in r.replies] for r in page} == {one: ["first", "second"], two: ["other"]}
    owned = await store.escalations.for_customer([two, one, "ESC-00000000"], JOHN)
    assert {ref: [x.text for x in r.replies] for ref, r in owned.items()} == {
        one: ["first", "second"],
        two: ["other"],
    }
    assert await store.escalations.for_customer([one], JANE) == {}


async def test_a_reply_sent_twice_with_one_key_is_stored_once(store: HistoryStore) -> None:
    event = escalated(JOHN, "I want a human", session="twice")
    await store.add_events([event])
    assert event.escalation is not None
    ref = event.escalation.ref
    ops = EscalationOps(store, Subjects("unit"))
    await ops.answer(HistoryQuery(op="escalation_claim", ref=ref, agent="ann"))
    send = HistoryQuery(op="escalation_reply", ref=ref, agent="ann", text="On it.", reply_id="key-00000001")
    first, second = await ops.answer(send), await ops.answer(send)
    other = await ops.answer(send.model_copy(update={"reply_id": "key-00000002"}))
    bad = await ops.answer(send.model_copy(update={"reply_id": "no"}))
    assert first.escalation is not None
    assert second.escalation is not None
    assert second.escalation.replies == first.escalation.replies
    assert other.escalation is not None
    assert [r.reply_id for r in other.escalation.replies] == ["key-00000001", "key-00000002"]
    assert (bad.refused, (bad.error or "").split(":")[0]) == ("invalid", "reply_id")
    turns = await store.conversation("twice")
    assert [t.text for t in turns if t.author == "ann"] == ["On it.", "On it."]


async def test_a_failed_announce_mark_leaves_no_transaction_open(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = escalated(JOHN, "I want a human")
    assert event.escalation is not None
    await store.add_events([event])
    commit = store.db.commit

    async def failing() -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store.db, "commit", failing)
    with pytest.raises(sqlite3.OperationalError):
        await store.escalations.mark_announced([event.escalation.ref])
    monkeypatch.setattr(store.db, "commit", commit)
    assert not store.db.in_transaction  # else the next writer would commit the half-done mark

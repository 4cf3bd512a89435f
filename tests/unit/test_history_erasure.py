"""Erasing one customer on request (`history/erasure.py`) on a real SQLite file: every table of the
store (read from the file itself, so a table added later is covered) loses that customer's rows and
nothing else; the counts say what went; a dry run changes nothing; a repeat erases nothing more."""

from __future__ import annotations

import asyncio
import json

import aiosqlite
import pytest

from actormesh_runtime.history import erasure
from actormesh_runtime.history.erasure import erase_customer
from actormesh_runtime.history.protocol import ErasedCounts
from actormesh_runtime.history.store import HistoryStore
from tests.support.envelopes import JANE, JOHN, history_event
from tests.support.history_events import escalated, filed

Rows = dict[str, set[str]]


async def every_row(store: HistoryStore) -> Rows:
    """Each table's rows, each as JSON text: every table of the file, not a list of known ones."""
    found: Rows = {}
    async with store.reading() as db:
        async with db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ) as cursor:
            tables = [str(row[0]) for row in await cursor.fetchall()]
        for table in tables:
            async with db.execute(f"SELECT * FROM {table}") as cursor:
                found[table] = {json.dumps(dict(row), sort_keys=True) for row in await cursor.fetchall()}
    return found


async def replies_of(store: HistoryStore, email: str) -> set[str]:
    """The agents' replies (rows without an email of their own) on `email`'s escalations."""
    async with (
        store.reading() as db,
        db.execute(
            "SELECT r.* FROM escalation_replies r JOIN escalations e ON e.ref = r.ref"
            " WHERE e.customer_email = ?",
            (email,),
        ) as cursor,
    ):
        return {json.dumps(dict(row), sort_keys=True) for row in await cursor.fetchall()}


def mentioning(rows: Rows, email: str) -> Rows:
    return {table: {r for r in found if email in r.lower()} for table, found in rows.items()}


async def two_customers(store: HistoryStore) -> None:
    """John and Jane each with plain turns, an escalation claimed and answered by a person, an
    approval pending and one denied (the denial writes a turn), and a session claimed that never
    stored a turn. John also has an open escalation, an approval approved and not yet executed, and
    an approval whose email came in mixed case. Jane wrote once in a session John owns (auth off)."""
    jane_turn = history_event("m-jane", "s-john-plain").model_copy(update={"customer_email": JANE})
    john_mixed = filed(JOHN, "ORD-10003", session="s-john-mixed")
    mixed = john_mixed.approvals[0].model_copy(
        update={"id": "APR-0000abcd", "customer_email": "  John.Doe@Example.COM "}
    )
    john_mixed = john_mixed.model_copy(update={"approvals": [mixed]})
    events = [
        history_event("m-john-1", "s-john-plain"),
        history_event("m-john-2", "s-john-plain"),
        jane_turn,
        escalated(JOHN, "a person please", session="s-john-claimed"),
        escalated(JOHN, "I want a human", session="s-john-open"),
        escalated(JANE, "a person please", session="s-jane-claimed"),
        filed(JOHN, "ORD-10001", session="s-john-pending"),
        filed(JOHN, "ORD-10002", session="s-john-denied"),
        filed(JOHN, "ORD-10003", session="s-john-approved").model_copy(
            update={"message_id": "m-john-approved"}
        ),
        john_mixed,
        filed(JANE, "ORD-20001", session="s-jane-pending"),
        filed(JANE, "ORD-20002", session="s-jane-denied"),
    ]
    await store.add_events(events)
    for event in events:
        if event.escalation is not None and event.session_id.endswith("claimed"):
            ref = event.escalation.ref
            await store.escalations.transition(ref, "claim", "ann")
            await store.escalations.transition(ref, "reply", "ann", "We are on it.")
    approvals = {e.session_id: e.approvals[0].id for e in events if e.approvals}
    for session in ("s-john-denied", "s-jane-denied", "s-john-mixed"):
        await store.approvals.decide(approvals[session], "deny", "ann", amount=None, reason="no")
    await store.approvals.decide(approvals["s-john-approved"], "approve", "ann", amount=None, reason=None)
    await store.claim_session("s-john-unused", JOHN)
    await store.claim_session("s-jane-unused", JANE)


async def test_erasing_a_customer_empties_every_table_of_them_and_leaves_the_other_whole(
    store: HistoryStore,
) -> None:
    await two_customers(store)
    before = await every_row(store)
    janes = mentioning(before, JANE)
    jane_replies = await replies_of(store, JANE)
    john_replies = await replies_of(store, JOHN)
    assert john_replies
    assert jane_replies
    assert janes["approvals"]
    assert janes["turns"]

    erased = await erase_customer(store, " John.Doe@Example.com ")

    after = await every_row(store)
    assert mentioning(after, JOHN) == {table: set() for table in after}, "something of John's is left"
    assert after["escalation_replies"] == jane_replies, "John's replies gone, Jane's all kept"
    for table, rows in janes.items():
        assert rows <= after[table], f"Jane lost rows of {table}"
    gone = {table: before[table] - after[table] for table in before}
    assert all(after[table] <= before[table] for table in before)
    assert erased == ErasedCounts(
        conversations=8,  # plain, claimed, open, pending, denied, approved, mixed, and the unused one
        turns=len(gone["turns"]),
        session_owners=len(gone["session_owners"]),
        escalations=2,
        escalations_unsettled=2,  # one claimed, one open
        escalation_replies=1,
        approvals=4,
        approvals_unsettled=2,  # the pending one, the approved one not executed yet
    )
    # 8 events of John's (2 turns each), a person's reply, two denials told to him.
    assert erased.turns == 8 * 2 + 1 + 2
    assert erased.session_owners == 8  # his seven conversations and the session that stored no turn
    assert "jane" not in json.dumps(sorted(gone["turns"]))
    assert await store.conversation("s-john-plain") == [
        t for t in await store.conversation("s-john-plain") if t.customer_email == JANE
    ]
    assert len(await store.conversation("s-john-plain")) == 2, "Jane's turns in John's session stay"


async def test_a_repeat_erases_nothing_more_and_succeeds(store: HistoryStore) -> None:
    await two_customers(store)
    first = await erase_customer(store, JOHN)
    assert first.total > 0
    after_first = await every_row(store)

    assert await erase_customer(store, JOHN) == ErasedCounts()
    assert await erase_customer(store, JOHN, dry_run=True) == ErasedCounts()
    assert await every_row(store) == after_first


async def test_a_dry_run_counts_what_the_erasure_then_erases_and_changes_nothing(
    store: HistoryStore,
) -> None:
    await two_customers(store)
    before = await every_row(store)

    would = await erase_customer(store, JOHN, dry_run=True)

    assert await every_row(store) == before
    assert would.total > 0
    assert await erase_customer(store, JOHN) == would


@pytest.mark.parametrize("batch", [1, 2, 3])
async def test_small_batches_erase_the_same_as_one(store: HistoryStore, batch: int) -> None:
    """Pages and batches of any size: each table's keyset paging crosses batch boundaries."""
    await two_customers(store)
    before = await every_row(store)
    would = await erase_customer(store, JOHN, dry_run=True, batch=batch)
    assert await every_row(store) == before

    erased = await erase_customer(store, JOHN, batch=batch)

    assert erased == would
    assert mentioning(await every_row(store), JOHN) == {table: set() for table in before}
    assert erased.turns == 19


async def test_an_unknown_customer_erases_nothing(store: HistoryStore) -> None:
    await two_customers(store)
    before = await every_row(store)
    assert await erase_customer(store, "nobody@example.com") == ErasedCounts()
    assert await every_row(store) == before


async def test_an_address_that_is_no_email_is_refused(store: HistoryStore) -> None:
    with pytest.raises(ValueError, match="customer_email"):
        await erase_customer(store, "   ")


async def test_every_table_of_the_schema_is_one_the_erasure_knows(store: HistoryStore) -> None:
    """A new table keyed to a customer must be added to the erasure: this fails until it is looked at."""
    async with (
        aiosqlite.connect(store.path) as db,
        db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'") as c,
    ):
        tables = {str(row[0]) for row in await c.fetchall()}
    assert tables == {"turns", "session_owners", "escalations", "escalation_replies", "approvals"}


def file_bytes(store: HistoryStore) -> bytes:
    """The database file and its WAL as they lie on disk."""
    parts = [store.path, store.path.with_name(store.path.name + "-wal")]
    return b"".join(p.read_bytes() for p in parts if p.exists())


async def test_the_erased_rows_are_not_left_in_the_files_bytes(store: HistoryStore) -> None:
    """Deleted rows stay in SQLite's free pages and in the WAL unless overwritten: the erasure zeroes
    them (`secure_delete`) and folds the WAL in, so the address is gone from the file itself."""
    await two_customers(store)
    assert JOHN.encode() in file_bytes(store)

    await erase_customer(store, JOHN)

    on_disk = file_bytes(store)
    assert JOHN.encode() not in on_disk
    assert b"We are on it." in on_disk  # Jane's reply, in the same pages
    assert JANE.encode() in on_disk


async def test_an_erasure_during_a_snapshot_holds_no_write_and_empties_the_wal_after_it(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A snapshot (`VACUUM INTO`, seconds on a big store) is a reader holding the state it began with:
    the erasure's last step, emptying the WAL, cannot complete until it ends. A chat's claim made
    meanwhile does not wait for it (it waited the busy timeout, 5 s, behind the write lock, and the
    WAL was left as it was); once the snapshot is done, the WAL is emptied with the erased rows."""
    await two_customers(store)
    snapshot = await aiosqlite.connect(store.path)  # a reader like the snapshot's
    await snapshot.execute("BEGIN")
    async with snapshot.execute("SELECT COUNT(*) FROM turns") as cursor:
        await cursor.fetchone()
    folding = asyncio.Event()
    fold = erasure._fold_wal

    async def watched(opened: HistoryStore) -> None:
        folding.set()
        await fold(opened)

    monkeypatch.setattr(erasure, "_fold_wal", watched)
    erasing = asyncio.create_task(erase_customer(store, JOHN))
    await folding.wait()
    # The reader still holds its state: a claim goes through all the same (on the unchanged code it
    # came after the erasure had given up emptying the WAL).
    assert await store.claim_session("a-new-chat", JANE) == JANE
    assert not erasing.done()
    await snapshot.rollback()
    await snapshot.close()
    counts = await erasing

    assert counts.turns > 0
    wal = store.path.with_name(store.path.name + "-wal")
    assert wal.stat().st_size == 0
    assert JOHN.encode() not in file_bytes(store)
    assert "did not complete" not in caplog.text

"""Approval requests keep the customer's email trimmed and in lower case, as the rest of the history store
does, on a real SQLite file: a request is stored so whatever spelling its producer sent, and migration 13
normalises the requests (and the turns their decisions wrote) a store of schema 12 kept as sent. Erasure
and the refund running total then find them by plain equality on the column's index."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from actormesh_runtime.approvals import ApprovalRecord, InvalidDecision, decide
from actormesh_runtime.history.erasure import erase_customer
from actormesh_runtime.history.store import SCHEMA_VERSION, HistoryStore
from tests.support.envelopes import JANE, JOHN
from tests.support.history_events import filed
from tests.support.history_stores import make_old_store, schema_version

JOHN_AS_SENT = "  John.Doe@Example.COM \t"
AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def request(email: str, approval_id: str, session: str) -> ApprovalRecord:
    [record] = filed(JOHN, "ORD-10001", session=session).approvals
    return record.model_copy(update={"id": approval_id, "customer_email": email})


def insert_old(db: sqlite3.Connection, record: ApprovalRecord, *, executed: bool = False) -> None:
    """As a release of schema 12 stored it: the email as the producer sent it, column and record."""
    db.execute(
        "INSERT INTO approvals (id, session_id, customer_email, state, priority_rank, deadline_at,"
        " created_at, record, executed) VALUES (?, ?, ?, ?, 2, '2999-01-01T00:00:00+00:00', ?, ?, ?)",
        (
            record.id,
            record.session_id,
            record.customer_email,
            record.state.value,
            AT.isoformat(),
            record.model_dump_json(),
            int(executed),
        ),
    )


def old_store_with_mixed_emails(path: Path) -> None:
    make_old_store(path, 12)
    paid = decide(request(JOHN_AS_SENT, "APR-000000a1", "s-paid"), "approve", "ann", amount=100.0, now=AT)
    waiting = request("JOHN.DOE@example.com ", "APR-000000a2", "s-waiting")
    janes = request(f" {JANE.upper()}", "APR-000000b1", "s-jane")
    with sqlite3.connect(path) as db:
        insert_old(db, paid, executed=True)
        insert_old(db, waiting)
        insert_old(db, janes)
        # The turn the paid one's decision wrote, with the email of the record as it was.
        db.execute(
            "INSERT INTO turns (session_id, message_id, role, customer_email, text, created_at, author)"
            " VALUES ('s-paid', 'APR-000000a1:approved:3', 'agent', ?, 'refunded', ?, 'ann')",
            (JOHN_AS_SENT, AT.isoformat()),
        )


def emails(path: Path) -> dict[str, tuple[str, str | None]]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT id, customer_email, json_extract(record, '$.customer_email') FROM approvals"
        ).fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


async def test_migration_13_normalises_old_requests_and_erasure_and_refund_totals_find_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "h.db"
    old_store_with_mixed_emails(path)
    store = HistoryStore(path)
    await store.open()
    try:
        assert await store.schema_version() == SCHEMA_VERSION >= 13  # migrated to the latest, past 13
        assert emails(path) == {
            "APR-0ld00001": ("customer1@example.com", None),  # a record of its own shape, left as it was
            "APR-000000a1": (JOHN, JOHN),
            "APR-000000a2": (JOHN, JOHN),
            "APR-000000b1": (JANE, JANE),
        }
        with sqlite3.connect(path) as db:
            [(turn_email,)] = db.execute(
                "SELECT customer_email FROM turns WHERE message_id = 'APR-000000a1:approved:3'"
            ).fetchall()
            plan = db.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM approvals WHERE customer_email = ?", (JOHN,)
            ).fetchall()
        assert turn_email == JOHN
        assert "USING COVERING INDEX approvals_by_customer (customer_email=?)" in str(plan)

        # The old approved refund of 100.00 counts: what is left of the order's 119.98 is 19.98.
        with pytest.raises(InvalidDecision, match=r"19\.98"):
            await store.approvals.decide("APR-000000a2", "approve", "bob", amount=50.0, reason=None)
        assert (await store.approvals.get("APR-000000a2")) is not None

        would = await erase_customer(store, JOHN, dry_run=True)
        erased = await erase_customer(store, " John.Doe@EXAMPLE.com")
    finally:
        await store.close()

    assert erased == would
    assert (erased.approvals, erased.approvals_unsettled, erased.turns) == (2, 1, 1)
    assert set(emails(path)) == {"APR-0ld00001", "APR-000000b1"}
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM turns WHERE author IS NOT NULL").fetchone() == (0,)


async def test_a_request_is_stored_with_its_email_normalised(tmp_path: Path) -> None:
    event = filed(JOHN, "ORD-10001", session="s-mixed")
    [sent] = event.approvals
    event = event.model_copy(update={"approvals": [sent.model_copy(update={"customer_email": JOHN_AS_SENT})]})
    store = HistoryStore(tmp_path / "h.db")
    await store.open()
    try:
        await store.add_events([event])
        decided = await store.approvals.decide(sent.id, "deny", "ann", amount=None, reason="no")
        with sqlite3.connect(store.path) as db:
            told = db.execute("SELECT customer_email FROM turns WHERE author = 'ann'").fetchall()
    finally:
        await store.close()

    assert emails(store.path) == {sent.id: (JOHN, JOHN)}
    assert decided.customer_email == JOHN
    assert told == [(JOHN,)]
    assert schema_version(store.path) == SCHEMA_VERSION
    assert json.loads(decided.model_dump_json())["customer_email"] == JOHN


@pytest.mark.parametrize("batch", [1, 500])
async def test_decision_turns_of_another_spelling_go_with_their_approvals(tmp_path: Path, batch: int) -> None:
    """One query per batch of approvals finds the turns their decisions wrote under another spelling of
    the email (none is written so now: the safety net for one that is there all the same)."""
    events = [filed(JOHN, f"ORD-1000{n}", session=f"s-{n}") for n in (1, 2, 3)]
    store = HistoryStore(tmp_path / "h.db")
    await store.open()
    try:
        await store.add_events(events)
        async with store.writing():
            await store.db.executemany(
                "INSERT INTO turns (session_id, message_id, role, customer_email, text, created_at, author)"
                " VALUES (?, ?, 'agent', ?, 'decided', ?, 'ann')",
                [
                    (e.session_id, f"{e.approvals[0].id}:denied:2", JOHN.upper(), AT.isoformat())
                    for e in events
                ],
            )
        would = await erase_customer(store, JOHN, dry_run=True, batch=batch)
        statements: list[str] = []  # the erasure's, on the writer's connection
        await store.db.set_trace_callback(statements.append)
        erased = await erase_customer(store, JOHN, batch=batch)
        await store.db.set_trace_callback(None)
        with sqlite3.connect(store.path) as db:
            left = db.execute("SELECT COUNT(*) FROM turns").fetchone()
    finally:
        await store.close()

    assert erased == would
    assert (erased.approvals, erased.turns) == (3, 3 * 2 + 3)
    assert left == (0,)
    batches = -(-3 // batch)  # of the 3 approvals
    assert sum("json_each" in sql for sql in statements) == batches

"""Erasing one customer's records on their request (`actormesh erase`, docs/security.md).

Everything the store keeps that is keyed to the customer's email goes: their turns (the mesh's
answers and the people's replies and decisions written into their conversations too), the owner
records of their sessions, their escalations with the agents' replies, and their approval requests.
Unlike retention (`history/retention.py`), nothing is kept for being in use: an escalation a person
has claimed, or an approval waiting for a decision, is erased too — the customer asked, and keeping
their words for a workflow is what the request forbids. A pending approval is then never executed;
an agent acting on an erased escalation or approval is answered 404; consoles drop them at their
next load. No event is published, as retention publishes none: an event would carry the record,
customer data, into the events stream again.

The email is normalised as the store writes it (trimmed, lower case: every table keeps it so, the
approvals too since migration 13), and every table is matched on it by plain equality. The turns an
approval's decision wrote are also looked up by the approval's id, all of a batch's approvals in one
query, in case one kept another spelling of the email.

Like retention, the work goes in batches of `ERASE_BATCH` rows, each one short write transaction (the
selection read inside it, on the writer's connection), so a chat's claim or a history batch waits for
at most one batch. Deleted rows are overwritten in the file (`secure_delete` for the erasure's
batches), and the WAL, which still holds their pages as they were, is folded into the database and
emptied at the end (`wal_checkpoint(TRUNCATE)`, retried without holding the writes while a snapshot
reads). A crash halfway leaves part erased; asking again
erases the rest, and a repeat after a complete erasure finds nothing and succeeds. A dry run reads
the same pages on the reading connection, one short read each, and changes nothing.

Erases what is stored when it runs: a message the customer sent moments before (its history event
still queued in JetStream) is stored afterwards, and so is a new chat. Snapshots (docs/backups.md)
keep the erased records until they rotate out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiosqlite

from actormesh_runtime.approvals import normal_email
from actormesh_runtime.history.protocol import ErasedCounts
from actormesh_runtime.history.store import BUSY_TIMEOUT_MS, HistoryStore

log = logging.getLogger(__name__)

ERASE_BATCH = 500
"""Rows selected (and deleted) per transaction."""
FOLD_RETRY_S = 0.5
"""Between two attempts to empty the WAL at the end (a reader, e.g. a snapshot, holds an older state)."""
FOLD_PATIENCE_S = 60.0
"""How long the attempts go on: a snapshot of a million turns takes about 10 s; `actormesh erase` waits
`ERASE_TIMEOUT_S` (120 s) for the answer."""

# Each a page after a key (`{after}`: `>=` the first page, then `>` the last key seen).
_ESCALATIONS = (
    "SELECT ref, state FROM escalations WHERE customer_email = ? AND ref {after} ? ORDER BY ref LIMIT ?"
)
_APPROVALS = (
    "SELECT id, state, executed FROM approvals WHERE customer_email = ? AND id {after} ? ORDER BY id LIMIT ?"
)
# The turns the decisions and results of a batch of approvals wrote (message id
# `<approval id>:<state>:<n>`): for each id of the JSON array, the range `<id>:` to `<id>;` (every
# `<id>:…` sorts between the two) in the `(message_id, role)` index, the array driving the loop (CROSS
# JOIN keeps that order). Only those the customer's email misses; the others are erased with every turn
# of theirs below.
_DECISION_TURNS = (
    "SELECT t.id, t.session_id FROM json_each(?) AS a CROSS JOIN turns AS t"
    " ON t.message_id > a.value || ':' AND t.message_id < a.value || ';' WHERE t.customer_email != ?"
)
_TURNS = "SELECT id, session_id FROM turns WHERE customer_email = ? AND id {after} ? ORDER BY id LIMIT ?"
_OWNERS = (
    "SELECT session_id, session_id FROM session_owners WHERE customer_email = ? AND session_id {after} ?"
    " ORDER BY session_id LIMIT ?"
)


def normalised(email: str) -> str:
    """The customer's email as the store writes it; ValueError when there is none to erase by."""
    who = normal_email(email)
    if "@" not in who:
        raise ValueError("customer_email: not an email address")
    return who


class _Handler(Protocol):
    def __call__(
        self, db: aiosqlite.Connection, rows: list[aiosqlite.Row], who: str, tally: _Tally, *, erase: bool
    ) -> Awaitable[None]: ...


@dataclass
class _Tally:
    counts: ErasedCounts = field(default_factory=ErasedCounts)
    sessions: set[str] = field(default_factory=set)

    def result(self) -> ErasedCounts:
        return self.counts.model_copy(update={"conversations": len(self.sessions)})


async def erase_customer(
    store: HistoryStore, email: str, *, dry_run: bool = False, batch: int = ERASE_BATCH
) -> ErasedCounts:
    """Erase every record of the customer `email` (or, `dry_run`, count them); what was (would be)
    erased. Idempotent: a repeat erases nothing and returns zeros."""
    who = normalised(email)
    tally = _Tally()
    # The first key: nothing sorts below the empty string (text keys) or 0 (turn ids count from 1).
    steps: list[tuple[str, object, _Handler]] = [
        (_ESCALATIONS, "", _escalations),
        (_APPROVALS, "", _approvals),
        (_TURNS, 0, _turns),
        (_OWNERS, "", _owners),
    ]
    for sql, after, handle in steps:
        page = sql.format(after=">=")
        while True:
            if dry_run:
                async with store.reading() as db:
                    rows = await _select(db, page, (who, after, batch))
                    await handle(db, rows, who, tally, erase=False)
            else:
                async with store.writing():
                    rows = await _select(store.db, page, (who, after, batch))
                    async with _secure_delete(store.db):
                        await handle(store.db, rows, who, tally, erase=True)
            if len(rows) < batch:
                break
            after, page = rows[-1][0], sql.format(after=">")
            await asyncio.sleep(0)  # the reads and writes queued behind this batch go first
    counts = tally.result()
    if not dry_run and counts.total:
        await _fold_wal(store)
        log.info(
            "history: erased a customer's records",
            extra={"customer": who, **counts.model_dump()},  # the log formatter pseudonymises the email
        )
    return counts


@contextlib.asynccontextmanager
async def _secure_delete(db: aiosqlite.Connection) -> AsyncIterator[None]:
    """SQLite's `secure_delete` for this batch's deletes only (the writer's other transactions keep the
    connection's setting): the erased rows' bytes are overwritten with zeros, not left in free pages."""
    async with db.execute("PRAGMA secure_delete") as cursor:
        row = await cursor.fetchone()
    before = int(row[0]) if row else 0
    await db.execute("PRAGMA secure_delete = 1")
    try:
        yield
    finally:
        await db.execute(f"PRAGMA secure_delete = {before}")


async def _fold_wal(store: HistoryStore) -> None:
    """Copy the WAL into the database and empty it (`TRUNCATE`): the WAL still holds the erased rows'
    pages as they were before the deletes. Each attempt is made under the write lock without waiting
    for anyone (busy timeout 0): a TRUNCATE checkpoint cannot complete while a reader holds an older
    state — a snapshot's `VACUUM INTO` does, for seconds on a big store — and waiting for it there
    held every chat's claim and every history batch behind it (5 s, the busy timeout, measured with
    a snapshot of a million turns under way). Between attempts the writes go on; after
    `FOLD_PATIENCE_S` a checkpoint that could not complete is logged, and the service's regular
    checkpoints and the WAL's reuse overwrite the rest later."""
    if str(store.path) == ":memory:":
        return
    deadline = asyncio.get_running_loop().time() + FOLD_PATIENCE_S
    while True:
        async with store.write_lock:
            await store.db.execute("PRAGMA busy_timeout = 0")
            try:
                async with store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cursor:
                    row = await cursor.fetchone()
            finally:
                await store.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if row is None or int(row[0]) == 0:
            return
        if asyncio.get_running_loop().time() >= deadline:
            log.warning("history: erasure's WAL checkpoint did not complete; the WAL is folded in later")
            return
        await asyncio.sleep(FOLD_RETRY_S)


async def _select(db: aiosqlite.Connection, sql: str, params: Sequence[object]) -> list[aiosqlite.Row]:
    async with db.execute(sql, params) as cursor:
        return list(await cursor.fetchall())


async def _escalations(
    db: aiosqlite.Connection, rows: list[aiosqlite.Row], who: str, tally: _Tally, *, erase: bool
) -> None:
    if not rows:
        return
    refs = [str(row[0]) for row in rows]
    marks = ",".join("?" * len(refs))
    c = tally.counts
    c.escalations += len(refs)
    c.escalations_unsettled += sum(1 for row in rows if row[1] in ("open", "claimed"))
    replies = f"FROM escalation_replies WHERE ref IN ({marks})"
    if erase:
        c.escalation_replies += (await db.execute(f"DELETE {replies}", refs)).rowcount
        await db.execute(f"DELETE FROM escalations WHERE ref IN ({marks})", refs)
    else:
        c.escalation_replies += await _count(db, f"SELECT COUNT(*) {replies}", refs)


async def _approvals(
    db: aiosqlite.Connection, rows: list[aiosqlite.Row], who: str, tally: _Tally, *, erase: bool
) -> None:
    if not rows:
        return
    ids = [str(row[0]) for row in rows]
    c = tally.counts
    c.approvals += len(ids)
    c.approvals_unsettled += sum(
        1 for row in rows if row[1] == "pending" or (row[1] == "approved" and not row[2])
    )
    turns = await _select(db, _DECISION_TURNS, (json.dumps(ids), who))
    await _turns(db, turns, who, tally, erase=erase)
    if erase:
        await db.execute(f"DELETE FROM approvals WHERE id IN ({','.join('?' * len(ids))})", ids)


async def _turns(
    db: aiosqlite.Connection, rows: list[aiosqlite.Row], who: str, tally: _Tally, *, erase: bool
) -> None:
    if not rows:
        return
    tally.counts.turns += len(rows)
    tally.sessions.update(str(row[1]) for row in rows)
    if erase:
        ids = [int(row[0]) for row in rows]
        await db.execute(f"DELETE FROM turns WHERE id IN ({','.join('?' * len(ids))})", ids)


async def _owners(
    db: aiosqlite.Connection, rows: list[aiosqlite.Row], who: str, tally: _Tally, *, erase: bool
) -> None:
    if not rows:
        return
    sessions = [str(row[0]) for row in rows]
    tally.counts.session_owners += len(sessions)
    tally.sessions.update(sessions)
    if erase:
        marks = ",".join("?" * len(sessions))
        await db.execute(
            f"DELETE FROM session_owners WHERE customer_email = ? AND session_id IN ({marks})",
            [who, *sessions],
        )


async def _count(db: aiosqlite.Connection, sql: str, params: Sequence[object]) -> int:
    async with db.execute(sql, params) as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0

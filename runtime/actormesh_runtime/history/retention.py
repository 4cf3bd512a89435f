"""Deleting old conversations: `HISTORY_RETENTION_DAYS` (`spec.history.retentionDays`).

The store holds customers' own words; without a limit it keeps them forever. With one, a conversation
(a session) whose newest turn is older than the retention is deleted whole: its turns, its owner, its
resolved escalations with their replies, and its decided approvals. A conversation someone may still act
on is kept however old — an escalation open or claimed, an approval pending, or approved and not yet
executed — since deleting it would take the conversation from under the agent or the executor; it goes
at the first run after that is settled. A long conversation still in use is never cut at its start.

The history service (the single writer) runs `RetentionLoop`. Candidates are found on the reading
connection, a page of `SCAN_PAGE` conversations per read (a scan that must not hold the writer; and,
as reads there go one at a time, one read of the whole table would make every customer's transcript
read wait for it: half a second at a million turns); each page's candidates are then checked again
and deleted in batches, each one short write transaction of its own, so a chat's claim or a history
batch waits for at most one batch and a transcript read for at most one page.
Snapshots (docs/backups.md) keep a deleted conversation until they rotate out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter, Gauge

from actormesh_runtime.cancellation import cancel_and_wait
from actormesh_runtime.history.store import HistoryStore

log = logging.getLogger(__name__)

PRUNE_INTERVAL_S = 3600.0
"""How often the service looks for expired conversations (and once at start)."""
PRUNE_BATCH = 200
"""Conversations deleted per write transaction."""
SCAN_PAGE = 1000
"""Conversations looked at per read of the candidate scan (~10 ms on this machine)."""

PRUNED = Counter(
    "actormesh_history_pruned_conversations_total",
    "Conversations deleted for being older than HISTORY_RETENTION_DAYS.",
)
LAST_PRUNE = Gauge(
    "actormesh_history_prune_last_success_timestamp_seconds",
    "When the last retention run finished (Unix time; 0 = none yet).",
)

# A conversation someone may still act on is never a candidate. `IN` the two unsettled states, not
# `!= 'resolved'`: the queue's index finds those, where the inequality read every escalation ever filed.
_SETTLED = (
    " AND session_id NOT IN (SELECT session_id FROM escalations WHERE state IN ('open', 'claimed'))"
    " AND session_id NOT IN (SELECT session_id FROM approvals"
    "  WHERE state = 'pending' OR (state = 'approved' AND executed = 0))"
)
# julianday: turns carry ISO times with an offset; compared as instants, not as text.
_EXPIRED = (
    "SELECT session_id FROM turns {where} GROUP BY session_id"
    " HAVING MAX(julianday(created_at)) < julianday(?)" + _SETTLED
)
# A page of the scan: the next conversations after a session id (in the order of `turns_by_session`),
# each with whether it has expired. Not filtered by `HAVING`, whose `LIMIT` would count only expired
# ones and so read the whole table when few have expired.
_EXPIRED_PAGE = (
    "SELECT session_id, MAX(julianday(created_at)) < julianday(?) FROM turns"
    " WHERE session_id {after} ?" + _SETTLED + " GROUP BY session_id ORDER BY session_id LIMIT ?"
)
# `NOT EXISTS`, looked up per owner in `turns_by_session`: `NOT IN (SELECT session_id FROM turns)`
# would build the set of every conversation's id, inside the write.
_NEVER_STORED_A_TURN = "NOT EXISTS (SELECT 1 FROM turns WHERE turns.session_id = session_owners.session_id)"
_UNUSED_OWNERS = "FROM session_owners WHERE julianday(created_at) < julianday(?) AND " + _NEVER_STORED_A_TURN
"""Owners claimed before the cutoff whose conversation never stored a turn (the chat failed)."""
_UNUSED_OWNERS_PAGE = (
    "SELECT session_id, julianday(created_at) < julianday(?) AND "
    + _NEVER_STORED_A_TURN
    + " FROM session_owners WHERE session_id {after} ? ORDER BY session_id LIMIT ?"
)


async def prune(
    store: HistoryStore, before: datetime, *, batch: int = PRUNE_BATCH, page: int = SCAN_PAGE
) -> int:
    """Delete every settled conversation whose newest turn is before `before`; how many were deleted."""
    cutoff = before.astimezone(UTC).isoformat()
    deleted = deleted_owners = 0
    async for expired in _candidates(store, _EXPIRED_PAGE, cutoff, page):
        deleted += await _in_batches(expired, batch, lambda sessions: _delete(store, sessions, cutoff))
    async for unused in _candidates(store, _UNUSED_OWNERS_PAGE, cutoff, page):
        deleted_owners += await _in_batches(
            unused, batch, lambda sessions: _delete_owners(store, sessions, cutoff)
        )
    if deleted or deleted_owners:
        log.info(
            "history retention: deleted old conversations",
            extra={"conversations": deleted, "owners_without_turns": deleted_owners, "before": cutoff},
        )
    return deleted


async def _candidates(store: HistoryStore, sql: str, cutoff: str, page: int) -> AsyncIterator[list[str]]:
    """The session ids `sql` marks as due, a page at a time, each page one short read on the reading
    connection: other reads go between pages. Keyed on the last id seen, so deleting a page's
    candidates before the next page moves nothing."""
    after: str | None = None
    while True:
        # `>=` the empty string first: nothing sorts below it, and a session id may be empty.
        statement = sql.format(after=">=" if after is None else ">")
        async with store.reading() as db, db.execute(statement, (cutoff, after or "", page)) as cursor:
            rows = list(await cursor.fetchall())
        due = [str(row[0]) for row in rows if row[1]]
        if due:
            yield due
        if len(rows) < page:
            return
        after = str(rows[-1][0])
        await asyncio.sleep(0)  # the reads queued behind this page go first


async def _in_batches(sessions: list[str], batch: int, delete: Callable[[list[str]], Awaitable[int]]) -> int:
    """`delete` each batch of `sessions`, each its own write; how many it deleted in all."""
    deleted = 0
    for start in range(0, len(sessions), batch):
        deleted += await delete(sessions[start : start + batch])
        await asyncio.sleep(0)  # the writers queued behind this batch go first
    return deleted


async def _delete(store: HistoryStore, sessions: Sequence[str], cutoff: str) -> int:
    """Check the batch again inside the write (a turn or an escalation may have come since) and delete."""
    marks = ",".join("?" * len(sessions))
    async with store.writing():
        db = store.db
        async with db.execute(
            _EXPIRED.format(where=f"WHERE session_id IN ({marks})"), (*sessions, cutoff)
        ) as cursor:
            expired = [str(row[0]) for row in await cursor.fetchall()]
        if not expired:
            return 0
        marks = ",".join("?" * len(expired))
        await db.execute(
            "DELETE FROM escalation_replies WHERE ref IN"
            f" (SELECT ref FROM escalations WHERE session_id IN ({marks}))",
            expired,
        )
        for table in ("escalations", "approvals", "turns", "session_owners"):
            await db.execute(f"DELETE FROM {table} WHERE session_id IN ({marks})", expired)
    PRUNED.inc(len(expired))
    return len(expired)


async def _delete_owners(store: HistoryStore, sessions: Sequence[str], cutoff: str) -> int:
    async with store.writing():
        cursor = await store.db.execute(
            f"DELETE {_UNUSED_OWNERS} AND session_id IN ({','.join('?' * len(sessions))})",
            (cutoff, *sessions),
        )
        return cursor.rowcount


class RetentionLoop:
    """Runs `prune` for `days` of retention at start, then every `interval_s`."""

    def __init__(self, store: HistoryStore, *, days: float, interval_s: float = PRUNE_INTERVAL_S) -> None:
        self.store = store
        self.retention = timedelta(days=days)
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="history-retention")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def run_once(self) -> int | None:
        """One retention run: conversations deleted, or None when it failed (logged). Never raises."""
        try:
            deleted = await prune(self.store, datetime.now(UTC) - self.retention)
        except Exception as exc:  # the next interval tries again; chats are not affected
            log.error("history retention run failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            return None
        LAST_PRUNE.set_to_current_time()
        return deleted

    async def _run(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval_s)


def retention_loop(store: HistoryStore, days: float | None) -> RetentionLoop | None:
    """The service's loop when `HISTORY_RETENTION_DAYS` is set."""
    return None if days is None else RetentionLoop(store, days=days)

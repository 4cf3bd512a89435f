"""Deleting old conversations: `HISTORY_RETENTION_DAYS` (`spec.history.retentionDays`).

The store holds customers' own words; without a limit it keeps them forever. With one, a conversation
(a session) whose newest turn is older than the retention is deleted whole: its turns, its owner, its
resolved escalations with their replies, and its decided approvals. A conversation someone may still act
on is kept however old — an escalation open or claimed, an approval pending, or approved and not yet
executed — since deleting it would take the conversation from under the agent or the executor; it goes
at the first run after that is settled. A long conversation still in use is never cut at its start.

The history service (the single writer) runs `RetentionLoop`. Candidates are found on the reading
connection (a scan that must not hold the writer; other reads wait for it, as reads there go one at a
time), then each batch is checked again and deleted in one short write transaction of its own, so a
chat's claim or a history batch waits for at most one batch.
Snapshots (docs/backups.md) keep a deleted conversation until they rotate out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter, Gauge

from actormesh_runtime.cancellation import cancel_and_wait
from actormesh_runtime.history.store import HistoryStore

log = logging.getLogger(__name__)

PRUNE_INTERVAL_S = 3600.0
"""How often the service looks for expired conversations (and once at start)."""
PRUNE_BATCH = 200
"""Conversations deleted per write transaction."""

PRUNED = Counter(
    "actormesh_history_pruned_conversations_total",
    "Conversations deleted for being older than HISTORY_RETENTION_DAYS.",
)
LAST_PRUNE = Gauge(
    "actormesh_history_prune_last_success_timestamp_seconds",
    "When the last retention run finished (Unix time; 0 = none yet).",
)

# A conversation someone may still act on: `HAVING` keeps these out of every batch.
_SETTLED = (
    " AND session_id NOT IN (SELECT session_id FROM escalations WHERE state != 'resolved')"
    " AND session_id NOT IN (SELECT session_id FROM approvals"
    "  WHERE state = 'pending' OR (state = 'approved' AND executed = 0))"
)
# julianday: turns carry ISO times with an offset; compared as instants, not as text.
_EXPIRED = (
    "SELECT session_id FROM turns {where} GROUP BY session_id"
    " HAVING MAX(julianday(created_at)) < julianday(?)" + _SETTLED
)


async def prune(store: HistoryStore, before: datetime, *, batch: int = PRUNE_BATCH) -> int:
    """Delete every settled conversation whose newest turn is before `before`; how many were deleted."""
    cutoff = before.astimezone(UTC).isoformat()
    expired = await _candidates(store, _EXPIRED.format(where=""), cutoff)
    deleted = await _in_batches(expired, batch, lambda sessions: _delete(store, sessions, cutoff))
    unused = await _candidates(store, f"SELECT session_id {_UNUSED_OWNERS}", cutoff)
    deleted_owners = await _in_batches(
        unused, batch, lambda sessions: _delete_owners(store, sessions, cutoff)
    )
    if deleted or deleted_owners:
        log.info(
            "history retention: deleted old conversations",
            extra={"conversations": deleted, "owners_without_turns": deleted_owners, "before": cutoff},
        )
    return deleted


async def _candidates(store: HistoryStore, sql: str, cutoff: str) -> list[str]:
    """Session ids `sql` selects, found on the reading connection (a scan that must not hold the writer)."""
    async with store.reading() as db, db.execute(sql, (cutoff,)) as cursor:
        return [str(row[0]) for row in await cursor.fetchall()]


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


_UNUSED_OWNERS = (
    "FROM session_owners WHERE julianday(created_at) < julianday(?)"
    " AND session_id NOT IN (SELECT session_id FROM turns)"
)
"""Owners claimed before the cutoff whose conversation never stored a turn (the chat failed)."""


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

"""WAL checkpoints of the history store, taken off the single writer's connection.

SQLite checkpoints the WAL inside the commit that grows it past 1000 pages, on the committing
connection; with `synchronous=NORMAL` that checkpoint fsyncs the WAL and then the database file. In
the history service every write shares one aiosqlite connection (one thread), so on a busy disk that
one commit — a session claim, a history batch — held every other claim behind it for as long as two
fsyncs took (seconds, on a loaded node). The service therefore turns automatic checkpoints off
on its writer connection and runs a PASSIVE checkpoint every `CHECKPOINT_INTERVAL_S` from a connection
of its own (its own thread): a passive checkpoint never waits for the writer, and the writer's commits
never wait for it. The writer's next transaction after a complete checkpoint restarts the WAL from its
start, so the file stays the size of about one interval's writes; closing the store folds in the rest.

Who calls: `history.service.HistoryService` (start/stop).
"""

from __future__ import annotations

import asyncio
import logging

import aiosqlite

from actormesh_runtime.cancellation import cancel_and_wait
from actormesh_runtime.history.store import HistoryStore

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_S = 1.0
"""Often enough that the WAL stays a few MB under a flood of claims; an idle passive checkpoint is free."""


class Checkpointer:
    """Runs `PRAGMA wal_checkpoint(PASSIVE)` for `store` on a second connection, every `interval_s`."""

    def __init__(self, store: HistoryStore, *, interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        self.store = store
        self.interval_s = interval_s
        self._db: aiosqlite.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take checkpoints over from the (open) store's connection. A `:memory:` store has no WAL."""
        if str(self.store.path) == ":memory:" or self._task is not None:
            return
        self._db = await aiosqlite.connect(self.store.path)
        await self.store.db.execute("PRAGMA wal_autocheckpoint=0")
        self._task = asyncio.create_task(self._run(), name="history-checkpoint")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    async def run_once(self) -> tuple[int, int, int]:
        """One passive checkpoint: (busy, WAL frames, frames checkpointed), as SQLite reports them."""
        if self._db is None:
            raise RuntimeError("checkpointer is not started")
        async with self._db.execute("PRAGMA wal_checkpoint(PASSIVE)") as cursor:
            row = await cursor.fetchone()
        busy, frames, done = row if row is not None else (0, 0, 0)
        return int(busy), int(frames), int(done)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.run_once()
            except Exception as exc:  # the next interval tries again; the writer is not affected
                log.warning("history WAL checkpoint failed", extra={"error": repr(exc)})

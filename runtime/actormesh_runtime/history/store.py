"""The conversation-history store: one SQLite file (WAL), schema versioned by migrations.

Only the history service (`history.service`) opens this file: it is the single writer and
answers everyone else's reads over NATS request/reply. Each `HistoryEvent` becomes two turns (the
customer's and the agent's); the agent turn keeps the whole `FinalResult`, so a gateway that timed
out can still return the result later (`GET /api/messages/{id}`).

Writes are idempotent (`INSERT OR IGNORE` on `(message_id, role)`, escalation records on their ref,
in the same transaction as the turns — `history/escalations.py`): a redelivered event after a crash
changes nothing. A replay's answer (`HistoryEvent.replay`) replaces the stored one and settles the
error escalation of its message's failed run (or, when the replay handed over properly, gives that
escalation the replay's reason and priority), in that transaction too. Every text is passed through
`screening.screen` once more before it is written, so the store holds only redacted text even if a
producer forgot to screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import aiosqlite
from pydantic import BaseModel, ConfigDict

from actormesh_runtime.envelope import FinalResult, HistoryEvent
from actormesh_runtime.escalations import EscalationRecord
from actormesh_runtime.history.approvals import ApprovalStore, filed_requests
from actormesh_runtime.history.escalations import (
    EscalationStore,
    reclassify_candidates,
    settle_candidates,
)
from actormesh_runtime.screening import redact

# Each entry moves the schema from version i to i+1. Append, never edit a shipped entry.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE turns (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('customer', 'agent')),
        customer_email TEXT NOT NULL,
        text TEXT NOT NULL,
        intent TEXT,
        sentiment TEXT,
        sentiment_score REAL,
        urgency TEXT,
        escalated INTEGER NOT NULL DEFAULT 0,
        reference_id TEXT,
        actions TEXT NOT NULL DEFAULT '[]',
        flags TEXT NOT NULL DEFAULT '[]',
        result TEXT,
        created_at TEXT NOT NULL,
        UNIQUE (message_id, role)
    );
    CREATE INDEX turns_by_session ON turns (session_id, id);
    """,
    """
    CREATE INDEX turns_by_customer ON turns (customer_email, id);
    """,
    # Who owns each session, durably: the gateway's ownership check (auth on) asks here. Existing
    # conversations belong to the customer of their first turn.
    """
    CREATE TABLE session_owners (
        session_id TEXT PRIMARY KEY,
        customer_email TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    INSERT OR IGNORE INTO session_owners (session_id, customer_email, created_at)
        SELECT session_id, customer_email, created_at FROM turns ORDER BY id;
    """,
    # Escalation records (history/escalations.py) and the agents' replies; a turn written by a person
    # names them in `author` (NULL for the mesh's own replies).
    """
    ALTER TABLE turns ADD COLUMN author TEXT;
    CREATE TABLE escalations (
        ref TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        customer_email TEXT NOT NULL,
        customer_tier TEXT,
        reason TEXT NOT NULL,
        reasons TEXT NOT NULL DEFAULT '[]',
        priority TEXT NOT NULL,
        priority_rank INTEGER NOT NULL,
        summary TEXT NOT NULL,
        facts TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL CHECK (state IN ('open', 'claimed', 'resolved')),
        created_at TEXT NOT NULL,
        claimed_by TEXT,
        claimed_at TEXT,
        resolved_at TEXT,
        resolution_note TEXT,
        announced INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX escalations_queue ON escalations (state, priority_rank, created_at, ref);
    CREATE INDEX escalations_by_customer ON escalations (customer_email);
    CREATE TABLE escalation_replies (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ref TEXT NOT NULL REFERENCES escalations (ref),
        agent TEXT NOT NULL,
        text TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX escalation_replies_by_ref ON escalation_replies (ref, id);
    CREATE INDEX escalation_replies_by_time ON escalation_replies (at);
    """,
    # Approval requests (history/approvals.py): the record as JSON (`approvals.ApprovalRecord`, with its
    # audit trail), plus the columns the queue and the deadline sweep sort and filter on.
    """
    CREATE TABLE approvals (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        customer_email TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied')),
        priority_rank INTEGER NOT NULL,
        deadline_at TEXT NOT NULL,
        created_at TEXT NOT NULL,
        record TEXT NOT NULL,
        announced INTEGER NOT NULL DEFAULT 0,
        executed INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX approvals_queue ON approvals (state, priority_rank, deadline_at, id);
    """,
    # The agent console lists the approval requests of an escalation's conversation (`?session_id=`).
    """
    CREATE INDEX approvals_by_session ON approvals (session_id);
    """,
    # An agent's reply may carry the sender's key: a retry after a lost answer adds no second reply.
    """
    ALTER TABLE escalation_replies ADD COLUMN reply_id TEXT;
    CREATE UNIQUE INDEX escalation_replies_once ON escalation_replies (ref, reply_id);
    """,
    # Which run of its message an agent turn holds: a replayed dead letter's outcome replaces the
    # answer stored by an earlier run (`HistoryEvent.replay`).
    """
    ALTER TABLE turns ADD COLUMN replay INTEGER NOT NULL DEFAULT 0;
    """,
    # Retention (history/retention.py) deletes a conversation's escalations by session.
    """
    CREATE INDEX escalations_by_session ON escalations (session_id);
    """,
    # A replay's answer settles its message's error escalation (`EscalationStore.settle_replayed`), a
    # look-up by message inside the batch's write.
    """
    CREATE INDEX escalations_by_message ON escalations (message_id);
    """,
    # A replay that hands over properly reclassifies its message's open error escalation
    # (`EscalationStore.reclassify_replayed`); when, for the `reclassified` event's announcement.
    """
    ALTER TABLE escalations ADD COLUMN reclassified_at TEXT;
    """,
    # Erasing a customer on request (history/erasure.py) finds their session owners and approval
    # requests by email (approvals keep it as the producer sent it: matched trimmed and lowered).
    """
    CREATE INDEX session_owners_by_customer ON session_owners (customer_email, session_id);
    CREATE INDEX approvals_by_customer ON approvals (lower(trim(customer_email)), id);
    """,
    # Approval requests keep the email as the rest of the store does, trimmed and in lower case
    # (`approvals.normal_email`, applied by `ApprovalStore.insert`): erasure and the refund total match
    # it by plain equality. Existing requests are normalised here, column and record, and so are the
    # turns their decisions wrote with it (message ids `APR-…:…`). `blanks` holds what Python's
    # `str.strip()` removes (`str.isspace()`); SQLite's lower() folds ASCII letters only, as in every
    # address the gateway takes.
    """
    CREATE TEMP TABLE blanks AS SELECT char(
        9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 133, 160, 5760, 8192, 8193, 8194, 8195, 8196, 8197, 8198,
        8199, 8200, 8201, 8202, 8232, 8233, 8239, 8287, 12288
    ) AS chars;
    UPDATE approvals SET customer_email = lower(trim(customer_email, (SELECT chars FROM blanks)))
        WHERE customer_email != lower(trim(customer_email, (SELECT chars FROM blanks)));
    UPDATE approvals SET record = json_set(record, '$.customer_email', customer_email)
        WHERE json_valid(record) AND json_type(record, '$.customer_email') = 'text'
            AND json_extract(record, '$.customer_email') != customer_email;
    UPDATE turns SET customer_email = lower(trim(customer_email, (SELECT chars FROM blanks)))
        WHERE message_id >= 'APR-' AND message_id < 'APR.' AND author IS NOT NULL
            AND customer_email != lower(trim(customer_email, (SELECT chars FROM blanks)));
    DROP TABLE temp.blanks;
    DROP INDEX approvals_by_customer;
    CREATE INDEX approvals_by_customer ON approvals (customer_email, id);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
"""How long a statement waits for a lock another connection holds before it fails (SQLITE_BUSY)."""

BeforeMigrating = Callable[[int, int], Awaitable[None]]
"""Called with (the file's schema version, `SCHEMA_VERSION`) before migrations change a store that has
data; raising stops the open with the file unchanged (the history service snapshots it here)."""


class SchemaTooNew(RuntimeError):
    """The file was migrated by a later release than this one: refused, never opened for writing."""


class Turn(BaseModel):
    """One side of one exchange, as stored and as returned by `GET /api/conversations/{session_id}`."""

    model_config = ConfigDict(extra="forbid")

    session_id: str
    message_id: str
    role: Literal["customer", "agent"]
    customer_email: str
    text: str
    intent: str | None = None
    sentiment: str | None = None
    sentiment_score: float | None = None
    urgency: str | None = None
    escalated: bool = False
    reference_id: str | None = None
    actions: list[dict[str, object]] = []
    flags: list[str] = []
    created_at: str
    author: str | None = None
    """The support agent who wrote this turn (role `agent`); None for the mesh's own replies."""


class StoredResult(BaseModel):
    """A final result read back from the store, with the customer it belongs to (for authorization)."""

    customer_email: str
    result: FinalResult


class HistoryStore:
    """Async access to the SQLite file. `open()` applies pending migrations; `close()` releases it."""

    def __init__(self, path: str | Path, *, before_migrating: BeforeMigrating | None = None) -> None:
        self.path = Path(path)
        self.before_migrating = before_migrating
        self.migrating: tuple[int, int] | None = None
        """(from, to) while `open()` migrates the file (readiness says so), else None."""
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._read_lock = asyncio.Lock()
        self.write_lock = asyncio.Lock()
        """Held by every write transaction: writers share one connection, and a state transition's
        read-check-write must not interleave with another write's commit."""
        self.escalations = EscalationStore(self)
        self.approvals = ApprovalStore(self)

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """One write transaction: under `write_lock`, committed when the block ends, rolled back when
        it raises (so nothing half-written is committed by the next writer). Every write of the
        store, the escalations and the approvals goes through it."""
        async with self.write_lock:
            try:
                yield
                await self.db.commit()
            except BaseException:
                await self.db.rollback()
                raise

    @property
    def db(self) -> aiosqlite.Connection:
        """The writer's connection: writes, and the reads of a write transaction's read-check-write."""
        if self._db is None:
            raise RuntimeError("history store is not open")
        return self._db

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection for a read outside a write transaction. The writer's connection sees a batch's
        rows before its commit (and rows a rollback then removes), so reads have a connection of their
        own, which sees committed rows only (WAL) and never waits for a write. One read at a time: a
        connection's statements share one snapshot while any of them is active, so a read overlapping
        another (the service answers many queries at once) read the database as that other one began,
        missing what was committed since — a session claimed a moment before had no owner. A `:memory:`
        store is one connection: its reads wait for the write in progress instead. Never nest it, nor
        use it inside `writing()`."""
        if self._reader is not None:
            async with self._read_lock:
                yield self._reader
            return
        async with self.write_lock:
            yield self.db

    async def open(self) -> None:
        if str(self.path) != ":memory:":
            await asyncio.to_thread(_private_file, self.path)
        self._db = await aiosqlite.connect(self.path)
        self._db.row_factory = aiosqlite.Row
        # WAL: readers (the query responder) never block the writer; NORMAL sync is durable in WAL mode
        # across process crashes, which is the failure we care about (a pod restart, not a power cut).
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        await self.migrate()
        if str(self.path) != ":memory:":
            self._reader = await aiosqlite.connect(self.path)
            self._reader.row_factory = aiosqlite.Row
            await self._reader.execute("PRAGMA query_only=ON")
            await self._reader.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.close()
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    async def schema_version(self) -> int:
        async with self.db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def migrate(self) -> int:
        """Apply migrations newer than the file's `user_version`, each in its own transaction (a crash
        or kill during one leaves the version before it, and the next open applies it again). A store
        with data is first handed to `before_migrating`."""
        version = await self.schema_version()
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{self.path} has schema v{version}, newer than this runtime (v{SCHEMA_VERSION}): a later"
                " release migrated it and this one cannot use it. Run that release again, or restore the"
                f" snapshot it took before migrating (pre-migration-v*-to-v{version}-*.db in the backup"
                " directory; docs/backups.md)"
            )
        if version == SCHEMA_VERSION:
            return SCHEMA_VERSION
        self.migrating = (version, SCHEMA_VERSION)
        try:
            if version > 0:
                log.info(
                    "history store migrating",
                    extra={"db": str(self.path), "from_version": version, "to_version": SCHEMA_VERSION},
                )
                if self.before_migrating is not None:
                    await self.before_migrating(version, SCHEMA_VERSION)
            started = time.monotonic()
            for number in range(version, SCHEMA_VERSION):
                await self.db.executescript(
                    f"BEGIN; {MIGRATIONS[number]} PRAGMA user_version = {number + 1}; COMMIT;"
                )
            if version > 0:
                log.info(
                    "history store migrated",
                    extra={
                        "db": str(self.path),
                        "from_version": version,
                        "to_version": SCHEMA_VERSION,
                        "duration_s": round(time.monotonic() - started, 3),
                    },
                )
        finally:
            self.migrating = None
        return SCHEMA_VERSION

    # ------------------------------------------------------------ writes (history service only)

    async def add_events(self, events: Iterable[HistoryEvent]) -> int:
        """Store events in one transaction; returns how many turns were added, or replaced by a replay's
        (a redelivery adds none).

        An escalation record (approval request) whose ref (id) another message's record (another key's
        request) holds is stored under its next free candidate, and renamed so in its event too: the
        announcements, settling and reclassifying that follow name the record as stored (the events
        are the caller's list; only these fields change)."""
        events = list(events)
        rows = [row for event in events for row in _rows(event)]
        async with self.writing():
            moved_refs: dict[str, str] = {}
            added = await self._add_rows(
                rows, [e.escalation for e in events if e.escalation is not None], moved_refs
            )
            _rename_escalations(events, moved_refs)
            moved_ids = await self.approvals.insert(filed_requests(events))
            _rename_approvals(events, moved_ids)
            # Last, once this batch's turns and records are in: a replay's answer settles the error
            # escalation its message's failed run opened, in the same transaction (never one without
            # the other, whatever crashes).
            await self.escalations.settle_replayed(settle_candidates(events))
            await self.escalations.reclassify_replayed(reclassify_candidates(events))
        return added

    async def _add_rows(
        self,
        rows: list[Sequence[object]],
        escalations: list[EscalationRecord],
        moved_refs: dict[str, str] | None = None,
    ) -> int:
        before = self.db.total_changes
        await self.db.executemany(
            "INSERT OR IGNORE INTO turns (session_id, message_id, role, customer_email, text, intent,"
            " sentiment, sentiment_score, urgency, escalated, reference_id, actions, flags, result,"
            " created_at, replay) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        # A replay's turns replace an earlier run's (rows already there are ignored above): the agent
        # turn whole, the customer turn's reading of the message (its text is the same).
        replayed = [row for row in rows if row[15]]
        if replayed:
            await self._replace_replayed(replayed)
        added = self.db.total_changes - before
        await self.db.executemany(
            "INSERT OR IGNORE INTO session_owners (session_id, customer_email, created_at) VALUES (?, ?, ?)",
            [(row[0], row[3], row[14]) for row in rows if row[2] == "customer"],
        )
        moved = await self.escalations.insert(escalations)
        if moved_refs is not None:
            moved_refs.update(moved)
        return added

    async def _replace_replayed(self, replayed: list[Sequence[object]]) -> None:
        """Only for a replay's rows: every statement here is one more step inside the write transaction,
        during which a read on this connection already sees the rows before they are committed."""
        await self.db.executemany(
            "UPDATE turns SET text = ?, intent = ?, sentiment = ?, sentiment_score = ?, urgency = ?,"
            " escalated = ?, reference_id = ?, actions = ?, flags = ?, result = ?, created_at = ?,"
            " replay = ? WHERE message_id = ? AND role = 'agent' AND replay < ?",
            [(*row[4:16], row[1], row[15]) for row in replayed if row[2] == "agent"],
        )
        await self.db.executemany(
            "UPDATE turns SET intent = ?, sentiment = ?, sentiment_score = ?, urgency = ?, flags = ?,"
            " replay = ? WHERE message_id = ? AND role = 'customer' AND replay < ?",
            [(*row[5:9], row[12], row[15], row[1], row[15]) for row in replayed if row[2] == "customer"],
        )

    async def claim_session(self, session_id: str, customer_email: str) -> str:
        """Make `customer_email` the owner of a session nobody owns yet; returns the owner either way."""
        # Every authenticated chat claims its session: an owned one (each turn after the first) is a
        # read, not a write transaction on the single writer.
        if (owner := await self.session_owner(session_id)) is not None:
            return owner
        now = datetime.now(UTC).isoformat()
        async with self.writing():
            await self.db.execute(
                "INSERT OR IGNORE INTO session_owners (session_id, customer_email, created_at)"
                " VALUES (?, ?, ?)",
                (session_id, customer_email.lower(), now),
            )
            # Read back in the same transaction: whoever won a race for the session, this sees it.
            async with self.db.execute(
                "SELECT customer_email FROM session_owners WHERE session_id = ?", (session_id,)
            ) as cursor:
                row = await cursor.fetchone()
        assert row is not None
        return str(row[0])

    async def session_owner(self, session_id: str) -> str | None:
        async with (
            self.reading() as db,
            db.execute(
                "SELECT customer_email FROM session_owners WHERE session_id = ?", (session_id,)
            ) as cursor,
        ):
            row = await cursor.fetchone()
        return str(row[0]) if row else None

    # ------------------------------------------------------------ reads (committed rows only: `reading`)

    async def conversation(
        self, session_id: str, *, customer_email: str | None = None, limit: int = 500
    ) -> list[Turn]:
        """A session's last `limit` turns, in the order they happened; only `customer_email`'s when
        given. The newest, not the oldest: a long session reopened in the widget, or an escalation
        read by an agent, must show how it ends (the message escalated is the last one)."""
        sql = "SELECT * FROM turns WHERE session_id = ?"
        params: list[object] = [session_id]
        if customer_email is not None:
            sql += " AND customer_email = ?"
            params.append(customer_email.lower())
        sql = f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT ?) ORDER BY id"
        params.append(limit)
        async with self.reading() as db, db.execute(sql, params) as cursor:
            rows = await cursor.fetchall()
        return [_turn(row) for row in rows]

    async def result(self, message_id: str) -> StoredResult | None:
        async with (
            self.reading() as db,
            db.execute(
                "SELECT customer_email, result FROM turns WHERE message_id = ? AND role = 'agent'",
                (message_id,),
            ) as cursor,
        ):
            row = await cursor.fetchone()
        if row is None or row["result"] is None:
            return None
        return StoredResult(
            customer_email=row["customer_email"], result=FinalResult.model_validate_json(row["result"])
        )

    async def count_turns(self) -> int:
        async with self.reading() as db, db.execute("SELECT COUNT(*) FROM turns") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0


def _rename_escalations(events: list[HistoryEvent], moved: dict[str, str]) -> None:
    """Give each event whose escalation was stored under another ref that ref (and its approval
    requests that name the escalation)."""
    for event in events:
        record = event.escalation
        if record is None or (ref := moved.get(event.message_id)) is None or record.ref == ref:
            continue
        event.escalation = record.model_copy(update={"ref": ref})
        event.approvals = [
            a.model_copy(update={"ref": ref}) if a.ref == record.ref else a for a in event.approvals
        ]


def _rename_approvals(events: list[HistoryEvent], moved: dict[str, str]) -> None:
    """Give each approval request stored under another id that id, in its event."""
    if not moved:
        return
    for event in events:
        event.approvals = [
            a.model_copy(update={"id": moved[a.idempotency_key]}) if a.idempotency_key in moved else a
            for a in event.approvals
        ]


def _private_file(path: Path) -> None:
    """Create the database file readable by its owner only (0600), or tighten an existing one.

    The transcripts are customers' words: other users of the machine (or of a shared volume) have
    no business reading them. SQLite creates the -wal and -shm files with the database's mode.
    """
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", 0o600)


def _rows(event: HistoryEvent) -> list[Sequence[object]]:
    result = event.result
    result = result.model_copy(update={"response": redact(result.response)})
    email = event.customer_email.lower()
    actions = json.dumps([a.model_dump(mode="json") for a in result.actions])
    flags = json.dumps(result.flags)
    sentiment = result.sentiment.label.value if result.sentiment else None
    score = result.sentiment.score if result.sentiment else None
    intent = result.intent.value if result.intent else None
    urgency = result.urgency.value if result.urgency else None
    customer = (
        event.session_id, event.message_id, "customer", email, redact(event.customer_message), intent,
        sentiment, score, urgency, 0, None, "[]", flags, None, event.received_at.isoformat(), event.replay,
    )  # fmt: skip
    agent = (
        event.session_id, event.message_id, "agent", email, result.response, intent, sentiment, score,
        urgency, int(result.escalated), result.reference_id, actions, flags, result.model_dump_json(),
        event.completed_at.isoformat(), event.replay,
    )  # fmt: skip
    return [customer, agent]


def _turn(row: aiosqlite.Row) -> Turn:
    return Turn(
        session_id=row["session_id"],
        message_id=row["message_id"],
        role=row["role"],
        customer_email=row["customer_email"],
        text=row["text"],
        intent=row["intent"],
        sentiment=row["sentiment"],
        sentiment_score=row["sentiment_score"],
        urgency=row["urgency"],
        escalated=bool(row["escalated"]),
        reference_id=row["reference_id"],
        actions=json.loads(row["actions"]),
        flags=json.loads(row["flags"]),
        created_at=row["created_at"],
        author=row["author"],
    )

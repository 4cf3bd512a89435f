"""Escalation records in the history store's SQLite file (tables from migration 4 in `store.py`).

Only the history service opens the file, and every change runs under the store's write lock, so
the read-check-write of a state transition cannot interleave with another one. Creating a record
is `INSERT OR IGNORE` on its ref inside the same transaction as the conversation's turns: a
redelivered history event adds nothing. A ref held by ANOTHER message's record (8 hex digits of a
hash: two messages may share one) is never a reason to drop a case: the record is stored under the
message's next free candidate ref (`escalations.reference_id(message_id, attempt)`), the collision is
logged with both message ids and counted (`actormesh_escalation_ref_collisions_total`). An agent's
reply is a row in `escalation_replies` and an `agent` turn of the customer's conversation (with
`author`), written in one transaction. An open error escalation is settled (resolved with
`REPLAY_SETTLED_NOTE`) in the transaction that stores the answer of a replay of its message
(`actormesh dlq replay`), or reclassified with the reason the replay found when the replay handed
over properly; a claimed one is left to its person.

Who calls: `history.store.HistoryStore` (creation and settling, with the turns),
`history.escalation_ops` (the agent operations, the mesh's lookups, the announcements).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiosqlite
from prometheus_client import Counter

from actormesh_runtime.approvals import normal_email
from actormesh_runtime.envelope import HistoryEvent
from actormesh_runtime.escalations import (
    CURSOR_PATTERN,
    MAX_REF_ATTEMPTS,
    REPLAY_SETTLED_NOTE,
    AgentReply,
    Customer,
    EscalationFacts,
    EscalationReason,
    EscalationRecord,
    EscalationState,
    Operation,
    QueueSnapshot,
    apply_transition,
    fit_summary,
    reference_id,
)
from actormesh_runtime.history.placement import place
from actormesh_runtime.priority import PRIORITY_ORDER, Priority
from actormesh_runtime.screening import redact

if TYPE_CHECKING:
    from actormesh_runtime.history.store import HistoryStore

log = logging.getLogger(__name__)

REF_COLLISIONS = Counter(
    "actormesh_escalation_ref_collisions_total",
    "Escalation records whose ref another message's record held: stored under the next free candidate ref.",
)

ACTIVE_AGENT_WINDOW = timedelta(hours=1)
HANDLING_WINDOW = timedelta(days=1)
MAX_LIST = 200
_SELECT = "SELECT * FROM escalations"


class EscalationNotFound(LookupError):
    """No record with that ref (HTTP 404)."""


def ts(value: datetime) -> str:
    """One fixed UTC format, so the text columns sort in time order."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def encode_cursor(record: EscalationRecord) -> str:
    return f"{record.priority.rank}|{ts(record.created_at)}|{record.ref}"


def decode_cursor(cursor: str) -> tuple[int, str, str]:
    """(priority rank, created_at, ref) of the last item of the previous page; ValueError if malformed.

    Any well-formed cursor is a position in the queue order, so it pages from there even if no page
    ended exactly there."""
    return split_cursor(CURSOR_PATTERN, cursor)


def page_query(
    select: str,
    order: str,
    state: str | None,
    after: tuple[int, str, str] | None,
    limit: int,
    *,
    session_id: str | None = None,
) -> tuple[str, list[object]]:
    """`select` (of a queue table) in `order` (three columns), only `state`, only `session_id` and only
    after the cursor's position when given; one row more than a page (capped at MAX_LIST), to tell
    whether another follows."""
    where: list[str] = []
    params: list[object] = []
    if state is not None:
        where.append("state = ?")
        params.append(state)
    if session_id is not None:
        where.append("session_id = ?")
        params.append(session_id)
    if after is not None:
        where.append(f"({order}) > (?, ?, ?)")
        params.extend(after)
    sql = select + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY {order} LIMIT ?"
    params.append(min(limit, MAX_LIST) + 1)
    return sql, params


def split_cursor(pattern: str, cursor: str) -> tuple[int, str, str]:
    """(priority rank, time, id) of a queue cursor; ValueError unless `cursor` matches `pattern`."""
    if not re.fullmatch(pattern, cursor):
        raise ValueError("not a cursor")
    rank, at, key = cursor.split("|")
    return int(rank), at, key


def settle_candidates(events: Iterable[HistoryEvent]) -> list[str]:
    """The messages of a batch whose error escalation a replay's answer may settle: a replay's own
    event, and an event that brings an error escalation (a first run's, stored after its replay's when
    the history service was behind: the answer is in already). Every other batch asks nothing."""
    return list(
        dict.fromkeys(
            event.message_id
            for event in events
            if event.replay
            or (event.escalation is not None and event.escalation.reason is EscalationReason.ERROR)
        )
    )


def reclassify_candidates(events: Iterable[HistoryEvent]) -> list[EscalationRecord]:
    """The escalation records of a batch's replays that handed over properly (any reason but `error`):
    each may reclassify the open error escalation its message's failed run opened (same ref)."""
    return [
        event.escalation
        for event in events
        if event.replay
        and event.escalation is not None
        and event.escalation.reason is not EscalationReason.ERROR
    ]


class EscalationStore:
    """The escalation tables, on the history store's connections (reads: `reading`; writes: `writing`)."""

    def __init__(self, store: HistoryStore) -> None:
        self._store = store

    @property
    def db(self) -> aiosqlite.Connection:
        """The writer's connection (inside `writing()` only)."""
        return self._store.db

    # ------------------------------------------------------------ creation (inside add_events)

    async def insert(self, records: Iterable[EscalationRecord]) -> dict[str, str]:
        """Add records nobody stored yet; the caller commits (together with the turns). Returns the
        message ids whose record is stored (now or before) under another ref than the one it came with,
        and that ref: its ref was another message's, so it went to the next free candidate."""
        records = list(records)
        if not records:
            return {}
        # Every record's candidates in one read: `place` then needs none unless a batch runs out.
        candidates = [_candidates(r) for r in records]
        holders = await self._holders(list(dict.fromkeys(c for cs in candidates for c in cs)))
        placed: list[EscalationRecord] = []
        moved: dict[str, str] = {}
        for record, its_candidates in zip(records, candidates, strict=True):
            ref = await self._place(record, its_candidates, holders)
            if ref is None:
                continue
            if ref != record.ref:
                moved[record.message_id] = ref
                record = record.model_copy(update={"ref": ref})
            placed.append(record)
        rows = [_row(r) for r in placed]
        if rows:
            await self.db.executemany(
                "INSERT OR IGNORE INTO escalations (ref, session_id, message_id, customer_email,"
                " customer_tier, reason, reasons, priority, priority_rank, summary, facts, state,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?)",
                rows,
            )
        return moved

    async def _holders(self, refs: Sequence[str]) -> dict[str, str | None]:
        """Each of `refs` → the message id of the record stored under it, None when it is free."""
        marks = ",".join("?" * len(refs))
        async with self.db.execute(
            f"SELECT ref, message_id FROM escalations WHERE ref IN ({marks})", list(refs)
        ) as cursor:
            taken = {row[0]: row[1] for row in await cursor.fetchall()}
        return {ref: taken.get(ref) for ref in refs}

    async def _place(
        self, record: EscalationRecord, candidates: list[str], holders: dict[str, str | None]
    ) -> str | None:
        """The ref `record` is (or already was) stored under (`history.placement`): its message's stored
        record's, else its own unless another message's record holds it, else the first free of its
        message's candidates. None (logged) when all are taken."""
        placed = await place(candidates, record.message_id, holders, self._holders)
        if placed is None:
            log.error(
                "escalation record not stored: every candidate ref is another message's",
                extra={"ref": record.ref, "message_id": record.message_id},
            )
            return None
        if placed.id != record.ref and not placed.stored_before:
            REF_COLLISIONS.inc()
            log.error(
                "escalation ref collision: record stored under another ref",
                extra={
                    "ref": record.ref,
                    "message_id": record.message_id,
                    "held_by_message_id": holders[record.ref],
                    "stored_ref": placed.id,
                },
            )
        return placed.id

    async def settle_replayed(self, message_ids: Sequence[str], now: datetime | None = None) -> None:
        """Resolve the open error escalations of `message_ids` whose stored answer is now a replay's that
        answered the customer (neither an escalation nor an error); the caller commits, together with
        the turns, so the answer and the settling are stored together or not at all.

        Decided on what the store holds, not on the event at hand: whichever of the two events (the
        failed run's, the replay's) is stored last settles, and storing either again changes nothing.
        Only `open`: one a person claimed is theirs to close (they see the replay's answer in the
        conversation). A replay that escalated or failed again leaves it open for a person."""
        if not message_ids:
            return
        marks = ",".join("?" * len(message_ids))
        await self.db.execute(
            "UPDATE escalations SET state = 'resolved', resolved_at = ?, resolution_note = ?"
            f" WHERE state = 'open' AND reason = ? AND message_id IN ({marks}) AND EXISTS ("
            "  SELECT 1 FROM turns t WHERE t.message_id = escalations.message_id AND t.role = 'agent'"
            "  AND t.replay > 0 AND t.escalated = 0"
            "  AND NOT EXISTS (SELECT 1 FROM json_each(t.flags) WHERE json_each.value = 'error'))",
            [ts(now or datetime.now(UTC)), REPLAY_SETTLED_NOTE, EscalationReason.ERROR.value, *message_ids],
        )

    async def reclassify_replayed(
        self, records: Sequence[EscalationRecord], now: datetime | None = None
    ) -> None:
        """Give each open, unclaimed `error` escalation among `records`' refs the replay's reason, reasons,
        priority, summary and facts; the caller commits, with the turns. The record a failed handoff's
        error path opened would otherwise stay filed as a system error at the error's priority (its
        insert ignored the replay's record of the same ref), while the replay found the real reason:
        the customer asked for a person, a refund needs approval. Still open, same ref and created_at
        (its place in the queue's time order); one a person claimed keeps what they took on. A later
        replay that fails again finds no `error` record left to change."""
        if not records:
            return
        at = ts(now or datetime.now(UTC))
        await self.db.executemany(
            "UPDATE escalations SET reason = ?, reasons = ?, priority = ?, priority_rank = ?, summary = ?,"
            " facts = ?, reclassified_at = ? WHERE ref = ? AND message_id = ? AND state = 'open'"
            " AND reason = ?",
            [(*row[5:11], at, row[0], row[2], EscalationReason.ERROR.value) for row in map(_row, records)],
        )

    async def reclassified(self, refs: Sequence[str]) -> list[EscalationRecord]:
        """Records among `refs` a replay reclassified (committed), to announce."""
        if not refs:
            return []
        marks = ",".join("?" * len(refs))
        return await self._read(
            f"{_SELECT} WHERE reclassified_at IS NOT NULL AND ref IN ({marks})", list(refs)
        )

    async def settled_by_replay(self, message_ids: Sequence[str]) -> list[EscalationRecord]:
        """The error escalations of `message_ids` a replay's answer settled (committed), to announce."""
        if not message_ids:
            return []
        marks = ",".join("?" * len(message_ids))
        return await self._read(
            f"{_SELECT} WHERE state = 'resolved' AND reason = ? AND claimed_by IS NULL"
            f" AND resolution_note = ? AND message_id IN ({marks})",
            [EscalationReason.ERROR.value, REPLAY_SETTLED_NOTE, *message_ids],
        )

    async def unannounced(self, refs: Sequence[str]) -> list[EscalationRecord]:
        """Records among `refs` whose `created` event was not published yet (at-least-once, dedup'd)."""
        marks = ",".join("?" * len(refs))
        return await self._read(f"{_SELECT} WHERE announced = 0 AND ref IN ({marks})", list(refs))

    async def mark_announced(self, refs: Sequence[str]) -> None:
        async with self._store.writing():
            await self.db.executemany(
                "UPDATE escalations SET announced = 1 WHERE ref = ?", [(r,) for r in refs]
            )

    # ------------------------------------------------------------ reads

    async def get(self, ref: str) -> EscalationRecord | None:
        records = await self._read(f"{_SELECT} WHERE ref = ?", [ref])
        return records[0] if records else None

    async def _read(self, sql: str, params: Sequence[object]) -> list[EscalationRecord]:
        async with self._store.reading() as db:
            return await _load(db, sql, params)

    async def page(
        self, state: EscalationState | None, limit: int, cursor: str | None
    ) -> tuple[list[EscalationRecord], str | None]:
        """One page of the queue, most urgent first, then oldest first; and the next page's cursor."""
        sql, params = page_query(
            _SELECT,
            "priority_rank, created_at, ref",
            state.value if state is not None else None,
            decode_cursor(cursor) if cursor else None,
            limit,
        )
        records = await self._read(sql, params)
        more = len(records) > limit
        records = records[:limit]
        return records, (encode_cursor(records[-1]) if more and records else None)

    async def for_customer(self, refs: Sequence[str], customer_email: str) -> dict[str, EscalationRecord]:
        """The records among `refs` that belong to `customer_email` (others are simply absent)."""
        if not refs:
            return {}
        marks = ",".join("?" * len(refs))
        owned = await self._read(
            f"{_SELECT} WHERE customer_email = ? AND ref IN ({marks})",
            [normal_email(customer_email), *refs],
        )
        return {record.ref: record for record in owned}

    async def queue(
        self, priority: Priority, now: datetime | None = None, *, behind: EscalationRecord | None = None
    ) -> QueueSnapshot:
        """The queue a new escalation of `priority` joins (the wait estimate's inputs); with `behind`,
        the queue in front of that open record instead."""
        at = now or datetime.now(UTC)
        ahead_sql = "SELECT COUNT(*) FROM escalations WHERE state = 'open' AND priority_rank <= ?"
        params: list[object] = [priority.rank]
        if behind is not None:
            ahead_sql = (
                "SELECT COUNT(*) FROM escalations WHERE state = 'open'"
                " AND (priority_rank, created_at, ref) < (?, ?, ?)"
            )
            params = [behind.priority.rank, ts(behind.created_at), behind.ref]
        # One statement for the three figures: one trip to the reading connection's thread.
        async with (
            self._store.reading() as db,
            db.execute(
                f"SELECT ({ahead_sql}),"
                " (SELECT COUNT(DISTINCT agent) FROM escalation_replies WHERE at >= ?),"
                " (SELECT AVG((julianday(resolved_at) - julianday(claimed_at)) * 1440.0) FROM escalations"
                "  WHERE state = 'resolved' AND claimed_at IS NOT NULL AND resolved_at >= ?)",
                [*params, ts(at - ACTIVE_AGENT_WINDOW), ts(at - HANDLING_WINDOW)],
            ) as cursor,
        ):
            ahead, agents, mean = await cursor.fetchone() or (0, 0, None)
        return QueueSnapshot(
            ahead=int(ahead),
            agents_active=int(agents),
            handling_minutes=round(float(mean), 2) if mean is not None else None,
        )

    async def open_counts(self) -> dict[Priority, int]:
        """Unresolved escalations (open or claimed) by priority, every priority present."""
        counts = dict.fromkeys(PRIORITY_ORDER, 0)
        async with (
            self._store.reading() as db,
            db.execute(
                "SELECT priority, COUNT(*) FROM escalations WHERE state != 'resolved' GROUP BY priority"
            ) as cursor,
        ):
            for name, count in await cursor.fetchall():
                counts[Priority(name)] = int(count)
        return counts

    # ------------------------------------------------------------ agent operations

    async def transition(
        self, ref: str, op: Operation, agent: str, text: str | None = None, *, reply_id: str | None = None
    ) -> tuple[EscalationRecord, EscalationRecord]:
        """Apply `op` and commit; returns (before, after). `EscalationNotFound`, `TransitionRefused`."""
        async with self._store.writing():
            found = await _load(self.db, f"{_SELECT} WHERE ref = ?", [ref])
            before = found[0] if found else None
            if before is None:
                raise EscalationNotFound(ref)
            clean = redact(text) if text is not None else None
            after = apply_transition(before, op, agent, text=clean, reply_id=reply_id)
            if after is not before:
                await self._write(before, after, op)
        return before, after

    async def _write(self, before: EscalationRecord, after: EscalationRecord, op: Operation) -> None:
        if op == "reply":
            await self._add_reply(after, after.replies[-1])
        else:
            await self.db.execute(
                "UPDATE escalations SET state = ?, claimed_by = ?, claimed_at = ?, resolved_at = ?,"
                " resolution_note = ? WHERE ref = ? AND state = ?",
                (
                    after.state.value,
                    after.claimed_by,
                    ts(after.claimed_at) if after.claimed_at else None,
                    ts(after.resolved_at) if after.resolved_at else None,
                    after.resolution_note,
                    after.ref,
                    before.state.value,
                ),
            )

    async def _add_reply(self, record: EscalationRecord, reply: AgentReply) -> None:
        """The reply row and the customer-visible turn (role agent, author = the agent), uncommitted."""
        cursor = await self.db.execute(
            "INSERT INTO escalation_replies (ref, agent, text, at, reply_id) VALUES (?, ?, ?, ?, ?)",
            (record.ref, reply.agent, reply.text, ts(reply.at), reply.reply_id),
        )
        message_id = f"{record.ref}:reply:{cursor.lastrowid}"
        await self.db.execute(
            "INSERT OR IGNORE INTO turns (session_id, message_id, role, customer_email, text, escalated,"
            " reference_id, actions, flags, created_at, author) VALUES (?, ?, 'agent', ?, ?, 1, ?, '[]',"
            " '[\"agent_reply\"]', ?, ?)",
            (
                record.session_id,
                message_id,
                record.customer.email,
                reply.text,
                record.ref,
                reply.at.astimezone(UTC).isoformat(),
                reply.agent,
            ),
        )


async def _load(db: aiosqlite.Connection, sql: str, params: Sequence[object]) -> list[EscalationRecord]:
    """The records `sql` (a `_SELECT`) finds on `db`, in its order, with their replies: two queries."""
    async with db.execute(sql, params) as cursor:
        rows = list(await cursor.fetchall())
    if not rows:
        return []
    refs = [row["ref"] for row in rows]
    replies: dict[str, list[AgentReply]] = {ref: [] for ref in refs}
    async with db.execute(
        "SELECT ref, agent, text, at, reply_id FROM escalation_replies"
        f" WHERE ref IN ({','.join('?' * len(refs))}) ORDER BY id",
        refs,
    ) as cursor:
        for r in await cursor.fetchall():
            replies[r[0]].append(AgentReply(agent=r[1], text=r[2], at=_parse(r[3]), reply_id=r[4]))
    return [_record(row, replies[row["ref"]]) for row in rows]


def _candidates(record: EscalationRecord) -> list[str]:
    """The refs `record` may be stored under, in order: the one it came with, then its message's."""
    return list(
        dict.fromkeys([record.ref, *(reference_id(record.message_id, n) for n in range(MAX_REF_ATTEMPTS))])
    )


def _row(record: EscalationRecord) -> tuple[Any, ...]:
    return (
        record.ref,
        record.session_id,
        record.message_id,
        normal_email(record.customer.email),
        record.customer.tier,
        record.reason.value,
        json.dumps([redact(r) for r in record.reasons]),
        record.priority.value,
        record.priority.rank,
        fit_summary(redact(record.summary)),
        record.facts.model_dump_json(),
        ts(record.created_at),
    )


def _record(row: aiosqlite.Row, replies: list[AgentReply]) -> EscalationRecord:
    return EscalationRecord(
        ref=row["ref"],
        session_id=row["session_id"],
        message_id=row["message_id"],
        customer=Customer(email=row["customer_email"], tier=row["customer_tier"]),
        reason=row["reason"],
        reasons=json.loads(row["reasons"]),
        priority=row["priority"],
        summary=fit_summary(row["summary"]),  # rows written before the store cut it
        facts=EscalationFacts.model_validate_json(row["facts"]),
        state=row["state"],
        created_at=_parse(row["created_at"]),
        claimed_by=row["claimed_by"],
        claimed_at=_parse(row["claimed_at"]),
        resolved_at=_parse(row["resolved_at"]),
        resolution_note=row["resolution_note"],
        replies=replies,
    )

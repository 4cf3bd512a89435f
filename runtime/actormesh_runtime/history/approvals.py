"""Approval requests in the history store's SQLite file (migration 5 in `store.py`).

Created with the turns of the conversation that filed them (`INSERT OR IGNORE` on the id, derived from
the action's idempotency key: a redelivered history event adds nothing), the customer's email trimmed
and in lower case (`approvals.normal_email`, as the rest of the store keeps it; migration 13 normalised
the requests stored before). An id held by ANOTHER key's
request (8 hex digits of a hash collide) does not drop the request: it is stored under its key's next
free candidate id (`approvals.approval_id(key, attempt)`), logged with both keys and counted
(`actormesh_approval_id_collisions_total`). Decisions, execution results
and re-escalations rewrite the record under the store's write lock, each appending to its audit trail
(`approvals.py` is the state machine). A decision the customer must hear about also writes an `agent`
turn of their conversation, authored by the deciding agent, in the same transaction.

Who calls: `history.store.HistoryStore` (creation), `history.approval_ops` (everything else).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import aiosqlite
from prometheus_client import Counter

from actormesh_runtime.approvals import (
    MAX_ID_ATTEMPTS,
    REFUND,
    ApprovalRecord,
    ApprovalState,
    AuditEntry,
    Verdict,
    approval_id,
    approved_refunds,
    customer_message,
    decide,
    executed_what,
    filing_problem,
    normal_email,
    reescalate,
)
from actormesh_runtime.history.escalations import EscalationNotFound, page_query, split_cursor, ts
from actormesh_runtime.history.placement import place
from actormesh_runtime.priority import PRIORITY_ORDER
from actormesh_runtime.screening import redact

if TYPE_CHECKING:
    from actormesh_runtime.envelope import HistoryEvent
    from actormesh_runtime.history.store import HistoryStore

log = logging.getLogger(__name__)

ID_COLLISIONS = Counter(
    "actormesh_approval_id_collisions_total",
    "Approval requests whose id another idempotency key's request held: stored under the next free id.",
)

CURSOR_PATTERN = r"^[0-3]\|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z\|APR-[0-9a-f]{8,16}$"
"""An approvals page's cursor: priority rank | deadline | id of the previous page's last record."""


def filed_requests(events: Iterable[HistoryEvent]) -> list[ApprovalRecord]:
    """The events' approval records that are new requests of their own conversation
    (`approvals.filing_problem`); any other is left out and logged: a decision comes from a person,
    through `ApprovalStore.decide`, never from the history event that filed the request."""
    fresh = []
    for event in events:
        for record in event.approvals:
            problem = filing_problem(record, session_id=event.session_id, customer_email=event.customer_email)
            if problem is None:
                fresh.append(record)
            else:
                log.error(
                    "approval record in a history event not stored",
                    extra={"id": record.id, "message_id": event.message_id, "problem": problem},
                )
    return fresh


class ApprovalNotFound(EscalationNotFound):
    """No approval with that id (HTTP 404)."""


def _derived(key: str) -> list[str]:
    """The ids a request of idempotency key `key` may be stored under, in order."""
    return [approval_id(key, n) for n in range(MAX_ID_ATTEMPTS)]


def _candidates(record: ApprovalRecord) -> list[str]:
    """The ids `record` may be stored under, in order: the one it came with, then its key's."""
    return list(dict.fromkeys([record.id, *_derived(record.idempotency_key)]))


def _rank(record: ApprovalRecord) -> int:
    return record.priority.rank


def encode_cursor(record: ApprovalRecord) -> str:
    return f"{_rank(record)}|{ts(record.deadline_at)}|{record.id}"


def decode_cursor(cursor: str) -> tuple[int, str, str]:
    return split_cursor(CURSOR_PATTERN, cursor)


class ApprovalStore:
    def __init__(self, store: HistoryStore) -> None:
        self._store = store

    @property
    def db(self) -> aiosqlite.Connection:
        """The writer's connection (inside `writing()` only); reads outside it use `reading`."""
        return self._store.db

    async def insert(self, records: Iterable[ApprovalRecord]) -> dict[str, str]:
        """Add records nobody stored yet; the caller commits (with the turns). Returns the idempotency
        keys whose request is stored (now or before) under another id than the one it came with (that
        id was another key's request), and that id."""
        # The email as the rest of the store keeps it: erasure and the refund total match it as it is.
        records = [r.model_copy(update={"customer_email": normal_email(r.customer_email)}) for r in records]
        if not records:
            return {}
        # Every record's candidates in one read: `place` then needs none unless a batch runs out.
        candidates = [_candidates(r) for r in records]
        holders = await self._holders(list(dict.fromkeys(c for cs in candidates for c in cs)))
        placed: list[ApprovalRecord] = []
        moved: dict[str, str] = {}
        for record, its_candidates in zip(records, candidates, strict=True):
            stored_id = await self._place(record, its_candidates, holders)
            if stored_id is None:
                continue
            if stored_id != record.id:
                moved[record.idempotency_key] = stored_id
                record = record.model_copy(update={"id": stored_id})
            placed.append(record)
        rows = [
            (
                r.id,
                r.session_id,
                r.customer_email,
                r.state.value,
                _rank(r),
                ts(r.deadline_at),
                ts(r.created_at),
                _json(r),
            )
            for r in placed
        ]
        if rows:
            await self.db.executemany(
                "INSERT OR IGNORE INTO approvals (id, session_id, customer_email, state, priority_rank,"
                " deadline_at, created_at, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return moved

    async def _holders(self, ids: Sequence[str]) -> dict[str, str | None]:
        """Each of `ids` → the idempotency key of the request stored under it, None when it is free."""
        marks = ",".join("?" * len(ids))
        async with self.db.execute(
            f"SELECT id, json_extract(record, '$.idempotency_key') FROM approvals WHERE id IN ({marks})",
            list(ids),
        ) as cursor:
            taken = {row[0]: row[1] for row in await cursor.fetchall()}
        return {i: taken.get(i) for i in ids}

    async def _place(
        self, record: ApprovalRecord, candidates: list[str], holders: dict[str, str | None]
    ) -> str | None:
        """The id `record` is (or already was) stored under (`history.placement`): its key's stored
        request's, else its own unless another key's request holds it, else the first free of its key's
        candidates; None (logged) when all are taken. A record whose id is not derived from its key
        (made by hand) is not matched to another of that key's requests by id."""
        key = record.idempotency_key
        placed = await place(candidates, key, holders, self._holders, own_first=record.id in _derived(key))
        if placed is None:
            log.error(
                "approval request not stored: every candidate id is another key's",
                extra={"id": record.id, "idempotency_key": key, "message_id": record.message_id},
            )
            return None
        if placed.id != record.id and not placed.stored_before:
            ID_COLLISIONS.inc()
            log.error(
                "approval id collision: request stored under another id",
                extra={
                    "id": record.id,
                    "idempotency_key": key,
                    "held_by_idempotency_key": holders[record.id],
                    "stored_id": placed.id,
                    "message_id": record.message_id,
                },
            )
        return placed.id

    async def get(self, approval_id: str) -> ApprovalRecord | None:
        async with self._store.reading() as db:
            return await _get(db, approval_id)

    async def page(
        self, state: ApprovalState | None, limit: int, cursor: str | None, *, session_id: str | None = None
    ) -> tuple[list[ApprovalRecord], str | None]:
        """Most urgent first, then the nearest deadline (of one conversation when `session_id` is
        given); and the next page's cursor."""
        sql, params = page_query(
            "SELECT record FROM approvals",
            "priority_rank, deadline_at, id",
            state.value if state is not None else None,
            decode_cursor(cursor) if cursor else None,
            limit,
            session_id=session_id,
        )
        async with self._store.reading() as db, db.execute(sql, params) as cur:
            rows = await cur.fetchall()
        records = [ApprovalRecord.model_validate_json(r[0]) for r in rows]
        more = len(records) > limit
        records = records[:limit]
        return records, (encode_cursor(records[-1]) if more and records else None)

    async def unannounced(self, ids: Sequence[str]) -> list[ApprovalRecord]:
        marks = ",".join("?" * len(ids))
        async with (
            self._store.reading() as db,
            db.execute(
                f"SELECT record FROM approvals WHERE announced = 0 AND id IN ({marks})", list(ids)
            ) as cursor,
        ):
            return [ApprovalRecord.model_validate_json(r[0]) for r in await cursor.fetchall()]

    async def mark_announced(self, ids: Sequence[str]) -> None:
        async with self._store.writing():
            await self.db.executemany("UPDATE approvals SET announced = 1 WHERE id = ?", [(i,) for i in ids])

    async def approved_unexecuted(self, decided_before: datetime) -> list[ApprovalRecord]:
        """Approved requests whose action has no recorded result yet, decided before the given time."""
        async with (
            self._store.reading() as db,
            db.execute("SELECT record FROM approvals WHERE state = 'approved' AND executed = 0") as cursor,
        ):
            records = [ApprovalRecord.model_validate_json(r[0]) for r in await cursor.fetchall()]
        return [r for r in records if r.decision is not None and r.decision.at <= decided_before]

    async def pending_counts(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(PRIORITY_ORDER, 0)
        async with (
            self._store.reading() as db,
            db.execute(
                "SELECT priority_rank, COUNT(*) FROM approvals WHERE state = 'pending' GROUP BY priority_rank"
            ) as cursor,
        ):
            for rank, count in await cursor.fetchall():
                counts[PRIORITY_ORDER[int(rank)]] = int(count)
        return counts

    # ------------------------------------------------------------ changes

    async def decide(
        self, approval_id: str, verdict: Verdict, agent: str, *, amount: float | None, reason: str | None
    ) -> ApprovalRecord:
        """Record the decision (`DecisionRefused` 409, `InvalidDecision` 422, `ApprovalNotFound` 404). A
        denial is told to the customer at once (an agent turn); an approval once it has run."""
        async with self._store.writing():
            record = await _get(self.db, approval_id)
            if record is None:
                raise ApprovalNotFound(approval_id)
            refunded = 0.0
            if verdict == "approve" and record.action == REFUND:
                # Other requests of the same order (the customer asked twice, or for part, then the
                # rest): together they pay out at most its total. Its owner's requests are all it can
                # have, and the owner's are found by the index on the email.
                refunded = approved_refunds(
                    await self._of_customer(record.customer_email), record.order.order_id
                )
            decided = decide(
                record,
                verdict,
                agent,
                amount=amount,
                reason=redact(reason) if reason else None,
                refunded=refunded,
            )
            await self._save(decided)
            if verdict == "deny":
                await self._tell_customer(decided, agent, customer_message(decided))
        return decided

    async def _of_customer(self, email: str) -> list[ApprovalRecord]:
        async with self.db.execute(
            "SELECT record FROM approvals WHERE customer_email = ? AND state = 'approved'",
            (normal_email(email),),
        ) as cursor:
            return [ApprovalRecord.model_validate_json(r[0]) for r in await cursor.fetchall()]

    async def record_execution(
        self,
        approval_id: str,
        status: str,
        detail: str,
        reason: str | None = None,
        *,
        sent: bool | None = None,
    ) -> ApprovalRecord | None:
        """The approved mutation's result: audited (with `reason`, a failure's, for the agents, and
        whether the request was sent, `approvals.executed_what`), and told to the customer (`detail`).
        Idempotent: a second result for the same approval changes nothing (None)."""
        async with self._store.writing():
            async with self.db.execute(
                "SELECT executed, record FROM approvals WHERE id = ?", (approval_id,)
            ) as cursor:
                row = await cursor.fetchone()
            if row is None or row[0]:
                return None
            record = ApprovalRecord.model_validate_json(row[1])
            if record.decision is None:
                return None
            now = datetime.now(UTC)
            why = detail if reason is None else f"{detail} ({redact(reason)})"
            entry = AuditEntry(who=record.decision.by, at=now, what=executed_what(status, sent), why=why)
            done = record.model_copy(update={"audit": [*record.audit, entry]})
            text = customer_message(done) if status == "done" else f"{detail}"
            await self._save(done)
            await self.db.execute("UPDATE approvals SET executed = 1 WHERE id = ?", (approval_id,))
            await self._tell_customer(done, record.decision.by, text)
        return done

    async def reescalate_overdue(self, now: datetime) -> list[ApprovalRecord]:
        """Every pending request past its deadline, one step more urgent (never approved by default)."""
        async with self._store.writing():
            async with self.db.execute(
                "SELECT record FROM approvals WHERE state = 'pending' AND deadline_at <= ?", (ts(now),)
            ) as cursor:
                due = [ApprovalRecord.model_validate_json(r[0]) for r in await cursor.fetchall()]
            raised = [reescalate(r, now) for r in due]
            raised = [r for r, before in zip(raised, due, strict=True) if r is not before]
            for record in raised:
                await self._save(record)
        return raised

    async def _save(self, record: ApprovalRecord) -> None:
        await self.db.execute(
            "UPDATE approvals SET state = ?, priority_rank = ?, deadline_at = ?, record = ? WHERE id = ?",
            (record.state.value, _rank(record), ts(record.deadline_at), _json(record), record.id),
        )

    async def _tell_customer(self, record: ApprovalRecord, agent: str, text: str) -> None:
        now = datetime.now(UTC)
        await self.db.execute(
            "INSERT OR IGNORE INTO turns (session_id, message_id, role, customer_email, text, escalated,"
            " reference_id, actions, flags, created_at, author) VALUES (?, ?, 'agent', ?, ?, 0, ?, '[]',"
            ' \'["agent_reply", "approval"]\', ?, ?)',
            (
                record.session_id,
                f"{record.id}:{record.state.value}:{len(record.audit)}",
                record.customer_email,
                redact(text),
                record.ref or record.id,
                now.isoformat(),
                agent,
            ),
        )


async def _get(db: aiosqlite.Connection, approval_id: str) -> ApprovalRecord | None:
    async with db.execute("SELECT record FROM approvals WHERE id = ?", (approval_id,)) as cursor:
        row = await cursor.fetchone()
    return ApprovalRecord.model_validate_json(row[0]) if row else None


def _json(record: ApprovalRecord) -> str:
    return record.model_dump_json()

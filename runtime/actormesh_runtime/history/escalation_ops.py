"""The history service's escalation side: agent operations, the mesh's lookups, events and metrics.

`HistoryService` owns one `EscalationOps` and hands it:
- the escalation ops of `HistoryQuery` (list, show, claim, reply, resolve — asked by gateways on
  `Subjects.history_query`);
- every `EscalationLookup` on `Subjects.escalations_lookup` (actors: a customer's follow-up, answered
  only with that customer's own records; the queue behind a new escalation);
- the refs of each committed history batch, to announce new records on `escalations.created`
  before the batch is acked (so a crash in between re-announces; the stream drops the duplicate), and
  the error escalations the batch settled (a replay answered their message) or reclassified (a replay
  handed it over properly) on `escalations.updated`, the same way.
Every committed change is published as an `EscalationEvent` on `escalations.updated`, and the
metrics (open by priority, time to claim, time to resolve) are kept here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import Gauge, Histogram
from pydantic import ValidationError

from actormesh_runtime.bus.publish import MSG_ID_HEADER
from actormesh_runtime.catalog import Subjects
from actormesh_runtime.escalations import (
    AGENT_MAX_CHARS,
    NOTE_MAX_CHARS,
    REPLY_ID_PATTERN,
    REPLY_MAX_CHARS,
    EscalationEvent,
    EscalationLookup,
    EscalationRecord,
    EscalationState,
    LookupAnswer,
    Operation,
    TransitionRefused,
    follow_up_of,
)
from actormesh_runtime.history.escalations import EscalationNotFound, decode_cursor
from actormesh_runtime.history.protocol import HistoryAnswer, HistoryQuery, cursor_refusal, refused

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS

    from actormesh_runtime.history.store import HistoryStore

log = logging.getLogger(__name__)

# Minutes-to-days buckets: people answer in minutes, sometimes overnight.
_WAIT_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800)
OPEN = Gauge(
    "actormesh_escalations_open",
    "Escalations not resolved yet (open or claimed), by priority.",
    ["priority"],
)
TIME_TO_CLAIM = Histogram(
    "actormesh_escalation_time_to_claim_seconds",
    "From an escalation's creation to its claim by an agent.",
    ["priority"],
    buckets=_WAIT_BUCKETS,
)
TIME_TO_RESOLVE = Histogram(
    "actormesh_escalation_time_to_resolve_seconds",
    "From an escalation's creation to its resolution.",
    ["priority"],
    buckets=_WAIT_BUCKETS,
)


def _check_text(query: HistoryQuery, op: Operation) -> str | None:
    """Why the op's inputs are invalid (422), or None."""
    if not query.agent or not query.agent.strip() or len(query.agent) > AGENT_MAX_CHARS:
        return f"agent: 1-{AGENT_MAX_CHARS} characters"
    if op == "reply" and (not query.text or len(query.text) > REPLY_MAX_CHARS):
        return f"text: 1-{REPLY_MAX_CHARS} characters"
    if query.reply_id is not None and not re.fullmatch(REPLY_ID_PATTERN, query.reply_id):
        return "reply_id: 8-64 letters, digits, '_' or '-'"
    if op == "resolve" and query.text is not None and len(query.text) > NOTE_MAX_CHARS:
        return f"note: at most {NOTE_MAX_CHARS} characters"
    return None


class EscalationOps:
    def __init__(self, store: HistoryStore, subjects: Subjects) -> None:
        self.store = store
        self.records = store.escalations
        self.subjects = subjects
        self.nc: NATS | None = None

    # ------------------------------------------------------------ gateways' ops (history.query)

    async def answer(self, query: HistoryQuery) -> HistoryAnswer:
        if query.op == "escalations":
            if (refusal := cursor_refusal(query.cursor, decode_cursor)) is not None:
                return refusal
            records, cursor = await self.records.page(query.state, query.limit, query.cursor)
            return HistoryAnswer(escalations=records, next_cursor=cursor)
        if not query.ref:
            return refused("invalid", "ref is required")
        if query.op == "escalation":
            record = await self.records.get(query.ref)
            if record is None:
                return refused("not_found", f"no escalation {query.ref}")
            return HistoryAnswer(escalation=record)
        op: Operation = query.op.removeprefix("escalation_")  # type: ignore[assignment]
        problem = _check_text(query, op)
        if problem is not None:
            return refused("invalid", problem)
        assert query.agent is not None
        try:
            before, after = await self.records.transition(
                query.ref, op, query.agent.strip(), query.text, reply_id=query.reply_id
            )
        except EscalationNotFound:
            return refused("not_found", f"no escalation {query.ref}")
        except TransitionRefused as exc:
            return refused("conflict", str(exc))
        if after is not before:
            await self._changed(before, after, op)
        return HistoryAnswer(escalation=after)

    async def _changed(self, before: EscalationRecord, after: EscalationRecord, op: Operation) -> None:
        priority = after.priority.value
        if op == "claim" and after.claimed_at is not None:
            TIME_TO_CLAIM.labels(priority).observe((after.claimed_at - after.created_at).total_seconds())
        if op == "resolve" and after.resolved_at is not None:
            TIME_TO_RESOLVE.labels(priority).observe((after.resolved_at - after.created_at).total_seconds())
        change = {"claim": "claimed", "reply": "replied", "resolve": "resolved"}[op]
        event = EscalationEvent(
            type="escalation.updated",
            change=change,
            escalation=after,
            reply=after.replies[-1] if op == "reply" else None,
        )
        try:
            await self._publish(self.subjects.escalations_updated, event, None)
        except Exception as exc:  # committed already: the agent's change stands; live views catch up
            log.warning("escalation update not published", extra={"ref": after.ref, "error": repr(exc)})
        await self.refresh_gauge()

    # ------------------------------------------------------------ the mesh's lookups

    async def lookup(self, data: bytes) -> LookupAnswer:
        try:
            question = EscalationLookup.model_validate_json(data)
        except ValidationError as exc:
            return LookupAnswer(ok=False, error=f"bad lookup: {exc.error_count()} error(s)")
        if question.op == "queue":
            if question.priority is None:
                return LookupAnswer(ok=False, error="priority is required")
            # A chain run again (a lost ack, a crash after the escalation was stored) asks about an
            # escalation that exists: answer the queue in front of it, as the first run saw it, not
            # one that now counts the escalation itself, so the rerun quotes the same wait.
            # The record's message is said too: when it is another message's (two message ids whose
            # refs collide), the router asks again about its next candidate ref.
            stored = await self.records.get(question.refs[0]) if question.refs else None
            holder = stored.message_id if stored is not None else None
            if stored is not None and stored.state is EscalationState.OPEN:
                queue = await self.records.queue(stored.priority, behind=stored)
                return LookupAnswer(queue=queue, ref_message_id=holder)
            return LookupAnswer(queue=await self.records.queue(question.priority), ref_message_id=holder)
        if not question.customer_email:
            return LookupAnswer(ok=False, error="customer_email is required")
        owned = await self.records.for_customer(question.refs, question.customer_email)
        followups = []
        for ref in question.refs:
            record = owned.get(ref)
            followup = follow_up_of(record, ref)
            if record is not None and record.state is EscalationState.OPEN:
                followup.queue = await self.records.queue(record.priority, behind=record)
            followups.append(followup)
        return LookupAnswer(followups=followups)

    # ------------------------------------------------------------ announcing new records

    async def announce(self, refs: Sequence[str]) -> None:
        """Publish `escalations.created` for each stored, not yet announced record; raises on failure
        (the caller then leaves the batch unacked, so a redelivery announces again)."""
        if not refs:
            return
        fresh = await self.records.unannounced(refs)
        for record in fresh:
            event = EscalationEvent(type="escalation.created", change="created", escalation=record)
            await self._publish(self.subjects.escalations_created, event, f"{record.ref}:created")
        if fresh:
            await self.records.mark_announced([r.ref for r in fresh])
            await self.refresh_gauge()

    async def announce_settled(self, message_ids: Sequence[str]) -> None:
        """Publish `escalations.updated` (resolved) for the error escalations of `message_ids` that a
        replay's answer settled; raises on failure, like `announce` (a redelivered batch settles nothing
        twice and publishes again, and the stream drops the duplicate by its msg id). Consoles drop the
        record from the queue live; no time to resolve is observed: no person handled it."""
        settled = await self.records.settled_by_replay(message_ids)
        for record in settled:
            event = EscalationEvent(type="escalation.updated", change="resolved", escalation=record)
            await self._publish(self.subjects.escalations_updated, event, f"{record.ref}:settled")
        if settled:
            await self.refresh_gauge()

    async def announce_reclassified(self, refs: Sequence[str]) -> None:
        """Publish `escalations.updated` (reclassified) for the records among `refs` a replay reclassified;
        raises on failure, like `announce`. A redelivered batch publishes again: the stream drops the
        duplicate by its msg id, and a late copy only repeats the record as it is."""
        changed = await self.records.reclassified(refs)
        for record in changed:
            event = EscalationEvent(type="escalation.updated", change="reclassified", escalation=record)
            await self._publish(self.subjects.escalations_updated, event, f"{record.ref}:reclassified")
        if changed:
            await self.refresh_gauge()  # the open gauge counts by priority

    async def _publish(self, subject: str, event: EscalationEvent, msg_id: str | None) -> None:
        if self.nc is None:
            raise RuntimeError("not connected")
        headers = {MSG_ID_HEADER: msg_id} if msg_id else None
        await self.nc.jetstream().publish(
            subject,
            event.model_dump_json().encode(),
            stream=self.subjects.escalations_stream,
            headers=headers,
        )

    async def refresh_gauge(self) -> None:
        for priority, count in (await self.records.open_counts()).items():
            OPEN.labels(priority.value).set(count)

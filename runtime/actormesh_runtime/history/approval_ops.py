"""The history service's approval side: decisions, execution, deadlines, events and metrics.

- `answer`: the approval ops of `HistoryQuery` (list, show, approve, deny — asked by gateways). An
  approval is committed, then handed to execution_coordinator as a durable command on
  `Subjects.approvals_execute` (JetStream, msg id `<id>:approved`: a double click or a retried publish
  runs it once, and the mutation carries `approvals.mutation_key`, so the commerce API applies it once
  even if the command is redelivered). A denial is told to the customer at once.
- `consume_outcomes`: execution_coordinator's results on `Subjects.approvals_outcome` (durable pull
  consumer), recorded in the audit trail and told to the customer; acked after the commit.
- `sweep`: every `SWEEP_INTERVAL_S`, pending requests past their deadline are re-escalated (one step
  more urgent, audited, counted) — never approved by default.
- `announce`: new records on `approvals.created` before the history batch is acked (like escalations).
Every change is published on `approvals.updated`; an event with `reply` is delivered by the gateways
to the customer's sockets as an `agent_reply`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Gauge, Histogram
from pydantic import BaseModel, ConfigDict, ValidationError

from actormesh_runtime.approvals import (
    REASON_MAX_CHARS,
    ApprovalCommand,
    ApprovalOutcome,
    ApprovalRecord,
    DecisionForbidden,
    DecisionRefused,
    InvalidDecision,
    Verdict,
    customer_message,
)
from actormesh_runtime.bus.publish import MSG_ID_HEADER
from actormesh_runtime.bus.pull import PullFeed, pull_forever
from actormesh_runtime.bus.reconcile import restore_consumer
from actormesh_runtime.cancellation import cancel_and_wait
from actormesh_runtime.catalog import Subjects
from actormesh_runtime.escalations import AGENT_MAX_CHARS, AgentReply
from actormesh_runtime.history.approvals import ApprovalNotFound, decode_cursor
from actormesh_runtime.history.protocol import HistoryAnswer, HistoryQuery, cursor_refusal, refused

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS

    from actormesh_runtime.history.store import HistoryStore

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 30.0
RESEND_AFTER = timedelta(minutes=1)
"""An approved action with no result after this long is handed to execution_coordinator again."""
PENDING = Gauge(
    "actormesh_approvals_pending", "Approval requests waiting for a decision, by priority.", ["priority"]
)
TIME_TO_DECIDE = Histogram(
    "actormesh_approval_time_to_decide_seconds",
    "From an approval request's creation to its decision.",
    ["priority", "verdict"],
    buckets=(30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800),
)
REESCALATED = Counter(
    "actormesh_approvals_reescalated",
    "Approval requests re-escalated after their deadline passed.",
    ["priority"],
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApprovalEvent(_Model):
    """Published on `approvals.created` / `approvals.updated` after the change is committed."""

    type: Literal["approval.created", "approval.updated"]
    change: Literal["created", "approved", "denied", "executed", "reescalated"]
    approval: ApprovalRecord
    reply: AgentReply | None = None
    """What the customer was told (denied, executed): gateways deliver it to the session's sockets."""


def outcome_consumer_config(subjects: Subjects) -> ConsumerConfig:
    name = subjects.approvals_outcome_consumer
    return ConsumerConfig(
        name=name,
        durable_name=name,
        description=f"ActorMesh {subjects.mesh}: results of approved actions, for the history store",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=30.0,
        max_deliver=-1,
        filter_subject=subjects.approvals_outcome,
    )


class ApprovalOps:
    def __init__(self, store: HistoryStore, subjects: Subjects) -> None:
        self.records = store.approvals
        self.subjects = subjects
        self.nc: NATS | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._sub: Any = None

    # ------------------------------------------------------------ lifecycle (HistoryService)

    async def start(self, nc: NATS, stopping: asyncio.Event) -> None:
        self.nc = nc
        js = nc.jetstream()
        self._sub = await js.pull_subscribe(
            self.subjects.approvals_outcome,
            durable=self.subjects.approvals_outcome_consumer,
            stream=self.subjects.stream,
            config=outcome_consumer_config(self.subjects),
        )
        self._tasks = [
            asyncio.create_task(self._consume(stopping), name="approval-outcomes"),
            asyncio.create_task(self._sweep_forever(stopping), name="approval-deadlines"),
        ]
        await self.refresh_gauge()

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    # ------------------------------------------------------------ gateways' ops (history.query)

    async def answer(self, query: HistoryQuery) -> HistoryAnswer:
        if query.op == "approvals":
            if (refusal := cursor_refusal(query.cursor, decode_cursor)) is not None:
                return refusal
            records, cursor = await self.records.page(
                query.approval_state, query.limit, query.cursor, session_id=query.session_id
            )
            return HistoryAnswer(approvals=records, next_cursor=cursor)
        if not query.approval_id:
            return refused("invalid", "id is required")
        if query.op == "approval":
            record = await self.records.get(query.approval_id)
            if record is None:
                return refused("not_found", f"no approval {query.approval_id}")
            return HistoryAnswer(approval=record)
        if not query.agent or not query.agent.strip() or len(query.agent) > AGENT_MAX_CHARS:
            return refused("invalid", f"agent: 1-{AGENT_MAX_CHARS} characters")
        if query.text is not None and len(query.text) > REASON_MAX_CHARS:
            return refused("invalid", f"reason: at most {REASON_MAX_CHARS} characters")
        verdict: Verdict = "approve" if query.op == "approval_approve" else "deny"
        try:
            decided = await self.records.decide(
                query.approval_id, verdict, query.agent.strip(), amount=query.amount, reason=query.text
            )
        except ApprovalNotFound:
            return refused("not_found", f"no approval {query.approval_id}")
        except DecisionForbidden as exc:
            return refused("forbidden", str(exc))
        except DecisionRefused as exc:
            return refused("conflict", str(exc))
        except InvalidDecision as exc:
            return refused("invalid", str(exc))
        await self._decided(decided, verdict)
        return HistoryAnswer(approval=decided)

    async def _decided(self, record: ApprovalRecord, verdict: Verdict) -> None:
        assert record.decision is not None
        seconds = (record.decision.at - record.created_at).total_seconds()
        TIME_TO_DECIDE.labels(record.priority, verdict).observe(max(0.0, seconds))
        reply = None
        if verdict == "approve":
            await self._execute(record)
        else:
            reply = AgentReply(agent=record.decision.by, text=_last_turn_text(record), at=record.decision.at)
        await self._event("updated", "approved" if verdict == "approve" else "denied", record, reply)
        await self.refresh_gauge()

    async def _execute(self, record: ApprovalRecord) -> None:
        """Hand the approved action to execution_coordinator (durable; de-duplicated per approval). If
        the publish fails, the decision stands and the sweep publishes it again."""
        try:
            assert self.nc is not None
            await self.nc.jetstream().publish(
                self.subjects.approvals_execute,
                ApprovalCommand(approval=record).model_dump_json().encode(),
                stream=self.subjects.stream,
                headers={MSG_ID_HEADER: f"{record.id}:approved"},
            )
        except Exception as exc:
            log.warning("approved action not handed over yet", extra={"id": record.id, "error": repr(exc)})

    # ------------------------------------------------------------ results of approved actions

    async def _consume(self, stopping: asyncio.Event) -> None:
        assert self.nc is not None
        js, config = self.nc.jetstream(), outcome_consumer_config(self.subjects)
        # Created again as declared should it vanish: approved actions' outcomes would wait unstored.
        await pull_forever(
            PullFeed(self._sub, self.nc), 16, 1.0, self._outcome, stopping=stopping,
            restore=lambda: restore_consumer(js, self.subjects.stream, config),
        )  # fmt: skip

    async def _outcome(self, msg: Any) -> None:
        try:
            outcome = ApprovalOutcome.model_validate_json(msg.data)
        except ValidationError:
            log.error("invalid approval outcome terminated")
            await msg.term()
            return
        try:
            done = await self.records.record_execution(
                outcome.approval_id, outcome.status, outcome.detail, outcome.reason, sent=outcome.sent
            )
            if done is not None and done.decision is not None:
                reply = AgentReply(
                    agent=done.decision.by, text=_last_turn_text(done, outcome), at=datetime.now(UTC)
                )
                await self._event("updated", "executed", done, reply)
        except Exception:
            log.exception("approval outcome not recorded; it will be redelivered")
            with contextlib.suppress(Exception):
                await msg.nak(delay=2.0)
            return
        await msg.ack()

    # ------------------------------------------------------------ deadlines

    async def _sweep_forever(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.sweep(datetime.now(UTC))
            except Exception:  # the next sweep tries again; an overdue request must not go unnoticed
                log.exception("approval deadline sweep failed")
            await asyncio.sleep(SWEEP_INTERVAL_S)

    async def sweep(self, now: datetime) -> list[ApprovalRecord]:
        """Re-escalate what is overdue; publish each change. Returns the re-escalated records."""
        raised = await self.records.reescalate_overdue(now)
        for stuck in await self.records.approved_unexecuted(now - RESEND_AFTER):
            await self._execute(stuck)  # the first hand-over failed or was lost: same msg id, same key
        for record in raised:
            REESCALATED.labels(record.priority).inc()
            await self._event("updated", "reescalated", record, None)
        if raised:
            await self.refresh_gauge()
        return raised

    # ------------------------------------------------------------ announcing and events

    async def announce(self, ids: Sequence[str]) -> None:
        """`approvals.created` for stored, not yet announced records; raises on failure (the history
        batch is then not acked, and a redelivery announces again)."""
        if not ids:
            return
        fresh = await self.records.unannounced(ids)
        for record in fresh:
            await self._publish(
                self.subjects.approvals_created,
                ApprovalEvent(type="approval.created", change="created", approval=record),
                f"{record.id}:created",
            )
        if fresh:
            await self.records.mark_announced([r.id for r in fresh])
            await self.refresh_gauge()

    async def _event(
        self, kind: Literal["updated"], change: str, record: ApprovalRecord, reply: AgentReply | None
    ) -> None:
        event = ApprovalEvent(type="approval.updated", change=change, approval=record, reply=reply)
        try:
            await self._publish(self.subjects.approvals_updated, event, None)
        except Exception as exc:  # committed already; live views catch up on reload
            log.warning("approval update not published", extra={"id": record.id, "error": repr(exc)})

    async def _publish(self, subject: str, event: ApprovalEvent, msg_id: str | None) -> None:
        if self.nc is None:
            raise RuntimeError("not connected")
        await self.nc.jetstream().publish(
            subject,
            event.model_dump_json().encode(),
            stream=self.subjects.escalations_stream,
            headers={MSG_ID_HEADER: msg_id} if msg_id else None,
        )

    async def refresh_gauge(self) -> None:
        for priority, count in (await self.records.pending_counts()).items():
            PENDING.labels(priority).set(count)


def _last_turn_text(record: ApprovalRecord, outcome: ApprovalOutcome | None = None) -> str:
    if outcome is not None and outcome.status != "done":
        return outcome.detail
    return customer_message(record)

"""The history service: the single writer of the conversation store (`actormesh history`).

It consumes `HistoryEvent`s from the mesh's work-queue stream through one durable pull consumer
(`Subjects.history_consumer`), so events published while it is down or restarting wait in JetStream
and nothing is lost; a batch is acked only after its SQLite transaction committed. It answers reads
(`HistoryQuery`) on `Subjects.history_query` by core NATS request/reply, so gateways and tools never
open the file; and the actors' two questions: escalation lookups (`Subjects.escalations_lookup`) and
what it stored for a message (`Subjects.stored_answers`, asked by a redelivered response_aggregator);
and `actormesh erase` on `Subjects.history_erase` (only the admin user may ask: history/erasure.py).
Run one replica (in Kubernetes: a one-replica StatefulSet with a volume).

Used by `commands/history.py`, by `actormesh dev` (in-process) and by the integration tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter
from pydantic import BaseModel, ValidationError

from actormesh_runtime.bus.connection import open_bus
from actormesh_runtime.bus.pull import PullFeed, pull_batches
from actormesh_runtime.bus.queue_metrics import QueueMetrics
from actormesh_runtime.bus.reconcile import restore_consumer
from actormesh_runtime.bus.server_metrics import NatsServerMetrics
from actormesh_runtime.catalog import Subjects
from actormesh_runtime.envelope import HistoryEvent
from actormesh_runtime.escalations import LookupAnswer
from actormesh_runtime.history.approval_ops import ApprovalOps
from actormesh_runtime.history.backup import (
    BackupLoop,
    PreMigrationRetention,
    WriterLock,
    backup_loop,
    hold_writer_lock,
    pre_migration_retention,
    take_pre_migration_snapshot,
)
from actormesh_runtime.history.checkpoint import Checkpointer
from actormesh_runtime.history.concurrent import Concurrent
from actormesh_runtime.history.erasure import erase_customer
from actormesh_runtime.history.escalation_ops import EscalationOps
from actormesh_runtime.history.escalations import reclassify_candidates, settle_candidates
from actormesh_runtime.history.protocol import (
    APPROVAL_OPS,
    ESCALATION_OPS,
    ErasureAnswer,
    ErasureRequest,
    HistoryAnswer,
    HistoryQuery,
)
from actormesh_runtime.history.retention import RetentionLoop, retention_loop
from actormesh_runtime.history.store import SCHEMA_VERSION, HistoryStore
from actormesh_runtime.observability import tracing
from actormesh_runtime.replies.result import StoredAnswer
from actormesh_runtime.screening import describe_invalid
from actormesh_runtime.settings import RuntimeSettings

log = logging.getLogger(__name__)

EVENTS_STORED = Counter("actormesh_history_events_stored", "History events written to SQLite.")
EVENTS_REJECTED = Counter(
    "actormesh_history_events_rejected", "History events that were not valid (terminated)."
)
QUERIES = Counter("actormesh_history_queries", "Read requests answered, by operation.", ["op"])

FETCH_BATCH = 64
FETCH_WAIT_S = 1.0
ACK_WAIT_S = 30.0
QUERY_QUEUE_GROUP = "history"
QUERY_CONCURRENCY = 32
"""Queries (and lookups) answered at once; SQLite serialises the statements, but an op that waits on
NATS no longer makes the others wait."""
QUERY_DRAIN_S = 5.0


def history_consumer_config(subjects: Subjects) -> ConsumerConfig:
    """Durable, explicit acks, unlimited deliveries: a history event is never given up on."""
    return ConsumerConfig(
        name=subjects.history_consumer,
        durable_name=subjects.history_consumer,
        description=f"ActorMesh {subjects.mesh}: the history store's single writer",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT_S,
        max_deliver=-1,
        filter_subject=subjects.history_events,
        max_ack_pending=FETCH_BATCH * 4,
    )


class HistoryService:
    """Owns the store, the consumer loop and the query responder. `async with` or start()/stop()."""

    def __init__(
        self, settings: RuntimeSettings, *, nc: NATS | None = None, db_path: str | None = None
    ) -> None:
        self.settings = settings
        self.subjects = Subjects(settings.mesh_name)
        self.store = HistoryStore(
            db_path or settings.sqlite_db_path, before_migrating=self._snapshot_before_migrating
        )
        self._nc = nc
        self._owns_nc = nc is None
        self._tasks: list[asyncio.Task[None]] = []
        self._query_sub: Any = None
        self._lookup_sub: Any = None
        self._stored_sub: Any = None
        self._erase_sub: Any = None
        # Answered concurrently: a slow op (a decision waiting on JetStream) never holds the claims.
        self._queries = Concurrent(self._answer, limit=QUERY_CONCURRENCY)
        self._lookups = Concurrent(self._answer_lookup, limit=QUERY_CONCURRENCY)
        self._stored = Concurrent(self._answer_stored, limit=QUERY_CONCURRENCY)
        self._erasures = Concurrent(self._answer_erasure, limit=1)
        self._pull_sub: Any = None
        self.checkpointer = Checkpointer(self.store)
        self.escalation_ops = EscalationOps(self.store, self.subjects)
        self.approval_ops = ApprovalOps(self.store, self.subjects)
        self._stopping = asyncio.Event()
        self.consumer_bound = False
        self.queue_metrics: QueueMetrics | None = None
        """The mesh's queue gauges: this single-replica service is the one process that reports them."""
        self._writer_lock: WriterLock | None = None
        self.server_metrics: NatsServerMetrics | None = None
        """The NATS servers' own figures (NATS_MONITOR_URLS), reported by this one process too."""
        self.backups: BackupLoop | None = None
        """Snapshots of the store (history/backup.py), when HISTORY_BACKUP_DIR is set."""
        self.retention: RetentionLoop | None = None
        """Deletes old conversations (history/retention.py), when HISTORY_RETENTION_DAYS is set."""

    @property
    def nc(self) -> NATS:
        if self._nc is None:
            raise RuntimeError("history service is not started")
        return self._nc

    def missing(self) -> list[str]:
        """What keeps the service from being ready (empty = ready), for /readyz."""
        problems = []
        if self._nc is None or not self._nc.is_connected:
            problems.append("nats not connected")
        if not self.consumer_bound:
            problems.append(f"consumer {self.subjects.history_consumer} not bound")
        if self.store.migrating is not None:
            old, new = self.store.migrating
            problems.append(f"store migrating from schema v{old} to v{new}")
        elif self.store._db is None:
            problems.append("store not open")
        return problems

    async def _snapshot_before_migrating(self, from_version: int, to_version: int) -> None:
        """The way back from an upgrade: the store as the previous release left it, taken before the
        first migration changes it (docs/backups.md, "Upgrades"). Only with a backup directory; when it
        cannot be written the store is not migrated and the service does not start."""
        directory = self.settings.history_backup_dir
        if not directory:
            log.warning(
                "history store migrated without a snapshot first: HISTORY_BACKUP_DIR is not set",
                extra={"from_version": from_version, "to_version": to_version},
            )
            return
        try:
            await take_pre_migration_snapshot(
                self.store.path, directory, from_version, to_version, retention=self._pre_migration()
            )
        except Exception as exc:
            raise RuntimeError(
                f"no snapshot of {self.store.path} could be written to {directory} before migrating it"
                f" from schema v{from_version} to v{to_version}, so it was not migrated"
                f" ({type(exc).__name__}: {exc}); make room on the backup volume (or grow it) and start"
                " again, or switch backups off to migrate without a snapshot"
            ) from exc

    def _pre_migration(self) -> PreMigrationRetention:
        """Which copies taken before migrations are kept (docs/backups.md, "Upgrades")."""
        return pre_migration_retention(self.settings, SCHEMA_VERSION)

    async def start(self) -> None:
        """Open the store, connect, subscribe, start the loops; on any failure, undo what was started
        (an open store keeps a thread that would keep the process from exiting) and raise."""
        try:
            await self._start()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.stop()
            raise

    async def _start(self) -> None:
        self._stopping.clear()
        self._writer_lock = await asyncio.to_thread(hold_writer_lock, self.store.path)
        await self.store.open()
        await self.checkpointer.start()
        name = f"actormesh-history-{self.settings.mesh_name}"
        self._nc = await open_bus(self.settings, name=name, nc=self._nc)
        js = self._nc.jetstream()
        self._query_sub = await self._nc.subscribe(
            self.subjects.history_query, queue=QUERY_QUEUE_GROUP, cb=self._queries.dispatch
        )
        self.escalation_ops.nc = self._nc
        self._lookup_sub = await self._nc.subscribe(
            self.subjects.escalations_lookup, queue=QUERY_QUEUE_GROUP, cb=self._lookups.dispatch
        )
        self._stored_sub = await self._nc.subscribe(
            self.subjects.stored_answers, queue=QUERY_QUEUE_GROUP, cb=self._stored.dispatch
        )
        self._erase_sub = await self._nc.subscribe(
            self.subjects.history_erase, queue=QUERY_QUEUE_GROUP, cb=self._erasures.dispatch
        )
        await self.escalation_ops.refresh_gauge()
        await self.approval_ops.start(self._nc, self._stopping)
        sub = await js.pull_subscribe(
            self.subjects.history_events,
            durable=self.subjects.history_consumer,
            stream=self.subjects.stream,
            config=history_consumer_config(self.subjects),
        )
        self._pull_sub = feed = PullFeed(sub, self._nc)
        self.consumer_bound = True
        self._tasks.append(asyncio.create_task(self._consume(feed), name="history-consume"))
        self.queue_metrics = QueueMetrics(
            js, self.subjects, interval_s=self.settings.queue_metrics_interval_s
        )
        self.queue_metrics.start()
        s = self.settings
        monitor_urls = (s.nats_monitor_urls or "").split(",")
        self.server_metrics = NatsServerMetrics(monitor_urls, interval_s=s.queue_metrics_interval_s)
        self.server_metrics.start()
        self.backups = backup_loop(
            self.store.path,
            s.history_backup_dir,
            interval_s=s.history_backup_interval_s,
            keep=s.history_backup_retention,
            pre_migration=self._pre_migration(),
        )
        if self.backups is not None:
            self.backups.start()
        self.retention = retention_loop(self.store, s.history_retention_days)
        if self.retention is not None:
            self.retention.start()
        log.info("history service started", extra={"db": str(self.store.path), "mesh": self.subjects.mesh})

    async def stop(self) -> None:
        """Stop fetching, let the current batch commit, then close. Unacked events are redelivered later."""
        self._stopping.set()
        await self.approval_ops.stop()
        if self.queue_metrics is not None:
            await self.queue_metrics.stop()
        if self.backups is not None:
            await self.backups.stop()
        if self.retention is not None:
            await self.retention.stop()
        if self.server_metrics is not None:
            await self.server_metrics.stop()
        for task in self._tasks:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=FETCH_WAIT_S + 5)
        self._tasks.clear()
        # Unsubscribe all, or a later drain of a shared connection waits on them forever.
        for sub in (self._query_sub, self._lookup_sub, self._stored_sub, self._erase_sub, self._pull_sub):
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
        self._query_sub = self._lookup_sub = self._stored_sub = self._erase_sub = self._pull_sub = None
        for answers in (self._queries, self._lookups, self._stored, self._erasures):
            await answers.wait(QUERY_DRAIN_S)
        self.consumer_bound = False
        if self._owns_nc and self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.drain()
            self._nc = None
        await self.checkpointer.stop()
        await self.store.close()
        if self._writer_lock is not None:
            self._writer_lock.release()
            self._writer_lock = None

    async def __aenter__(self) -> HistoryService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------ writer

    async def _consume(self, feed: PullFeed) -> None:
        # A consumer gone (deleted or made push based by hand, its stream deleted and made again by
        # the actors, the store wiped) is created again as declared: asked again for ever, it would
        # leave events piling up unstored (docs/bus.md, "When the bus changes").
        await pull_batches(
            feed, FETCH_BATCH, FETCH_WAIT_S, self._write_batch,
            restore=self._restore_consumer, stopping=self._stopping, pause_s=FETCH_WAIT_S,
        )  # fmt: skip

    async def _restore_consumer(self) -> None:
        assert self._nc is not None
        await restore_consumer(
            self._nc.jetstream(), self.subjects.stream, history_consumer_config(self.subjects)
        )

    async def _write_batch(self, msgs: list[Msg]) -> None:
        events: list[HistoryEvent] = []
        good: list[Msg] = []
        for msg in msgs:
            try:
                events.append(HistoryEvent.model_validate_json(msg.data))
                good.append(msg)
            except ValidationError as exc:
                EVENTS_REJECTED.inc()
                log.error("invalid history event terminated", extra={"error": describe_invalid(exc)[:500]})
                await msg.term()
        if not events:
            return
        traced = [
            (m.headers, {"actormesh.message_id": e.message_id}) for m, e in zip(good, events, strict=True)
        ]
        try:
            with tracing.batch_spans("history store", traced):  # spans only when exporting
                added = await self.store.add_events(events)
            # New escalation records are announced before the ack: a crash in between announces
            # again on redelivery (the events stream drops the duplicate by its msg id).
            await self.escalation_ops.announce([e.escalation.ref for e in events if e.escalation is not None])
            await self.escalation_ops.announce_settled(settle_candidates(events))
            await self.escalation_ops.announce_reclassified([r.ref for r in reclassify_candidates(events)])
            await self.approval_ops.announce([a.id for e in events for a in e.approvals])
        except Exception:
            # Not acked: JetStream redelivers after ack_wait; the insert is idempotent.
            log.exception("history write failed; events will be redelivered")
            for msg in good:
                with contextlib.suppress(Exception):
                    await msg.nak(delay=2.0)
            return
        for msg in good:
            await msg.ack()
        EVENTS_STORED.inc(len(events))
        log.debug("history stored", extra={"events": len(events), "turns": added})

    # ------------------------------------------------------------ reads

    async def _answer(self, msg: Msg) -> None:
        try:
            answer = await self._query(HistoryQuery.model_validate_json(msg.data))
        except ValidationError as exc:
            answer = HistoryAnswer(ok=False, error=f"bad query: {exc.error_count()} error(s)")
        except Exception as exc:
            log.exception("history query failed")
            answer = HistoryAnswer(ok=False, error=type(exc).__name__)
        await _respond(msg, answer)

    async def _answer_lookup(self, msg: Msg) -> None:
        """An actor's escalation lookup (`escalations.EscalationLookup`)."""
        QUERIES.labels("escalation_lookup").inc()
        try:
            answer = await self.escalation_ops.lookup(msg.data)
        except Exception as exc:
            log.exception("escalation lookup failed")
            answer = LookupAnswer(ok=False, error=type(exc).__name__)
        # `ref_message_id` only when set: a previous release's router forbids fields it does not know.
        await _respond(msg, answer, exclude={"ref_message_id"} if answer.ref_message_id is None else None)

    async def _answer_stored(self, msg: Msg) -> None:
        """response_aggregator's question when a chain runs again: the result stored for a message id."""
        QUERIES.labels("stored_answer").inc()
        message_id = msg.data.decode(errors="replace")
        try:
            if not message_id:
                answer = StoredAnswer(ok=False, error="the request must be a message id")
            else:
                stored = await self.store.result(message_id)
                answer = StoredAnswer(result=stored.result if stored is not None else None)
        except Exception as exc:
            log.exception("stored answer lookup failed")
            answer = StoredAnswer(ok=False, error=type(exc).__name__)
        await _respond(msg, answer)

    async def _answer_erasure(self, msg: Msg) -> None:
        """`actormesh erase`: the customer's records erased (or counted, dry run); the queue gauges
        follow, since open escalations and pending approvals may have gone."""
        QUERIES.labels("erase").inc()
        try:
            request = ErasureRequest.model_validate_json(msg.data)
            erased = await erase_customer(self.store, request.customer_email, dry_run=request.dry_run)
            if not request.dry_run:
                await self.escalation_ops.refresh_gauge()
                await self.approval_ops.refresh_gauge()
            answer = ErasureAnswer(dry_run=request.dry_run, erased=erased)
        except ValidationError as exc:
            answer = ErasureAnswer(ok=False, error=f"bad request: {exc.error_count()} error(s)")
        except ValueError as exc:
            answer = ErasureAnswer(ok=False, error=str(exc))
        except Exception as exc:
            log.exception("erasure failed")
            answer = ErasureAnswer(ok=False, error=type(exc).__name__)
        await _respond(msg, answer)

    async def _query(self, query: HistoryQuery) -> HistoryAnswer:
        QUERIES.labels(query.op).inc()
        if query.op == "ping":
            return HistoryAnswer()
        if query.op in ESCALATION_OPS:
            return await self.escalation_ops.answer(query)
        if query.op in APPROVAL_OPS:
            return await self.approval_ops.answer(query)
        if query.op == "conversation":
            if not query.session_id:
                return HistoryAnswer(ok=False, error="session_id is required")
            turns = await self.store.conversation(
                query.session_id, customer_email=query.customer_email, limit=query.limit
            )
            return HistoryAnswer(turns=[t.model_dump(mode="json") for t in turns])
        if query.op == "claim":
            if not query.session_id or not query.customer_email:
                return HistoryAnswer(ok=False, error="session_id and customer_email are required")
            owner = await self.store.claim_session(query.session_id, query.customer_email)
            return HistoryAnswer(customer_email=owner)
        if not query.message_id:
            return HistoryAnswer(ok=False, error="message_id is required")
        stored = await self.store.result(query.message_id)
        if stored is None:
            return HistoryAnswer()
        return HistoryAnswer(result=stored.result, customer_email=stored.customer_email)


async def _respond(msg: Msg, answer: BaseModel, *, exclude: set[str] | None = None) -> None:
    """Answer a request; a requester that gave up (or a lost connection) is not an error here."""
    if msg.reply:
        with contextlib.suppress(Exception):
            await msg.respond(answer.model_dump_json(exclude=exclude).encode())

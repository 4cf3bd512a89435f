"""Queue gauges: how far behind each consumer is, the dead-letter depth and the streams' size.

These figures are JetStream's shared state, the same whichever process asks. Every replica of an
actor reporting its own consumer would multiply each series by the replica count (and the series
would vanish exactly when all replicas of an actor crash, when the backlog matters most), so exactly
one process per mesh runs `QueueMetrics`: the history service (one replica by design), which in
`actormesh dev` lives in the gateway's process and so shows on the gateway's /metrics.

The gauges live in `observability.metrics`; docs/metrics.md documents them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError
from prometheus_client import Gauge

from actormesh_runtime.cancellation import cancel_and_wait, cancel_requested
from actormesh_runtime.catalog import ActorName, DeadLetterReason, Subjects
from actormesh_runtime.observability import metrics

log = logging.getLogger(__name__)

UNKNOWN_REASON = "unknown"
"""`reason` label of records stored before the reason was part of the subject (`dlq.<actor>`)."""
WORK_STREAM = "work"
DEAD_LETTER_STREAM = "dead_letter"


def consumers(subjects: Subjects) -> list[str]:
    """The durable consumers reported: one per actor, and the history writer."""
    return [subjects.consumer(a) for a in ActorName] + [subjects.history_consumer]


def dead_letter_counts(subjects: Subjects, per_subject: dict[str, int]) -> dict[tuple[str, str], int]:
    """(actor, reason) → records, from the DLQ stream's per-subject counts. Every known actor and reason
    is present (zero when empty), so a rule like `delta(...) > 0` has a series to compare with."""
    counts = {(a.value, r.value): 0 for a in ActorName for r in DeadLetterReason}
    prefix = subjects.dlq_prefix + "."
    for subject, n in per_subject.items():
        if not subject.startswith(prefix):
            continue
        actor, _, reason = subject[len(prefix) :].partition(".")
        key = (actor, reason or UNKNOWN_REASON)
        counts[key] = counts.get(key, 0) + n
    return counts


def _remove(gauge: Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)


class QueueMetrics:
    """Refreshes the queue gauges every `interval_s` (`start`/`stop`), or once per `refresh()` call."""

    def __init__(self, js: JetStreamContext, subjects: Subjects, *, interval_s: float) -> None:
        self.js = js
        self.subjects = subjects
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._dead_letter_keys: set[tuple[str, str]] = set()

    async def refresh(self) -> None:
        """Read every consumer and both streams, then set all gauges at once (no await in between, so
        a scrape never sees half a refresh). Raises when NATS does not answer."""
        infos = {c: await self._consumer_info(c) for c in consumers(self.subjects)}
        work = await self.js.stream_info(self.subjects.stream)
        dlq = await self.js.stream_info(
            self.subjects.dlq_stream, subjects_filter=self.subjects.dlq_prefix + ".>"
        )
        for consumer, info in infos.items():
            self._set_consumer(consumer, info)
        metrics.STREAM_MESSAGES.labels(WORK_STREAM).set(work.state.messages)
        metrics.STREAM_BYTES.labels(WORK_STREAM).set(work.state.bytes)
        metrics.STREAM_MESSAGES.labels(DEAD_LETTER_STREAM).set(dlq.state.messages)
        metrics.STREAM_BYTES.labels(DEAD_LETTER_STREAM).set(dlq.state.bytes)
        counts = dead_letter_counts(self.subjects, dlq.state.subjects or {})
        for key in self._dead_letter_keys - counts.keys():
            _remove(metrics.DEAD_LETTERS, *key)
        for key, n in counts.items():
            metrics.DEAD_LETTERS.labels(*key).set(n)
        self._dead_letter_keys = set(counts)
        metrics.NATS_UP.set(1)
        metrics.QUEUE_METRICS_UPDATED.set(time.time())

    async def _consumer_info(self, consumer: str) -> ConsumerInfo | None:
        try:
            info: ConsumerInfo = await self.js.consumer_info(self.subjects.stream, consumer)
        except NotFoundError:
            return None
        return info

    @staticmethod
    def _set_consumer(consumer: str, info: ConsumerInfo | None) -> None:
        gauges = (
            metrics.QUEUE_PENDING,
            metrics.QUEUE_ACK_PENDING,
            metrics.QUEUE_REDELIVERED,
            metrics.QUEUE_WAITING,
        )
        if info is None:
            # Disabled actor, or not started yet: no series rather than a misleading zero.
            for gauge in gauges:
                _remove(gauge, consumer)
            return
        values = (info.num_pending, info.num_ack_pending, info.num_redelivered, info.num_waiting)
        for gauge, value in zip(gauges, values, strict=True):
            gauge.labels(consumer).set(value or 0)

    def start(self) -> None:
        if self.interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="queue-metrics")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # NATS away or slow: keep the last values, count, try again
                if not cancel_requested():
                    metrics.QUEUE_METRICS_ERRORS.inc()
                    metrics.NATS_UP.set(0)
                    log.warning("queue metrics not refreshed", extra={"error": repr(exc)})
            if cancel_requested():
                # stop()'s cancel can be lost inside refresh() (see cancellation.py): end here,
                # sleeping on would leave stop() waiting forever.
                raise asyncio.CancelledError
            await asyncio.sleep(self.interval_s)

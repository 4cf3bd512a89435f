"""The actor host: pulls envelopes for one actor from its durable consumer and does everything the
actor does not (see `actors/base.py`).

Per message: decode → deadline check → `actor.handle` under a timeout → trace entry → advance the
slip → acked, de-duplicated publish to the next step → ack. A crash between publish and ack
redelivers the message and the republish is dropped by the stream's duplicate window, so every hop
happens once. Failures: transient ones are nak'ed with the backoff for that attempt; a permanent
error, or the last delivery failing, takes the error path (`bus.errorpath`).

`actormesh actor NAME` runs one host; `local.LocalMesh` runs nine in one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from pydantic import ValidationError

from actormesh_runtime.actors.base import Actor
from actormesh_runtime.catalog import Subjects
from actormesh_runtime.envelope import Envelope, ErrorInfo, TraceEntry
from actormesh_runtime.errors import DeadlineExceeded, InvalidEnvelope, PermanentError
from actormesh_runtime.observability import metrics
from actormesh_runtime.screening import describe_invalid, redact
from actormesh_runtime.settings import RuntimeSettings

from .connection import ensure_consumer
from .errorpath import dead_letter_garbage, take_error_path
from .publish import publish_progress, publish_to_current
from .size import TooLarge, check_fits
from .spans import traced_hop

log = logging.getLogger(__name__)

FETCH_WAIT_S = 1.0
"""Longest one pull request lingers when idle; also the longest a stop waits for the fetch loop."""


def backoff_for(settings: RuntimeSettings, attempt: int) -> float:
    """Redelivery delay after failed delivery number `attempt` (1-based); the last entry repeats."""
    schedule = settings.redelivery_backoff_s
    if not schedule:
        return 0.0
    return schedule[min(attempt, len(schedule)) - 1]


class ActorHost:
    """Hosts one actor on one NATS connection. `start()`, then `stop()` (drains)."""

    def __init__(
        self,
        actor: Actor,
        nc: NATS,
        js: JetStreamContext,
        subjects: Subjects,
        settings: RuntimeSettings,
        *,
        fetch_wait_s: float = FETCH_WAIT_S,
    ) -> None:
        self.actor = actor
        self.name = actor.name
        self.nc = nc
        self.js = js
        self.subjects = subjects
        self.settings = settings
        self.fetch_wait_s = fetch_wait_s
        self._sub: JetStreamContext.PullSubscription | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._label = self.name.value
        # The per-actor metric children, resolved once: `.labels()` costs a lock and a dict lookup.
        self._in_flight = metrics.IN_FLIGHT.labels(self._label)
        self._processed = metrics.PROCESSED.labels(self._label)
        self._failed = metrics.FAILED.labels(self._label)
        self._redelivered = metrics.REDELIVERED.labels(self._label)
        self._processing_seconds = metrics.PROCESSING_SECONDS.labels(self._label)

    # ------------------------------------------------------------ lifecycle

    @property
    def bound(self) -> bool:
        return self._sub is not None and not self._stopping.is_set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def missing(self) -> list[str]:
        """What keeps this host from being ready (empty = ready)."""
        problems = []
        if not self.nc.is_connected:
            problems.append("nats not connected")
        if not self.bound:
            problems.append(f"consumer {self.subjects.consumer(self.name)} not bound")
        return problems

    async def start(self) -> None:
        """Provision and bind the consumer, then start the fetch loop (returns immediately)."""
        await ensure_consumer(self.js, self.subjects, self.name, self.settings)
        self._sub = await self.js.pull_subscribe_bind(
            durable=self.subjects.consumer(self.name), stream=self.subjects.stream
        )
        self._loop_task = asyncio.create_task(self._fetch_loop(), name=f"host:{self._label}")
        log.info("actor host started", extra={"actor": self._label})

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain: stop fetching, let in-flight messages finish within the grace period, hand the
        rest back (nak) so another replica takes them at once."""
        grace = self.settings.drain_grace_s if grace_s is None else grace_s
        self._stopping.set()
        if self._loop_task is not None:
            # gather, not a suppressed await: a cancelled stop() must stay cancelled.
            await asyncio.gather(self._loop_task, return_exceptions=True)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                log.warning("drain grace expired", extra={"actor": self._label, "handed_back": len(pending)})
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        log.info("actor host stopped", extra={"actor": self._label})

    async def _fetch_loop(self) -> None:
        assert self._sub is not None
        concurrency = self.settings.actor_concurrency
        while not self._stopping.is_set():
            free = concurrency - len(self._tasks)
            if free <= 0:
                # Saturated: wait for a free slot, or for stop() (which must not wait on a stuck task).
                stopped = asyncio.ensure_future(self._stopping.wait())
                await asyncio.wait({*self._tasks, stopped}, return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                continue
            try:
                msgs = await self._sub.fetch(min(self.settings.fetch_batch, free), timeout=self.fetch_wait_s)
            except (TimeoutError, NatsTimeoutError):
                continue
            except Exception as exc:  # disconnected, server restarting: retry, readiness reports it
                if not self._stopping.is_set():
                    log.warning("fetch failed", extra={"actor": self._label, "error": repr(exc)})
                    await asyncio.sleep(min(self.fetch_wait_s, 0.5))
                continue
            for msg in msgs:
                if self._stopping.is_set():
                    # Fetched while we were asked to stop: hand back for another replica now.
                    with contextlib.suppress(Exception):
                        await msg.nak()
                    continue
                task = asyncio.create_task(self._process(msg))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ one message

    async def _process(self, msg: Msg) -> None:
        self._in_flight.inc()
        try:
            await self._process_inner(msg)
        except asyncio.CancelledError:
            # Drain expired mid-message: hand it back right away (it is idempotent to redo).
            with contextlib.suppress(Exception):
                await asyncio.shield(msg.nak())
            raise
        except Exception:
            # Publishing/acking failed (NATS gone): no ack, so it is redelivered after ack_wait.
            log.exception("message not settled; it will be redelivered", extra={"actor": self._label})
        finally:
            self._in_flight.dec()

    async def _process_inner(self, msg: Msg) -> None:
        meta = msg.metadata
        attempt = meta.num_delivered
        key = f"{self.subjects.stream}:{meta.sequence.stream}"
        if attempt > 1:
            self._redelivered.inc()
        try:
            envelope = Envelope.from_bytes(msg.data)
        except (ValidationError, ValueError) as exc:
            problem = InvalidEnvelope(describe_invalid(exc) if isinstance(exc, ValidationError) else str(exc))
            await dead_letter_garbage(self.js, self.subjects, self.name, msg.data, problem, dedup_key=key)
            await msg.term()
            return
        envelope.headers.attempt = attempt
        started = time.perf_counter()
        if attempt > self.settings.max_deliver:
            # The previous (last) delivery never settled — the process died mid-message. Do not
            # hand the possibly-poisonous envelope to the actor again.
            reason = f"deliveries exhausted: delivery {attempt - 1} never finished"
            await self._fail(msg, envelope, reason, permanent=False, started=started, key=key)
            return
        try:
            await self._run_actor(envelope)
        except PermanentError as exc:
            await self._fail(msg, envelope, _describe(exc), permanent=True, started=started, key=key)
            return
        except Exception as exc:  # TransientError, timeouts, bugs: retried until deliveries run out
            await self._retry_or_fail(msg, envelope, exc, started=started, key=key)
            return
        try:
            check_fits(self.js, envelope.to_bytes(), "envelope")
        except TooLarge as exc:  # grown past the bus's limit: it can never move on as it is
            await self._fail(msg, envelope, _describe(exc), permanent=True, started=started, key=key)
            return
        await self._forward(msg, envelope, started)

    async def _forward(self, msg: Msg, envelope: Envelope, started: float) -> None:
        """Success: trace, advance, publish to the next step (acked, de-duplicated), then ack."""
        elapsed = time.perf_counter() - started
        attempt = envelope.headers.attempt
        envelope.trace.append(TraceEntry(actor=self.name, ms=round(elapsed * 1000, 3), attempt=attempt))
        # Progress goes out before the envelope moves on: the next actor can only report after it
        # receives the envelope, so a watcher sees hops strictly in route order.
        await publish_progress(self.nc, envelope, self.name, "done", elapsed * 1000, attempt)
        if envelope.slip.advance() is not None:
            envelope.headers.attempt = 1
            await publish_to_current(self.js, self.subjects, envelope)
        await msg.ack()
        self._processed.inc()
        self._processing_seconds.observe(elapsed)

    async def _retry_or_fail(
        self, msg: Msg, envelope: Envelope, exc: Exception, *, started: float, key: str
    ) -> None:
        attempt = envelope.headers.attempt
        if attempt >= self.settings.max_deliver:
            reason = f"{_describe(exc)} (after {attempt} deliveries)"
            await self._fail(msg, envelope, reason, permanent=False, started=started, key=key)
            return
        self._failed.inc()
        delay = backoff_for(self.settings, attempt)
        log.info(
            "retrying",
            extra={"actor": self._label, "message_id": envelope.message_id, "attempt": attempt,
                   "delay_s": delay, "error": _describe(exc)},
        )  # fmt: skip
        await msg.nak(delay=delay)
        ms = (time.perf_counter() - started) * 1000
        await publish_progress(self.nc, envelope, self.name, "retrying", ms, attempt)

    async def _run_actor(self, envelope: Envelope) -> None:
        # One span per actor per hop; a failure raised here is recorded on it.
        with traced_hop(self.name, envelope):
            if envelope.slip.current != self.name:
                raise PermanentError(f"envelope for {envelope.slip.current.value} delivered to {self._label}")
            if not envelope.slip.on_error_path:
                remaining = envelope.headers.deadline - time.time()
                if remaining <= 0:
                    raise DeadlineExceeded(f"deadline passed {-remaining:.1f}s ago")
            # timeout(), not wait_for(): on 3.11 wait_for wraps the coroutine in a Task per hop.
            async with asyncio.timeout(self.settings.processing_timeout_s):
                await self.actor.handle(envelope)

    async def _fail(
        self, msg: Msg, envelope: Envelope, reason: str, *, permanent: bool, started: float, key: str
    ) -> None:
        attempt = envelope.headers.attempt
        ms = (time.perf_counter() - started) * 1000
        self._failed.inc()
        envelope.trace.append(TraceEntry(actor=self.name, ms=round(ms, 3), attempt=attempt))
        error = ErrorInfo(actor=self.name, reason=reason[:2000], permanent=permanent)
        await publish_progress(self.nc, envelope, self.name, "failed", ms, attempt)
        await take_error_path(
            self.nc, self.js, self.subjects, envelope, error, deliveries=attempt, dedup_key=key
        )
        await msg.ack()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, TimeoutError) and not text:
        text = "processing timeout"
    # Dead letters and logs keep this text: redact in case an exception quoted customer input.
    return redact(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)

"""The actor host: pulls envelopes for one actor from its durable consumer and does everything the
actor does not (see `actors/base.py`).

Per message: decode → deadline check → `actor.handle` under a timeout → trace entry → advance the
slip → acked, de-duplicated publish to the next step → ack. A crash between publish and ack
redelivers the message and the republish is dropped by the stream's duplicate window, so every hop
happens once. Failures: transient ones are nak'ed with the backoff for that attempt; a permanent
error, or the last delivery failing, takes the error path (`bus.errorpath`).

When the next step is hosted in the same process, the host runs it in memory instead of publishing
(hop fusion, `bus.fusion`): the chain ends with one publish, or at the end of the slip, and only then
is the inbound message acked. With `DIRECT_HOPS` the chain goes on to other processes over core NATS
too, and the host that ends it settles the delivery it started from (`bus.direct`); a step that fails
transiently there is retried where the hop arrived, not from that delivery (`_Outcome.AGAIN`).

`actormesh actor NAME` runs one host; `local.LocalMesh` runs nine in one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from pydantic import ValidationError

from actormesh_runtime.actors.base import Actor
from actormesh_runtime.catalog import Subjects
from actormesh_runtime.envelope import Envelope, ErrorInfo, TraceEntry
from actormesh_runtime.errors import DeadlineExceeded, InvalidEnvelope, PermanentError
from actormesh_runtime.observability import metrics
from actormesh_runtime.observability.emails import scrubbed
from actormesh_runtime.screening import describe_invalid
from actormesh_runtime.settings import RuntimeSettings

from .ack_timer import AckTimer
from .connection import ensure_consumer
from .direct import (
    SETTLE,
    DirectSender,
    HeldHops,
    RemoteOrigin,
    expired,
    origin_of,
    seal,
    seal_key,
    settle_of,
)
from .errorpath import dead_letter_garbage, take_error_path
from .fusion import Colocated
from .publish import acked_publish, publish_payload, publish_progress, stream_target
from .pull import ConsumerUnavailable, PullFeed, RequestEnded, delivery_of
from .reconcile import RECONCILE_EVERY_S, ConsumerWatch
from .size import TooLarge, check_fits
from .spans import traced_hop

log = logging.getLogger(__name__)

FETCH_WAIT_S = 1.0
"""Longest one pull request lingers when idle; also the longest a stop waits for the fetch loop."""
KEEP_ALIVE_FRACTION = 1 / 3
"""The ack timer of a message being worked on is reset once this much of ack_wait has gone by: a
timer that fires late on a busy loop, or one lost reset, still leaves time for the next (`_Inbound`)."""


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
        colocated: Colocated | None = None,
        reconcile_every_s: float | None = None,
    ) -> None:
        """`colocated`: the group of this process's hosts that chain steps in memory (`bus.fusion`);
        None = every step goes through the stream. `reconcile_every_s`: how often the consumer and
        the streams are checked against their declared configuration (`bus.reconcile`)."""
        self.actor = actor
        self.name = actor.name
        self.nc = nc
        self.js = js
        self.subjects = subjects
        self.settings = settings
        self.fetch_wait_s = fetch_wait_s
        self.colocated = colocated
        self.ack_wait_s = settings.ack_wait_s
        # While a message is worked on (a step running, a hop held), its ack timer is reset once
        # this much of ack_wait is used up: a step may outlast ack_wait, a silent replica may not.
        self.keep_alive_after_s = self.ack_wait_s * KEEP_ALIVE_FRACTION
        self._sub: PullFeed | None = None
        self._direct_sub: Subscription | None = None
        self._sender: DirectSender | None = None
        self._held = HeldHops(self.keep_alive_after_s)
        self._seal_key = seal_key(settings.nats_password or settings.nats_token)
        self._consumer = subjects.consumer(self.name)
        self._uncount_waiting: Callable[[], None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        every_s = RECONCILE_EVERY_S if reconcile_every_s is None else reconcile_every_s
        self._watch = ConsumerWatch(nc, subjects, self.name, settings, every_s=every_s)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        # Fetched after stop() began: handed back only once our pull requests are closed (see stop()).
        self._unstarted: list[Msg] = []
        self._label = self.name.value
        # The per-actor metric children, resolved once: `.labels()` costs a lock and a dict lookup.
        self._handling = metrics.handling_counter(self._label)
        self._processed = metrics.PROCESSED.labels(self._label)
        self._failed = metrics.FAILED.labels(self._label)
        self._redelivered = metrics.REDELIVERED.labels(self._label)
        self._processing_seconds = metrics.PROCESSING_SECONDS.labels(self._label)
        self._expired = metrics.DIRECT_HOPS_EXPIRED.labels(self._label)
        self._settles_refused = metrics.DIRECT_SETTLES_REFUSED.labels(self._label)
        if colocated is not None:
            # Joins before start(): the first message another host fetches can already chain here
            # (the actor is started before its host is built).
            colocated.join(self)

    # ------------------------------------------------------------ lifecycle

    @property
    def bound(self) -> bool:
        listening = self._direct_sub is not None or not self.settings.direct_hops
        return self._sub is not None and listening and not self._stopping.is_set()

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
        elif self._watch.unavailable is not None:
            problems.append(
                f"consumer {self.subjects.consumer(self.name)} unavailable: {self._watch.unavailable}"
            )
        return problems

    async def start(self) -> None:
        """Provision and bind the consumer, then start the fetch loop (returns immediately)."""
        await ensure_consumer(self.js, self.subjects, self.name, self.settings)
        durable = self.subjects.consumer(self.name)
        sub = await self.js.pull_subscribe_bind(durable=durable, stream=self.subjects.stream)
        self._sub = PullFeed(sub, self.nc)
        self._loop_task = asyncio.create_task(self._fetch_loop(), name=f"host:{self._label}")
        self._watch.start()
        if self.settings.direct_hops:
            self._sender = DirectSender(self.nc, self.subjects)
            await self._sender.start()
            # The queue group spreads direct hops over the replicas as the consumer spreads deliveries.
            self._direct_sub = await self.nc.subscribe(
                self.subjects.direct(self.name), queue=durable, cb=self._on_direct
            )
            self._uncount_waiting = metrics.count_direct_hops_waiting(self._label, self._direct_hops_waiting)
        log.info("actor host started", extra={"actor": self._label})

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain: stop fetching, hand back what was fetched but not started, let in-flight messages
        finish within the grace period, hand the rest back (nak) so another replica takes them at once."""
        grace = self.settings.drain_grace_s if grace_s is None else grace_s
        self._stopping.set()
        # Taken now: a message that finishes while the fetch loop winds down and the unstarted are
        # handed back (a pull request's expiry: seconds) was in flight too, and the summary says so.
        in_flight = set(self._tasks)
        if self.colocated is not None:  # no fused step reaches us from now on (`Colocated.peer`)
            self.colocated.leave(self)
        if self._direct_sub is not None:
            # No direct hop reaches us from now on; those already here are handed back (`_on_direct`).
            with contextlib.suppress(Exception):
                await self._direct_sub.drain()  # type: ignore[no-untyped-call]
            self._direct_sub = None
        await self._watch.stop()
        handed_back = await self._held.hand_back()
        if self._uncount_waiting is not None:
            self._uncount_waiting()
            self._uncount_waiting = None
        if self._loop_task is not None:
            # gather, not a suppressed await: a cancelled stop() must stay cancelled.
            await asyncio.gather(self._loop_task, return_exceptions=True)
        handed_back += await self._hand_back_unstarted()
        in_flight |= self._tasks
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
        if self._sender is not None:  # after the last step: a step may still send a hop
            await self._sender.stop()
            self._sender = None
        aborted = [t for t in in_flight if t.cancelled()]  # nak'ed on the way out (`_process`)
        log.info(
            "actor host stopped",
            extra={"actor": self._label, "finished_in_flight": len(in_flight) - len(aborted),
                   "handed_back": handed_back + len(aborted)},
        )  # fmt: skip

    async def _hand_back_unstarted(self) -> int:
        """Nak every message fetched but not started, once none of our pull requests is open.

        A batch pull request stays open on the server after fetch() returned its first messages,
        until it expires. A message nak'ed while it is open goes straight back to it, into this
        stopping host's inbox, where nobody reads it: it then waits ack_wait before another replica
        gets it (a 504 when ack_wait was the gateway's request timeout). So read the inbox until the
        last request has expired, and only then hand everything back: the server can give it only to
        another replica.
        """
        closed_by = self._sub.closed_by if self._sub is not None else 0.0  # the feed knows its requests
        unstarted = self._unstarted + await self._read_inbox_until(closed_by)
        self._unstarted = []
        for msg in unstarted:
            with contextlib.suppress(Exception):
                await msg.nak()
        return len(unstarted)

    async def _read_inbox_until(self, deadline: float) -> list[Msg]:
        """Messages the server delivers to our pull requests until `deadline` (loop time)."""
        loop = asyncio.get_running_loop()
        # nats-py's core subscription behind the pull subscription: fetch() itself reads it this way.
        inbox = getattr(self._sub, "_sub", None)
        if inbox is None:
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            return []
        msgs: list[Msg] = []
        while (remaining := deadline - loop.time()) > 0:
            try:
                msg = await inbox.next_msg(timeout=remaining)
            except (TimeoutError, NatsTimeoutError):
                break
            if not JetStreamContext.is_status_msg(msg):  # 404/408 end a request; they carry no work
                msgs.append(msg)
        return msgs

    async def _fetch_loop(self) -> None:
        assert self._sub is not None
        concurrency = self.settings.actor_concurrency
        limited = False  # the last request was ended by a status: logged once per episode
        while not self._stopping.is_set():
            free = concurrency - len(self._tasks) - len(self._held)  # held hops go first: mid-chain
            if free <= 0:
                await self._slot_or_stop()
                continue
            try:
                msgs = await self._sub.fetch(min(self.settings.fetch_batch, free), timeout=self.fetch_wait_s)
            except RequestEnded as exc:  # asked again at once, it is often answered the same at once
                if not limited:
                    log.warning("pull request ended early", extra={"actor": self._label, "error": str(exc)})
                limited = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), min(self.fetch_wait_s, 0.5))
                continue
            except (TimeoutError, NatsTimeoutError):
                limited = False
                continue
            except ConsumerUnavailable as exc:
                await self._consumer_unavailable(exc)
                continue
            except Exception as exc:  # disconnected, server restarting: retry, readiness reports it
                if not self._stopping.is_set():
                    log.warning("fetch failed", extra={"actor": self._label, "error": repr(exc)})
                    await asyncio.sleep(min(self.fetch_wait_s, 0.5))
                continue
            for msg in msgs:
                if self._stopping.is_set():
                    self._unstarted.append(msg)  # handed back by stop() once our pulls are closed
                    continue
                self._start(msg)

    async def _consumer_unavailable(self, exc: ConsumerUnavailable) -> None:
        """Our pull requests find no consumer: every next one would be answered the same at once (a
        busy loop, and a silent stall while the inbox fills). Have it restored, and pause before
        asking again."""
        self._watch.alarm(str(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.fetch_wait_s)

    async def _slot_or_stop(self) -> None:
        """Saturated: wait for a free slot, or for stop() (which must not wait on a stuck task)."""
        stopped = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({*self._tasks, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()

    def _start(self, msg: Msg, origin_reset_at: float | None = None) -> None:
        task = asyncio.create_task(self._process(msg, origin_reset_at))
        self._tasks.add(task)
        task.add_done_callback(self._step_done)

    def _step_done(self, task: asyncio.Task[None]) -> None:
        """A slot freed: the oldest held direct hop takes it (`bus.direct.HeldHops`)."""
        self._tasks.discard(task)
        while len(self._tasks) < self.settings.actor_concurrency and not self._stopping.is_set():
            hop = self._held.next()
            if hop is None:
                return
            origin, reset_at = hop
            if not self._dropped_as_expired(reset_at):
                self._start(origin, reset_at)

    async def _on_direct(self, msg: Msg) -> None:
        """A direct hop (`bus.direct`): processed as the origin delivery it belongs to, within the same
        in-flight bound as fetched messages; while every slot is taken it is held, its origin kept
        alive, and started when a step ends (`_step_done`). A settle of one of our consumer's deliveries
        from another actor's process is carried out (`_settle`)."""
        if msg.data.startswith(SETTLE):
            await self._settle(msg)
            return
        found = origin_of(self.nc, msg, self.subjects, self._consumer)
        if found is None:
            log.warning("direct hop without an origin dropped", extra={"actor": self._label})
            return
        origin, reset_at = found
        if self._stopping.is_set():
            # Draining: the chain reruns from its origin now, elsewhere, instead of after ack_wait (if
            # a process of the origin's actor is there to carry out the nak: `bus.direct.RemoteOrigin`).
            with contextlib.suppress(Exception):
                await origin.nak()
            return
        if self._dropped_as_expired(reset_at):
            return
        if len(self._tasks) < self.settings.actor_concurrency and not self._held:
            self._start(origin, reset_at)
        else:
            self._held.hold(origin, reset_at)

    async def _settle(self, msg: Msg) -> None:
        """Ack, nak, term or keep alive one of our consumer's deliveries, as the process of another actor
        that has its chain asks (`bus.direct.RemoteOrigin`): only we may, and only with its seal."""
        settle = settle_of(msg.data, self.subjects.stream, self._consumer, self._seal_key)
        if settle is None:
            self._settles_refused.inc()
            log.warning(
                "settle refused: not a sealed acknowledgement of our deliveries", extra={"actor": self._label}
            )
            return
        ack_subject, verb = settle
        await self.nc.publish(ack_subject, verb)

    def _dropped_as_expired(self, reset_at: float, *, retry: bool = False) -> bool:
        """A hop that arrives past its origin's ack wait is not run (`bus.direct.expired`), nor a retry
        that waited that long (`retry`): the origin is redelivered and reruns the chain, and this hop
        would do it a second time."""
        now = time.time()
        if not expired(reset_at, self.ack_wait_s, now):
            return False
        self._expired.inc()
        what = "retry of a direct hop dropped: its origin's ack wait ran out while it waited"
        if not retry:
            what = "direct hop dropped: it came past its origin's ack wait"
        log.warning(
            f"{what}, the chain reruns from its origin",
            extra={"actor": self._label, "late_s": round(now - reset_at - self.ack_wait_s, 1)},
        )
        return True

    def _direct_hops_waiting(self) -> int:
        sub = self._direct_sub
        return (sub.pending_msgs if sub is not None else 0) + len(self._held)

    # ------------------------------------------------------------ one message

    async def _process(self, msg: Msg, origin_reset_at: float | None = None) -> None:
        """`msg`: a delivery of our consumer, or (`origin_reset_at` set) the origin of a direct hop."""
        try:
            await self._process_inner(msg, origin_reset_at)
        except asyncio.CancelledError:
            # Drain expired mid-message: hand it back right away (it is idempotent to redo).
            with contextlib.suppress(Exception):
                await asyncio.shield(msg.nak())
            raise
        except Exception:
            # Publishing/acking failed (NATS gone): no ack, so it is redelivered after ack_wait.
            log.exception("message not settled; it will be redelivered", extra={"actor": self._label})

    async def _process_inner(self, msg: Msg, origin_reset_at: float | None) -> None:
        attempt, stream_seq = delivery_of(msg)
        key = f"{self.subjects.stream}:{stream_seq}"
        direct = origin_reset_at is not None
        if attempt > 1 and not direct:  # a redelivery is counted where it is delivered
            self._redelivered.inc()
        try:
            envelope = Envelope.from_bytes(msg.data)
        except (ValidationError, ValueError) as exc:
            problem = InvalidEnvelope(describe_invalid(exc) if isinstance(exc, ValidationError) else str(exc))
            await dead_letter_garbage(self.js, self.subjects, self.name, msg.data, problem, dedup_key=key)
            await msg.term()
            return
        envelope.headers.attempt = attempt
        inbound = _Inbound(self, msg, key, attempt, origin_reset_at)
        if attempt > self.settings.max_deliver:
            # The previous (last) delivery never settled — the process died mid-message. Do not
            # hand the possibly-poisonous envelope to the actor again.
            reason = f"deliveries exhausted: delivery {attempt - 1} never finished"
            await self._fail(inbound, envelope, reason, permanent=False, started=time.perf_counter())
            await msg.ack()
            return
        inbound.timer.watch()
        try:
            outcome = await self._run_chain(inbound, envelope)
            while outcome is _Outcome.AGAIN:
                # Decoded again as the hop brought it: the failed try may have changed the envelope.
                envelope = Envelope.from_bytes(msg.data)
                envelope.headers.attempt = inbound.attempt
                outcome = await self._run_chain(inbound, envelope)
        finally:
            await inbound.timer.unwatch()
        if outcome is _Outcome.ACK and not inbound.handed_on:
            await msg.ack()

    async def _run_chain(self, inbound: _Inbound, envelope: Envelope) -> _Outcome:
        """The hop loop: run this step, then every following step hosted in this process (hop
        fusion, `bus.fusion`), until a step is hosted elsewhere (one publish) or the slip ends.

        The whole chain shares the inbound message's delivery: a fused step that fails is retried by
        redelivering the chain, or, when the chain came as a direct hop, by running it again from
        that hop in this process (`_retry_or_fail`).
        """
        host: ActorHost | None = self
        while host is not None:
            started = time.perf_counter()
            try:
                await host._run_actor(envelope)
            except PermanentError as exc:
                await host._fail(inbound, envelope, _describe(exc), permanent=True, started=started)
                return _Outcome.ACK
            except Exception as exc:  # TransientError, timeouts, bugs: retried until deliveries run out
                return await host._retry_or_fail(inbound, envelope, exc, started=started)
            host = await host._hand_on(inbound, envelope, started)
        return _Outcome.ACK

    async def _hand_on(self, inbound: _Inbound, envelope: Envelope, started: float) -> ActorHost | None:
        """A step succeeded: trace entry, progress, advance; then either the co-located host that runs
        the next step in memory (returned), or the acked, de-duplicated publish to the next step's
        inbox (the hop's one encode), or nothing at the end of the slip (None: the chain is done)."""
        elapsed = time.perf_counter() - started
        attempt = envelope.headers.attempt
        envelope.trace.append(TraceEntry(actor=self.name, ms=round(elapsed * 1000, 3), attempt=attempt))
        following = envelope.slip.advance()
        peer = self.colocated.peer(following) if following is not None and self.colocated else None
        payload = None
        if following is not None and peer is None:
            envelope.headers.attempt = 1
            payload = envelope.to_bytes()
            try:
                check_fits(inbound.js, payload, "envelope")
            except TooLarge as exc:  # grown past the bus's limit: it can never move on as it is
                envelope.headers.attempt = attempt
                envelope.slip.index -= 1  # back at this step: the dead letter is as it failed here
                envelope.trace.pop()
                await self._fail(inbound, envelope, _describe(exc), permanent=True, started=started)
                return None
        # Progress goes out before the envelope moves on, on the connection the whole chain uses
        # for progress and its publish: a watcher sees hops strictly in route order.
        await publish_progress(inbound.nc, envelope, self.name, "done", elapsed * 1000, attempt)
        self._processed.inc()
        self._processing_seconds.observe(elapsed)
        if payload is not None:
            if self._sender is not None:
                await self._send_direct(inbound, envelope, payload)
            else:
                await publish_payload(inbound.js, self.subjects, envelope, payload)
            return None
        return peer

    async def _send_direct(self, inbound: _Inbound, envelope: Envelope, payload: bytes) -> None:
        """Hand the envelope on over core NATS; whoever ends the chain settles the origin. Should no
        process of the next actor receive it, it goes through the stream and the origin is acked here."""
        assert self._sender is not None
        # Taken now, so the fallback (kept for RETURN_WINDOW_S by the sender) holds strings and the
        # bytes, not the envelope's object tree: that is freed as soon as this step is done.
        subject, headers = stream_target(self.subjects, envelope)
        stream = self.subjects.stream

        async def through_the_stream() -> None:
            try:
                await acked_publish(inbound.js, subject, payload, stream=stream, headers=headers)
                await inbound.msg.ack()
            except Exception:  # the origin stays unacked: redelivered after ack_wait, nothing lost
                log.exception("direct hop not handed on; the chain reruns", extra={"actor": self._label})

        origin = inbound.msg
        sealed = origin.seal if isinstance(origin, RemoteOrigin) else seal(self._seal_key, origin.reply)
        inbound.handed_on = True
        await self._sender.send(
            self.subjects.direct(envelope.slip.current), payload,
            origin=origin.reply, reset_at=inbound.timer.reset_at, fallback=through_the_stream, sealed=sealed,
        )  # fmt: skip

    async def _retry_or_fail(
        self, inbound: _Inbound, envelope: Envelope, exc: Exception, *, started: float
    ) -> _Outcome:
        """A transient failure: the error path on the last attempt, else a retry after that attempt's
        backoff. A delivery of our consumer is nak'ed with the backoff (redelivered, the chain runs
        again from it). A direct hop's chain waits out the backoff here and runs again from the hop
        (AGAIN), its origin kept alive meanwhile: a nak would rerun every step from the origin, in
        other processes, for one step's failure. Its attempts are counted here, from the origin's
        delivery count; a crash meanwhile still leaves the origin to be redelivered."""
        attempt = envelope.headers.attempt
        if attempt >= self.settings.max_deliver:
            reason = f"{_describe(exc)} (after {attempt} attempts)"
            await self._fail(inbound, envelope, reason, permanent=False, started=started)
            return _Outcome.ACK
        self._failed.inc()
        delay = backoff_for(self.settings, attempt)
        log.info(
            "retrying",
            extra={"actor": self._label, "message_id": envelope.message_id, "attempt": attempt,
                   "delay_s": delay, "error": _describe(exc), "in_place": inbound.direct},
        )  # fmt: skip
        ms = (time.perf_counter() - started) * 1000
        if inbound.direct:
            await publish_progress(inbound.nc, envelope, self.name, "retrying", ms, attempt)
            return await self._retry_here(inbound, envelope, delay)
        await inbound.timer.unwatch()  # no reset after the nak: it would stretch the delay to ack_wait
        await inbound.msg.nak(delay=delay)
        await publish_progress(inbound.nc, envelope, self.name, "retrying", ms, attempt)
        return _Outcome.RETURNED

    async def _retry_here(self, inbound: _Inbound, envelope: Envelope, delay: float) -> _Outcome:
        """A direct hop's chain after a transient failure: wait out the backoff (not past the
        envelope's deadline, where the next try could only fail), then run it again from the hop.

        A process that starts to stop meanwhile (or had already) naks the origin with what is left of
        the backoff: the chain runs again from its origin in the processes that stay, after the
        backoff, as a redelivery would. A wait whose resets of the origin's timer could not be sent
        for an ack wait (NATS gone) has seen the origin redelivered: running again would do the chain
        twice, so it ends here (`_dropped_as_expired`). Every try runs in this process: a fault of
        this replica alone uses up its attempts, where redeliveries might have found a sound one."""
        loop = asyncio.get_running_loop()
        until = loop.time() + delay
        wait = delay
        if not envelope.slip.on_error_path:  # the error path has no deadline (`_run_actor`)
            wait = min(delay, max(0.0, envelope.headers.deadline - time.time()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(inbound.stopping.wait(), wait)
        if inbound.stopping.is_set():
            await inbound.timer.unwatch()
            await inbound.msg.nak(delay=max(0.0, until - loop.time()))
            return _Outcome.RETURNED
        if self._dropped_as_expired(inbound.timer.reset_at, retry=True):
            return _Outcome.RETURNED
        inbound.attempt = envelope.headers.attempt + 1
        return _Outcome.AGAIN

    async def _run_actor(self, envelope: Envelope) -> None:
        """One step: the only place an actor's `handle` runs, fused or not; one span per actor per hop
        (`traced_hop`), and a failure raised here is recorded on it."""
        with traced_hop(self.name, envelope):
            if envelope.slip.current != self.name:
                raise PermanentError(f"envelope for {envelope.slip.current.value} delivered to {self._label}")
            if not envelope.slip.on_error_path:
                remaining = envelope.headers.deadline - time.time()
                if remaining <= 0:
                    raise DeadlineExceeded(f"deadline passed {-remaining:.1f}s ago")
            self._handling[0] += 1
            try:
                with _StepTimeout(self.settings.processing_timeout_s):
                    await self.actor.handle(envelope)
            finally:
                self._handling[0] -= 1

    async def _fail(
        self, inbound: _Inbound, envelope: Envelope, reason: str, *, permanent: bool, started: float
    ) -> None:
        """Error path for this step (dead letter, divert); the caller then acks the inbound message.

        The dead letter and the diverted envelope go out on this host's own connection (its NATS user
        may write only its own dead-letter subject); the progress event on the chain's."""
        attempt = envelope.headers.attempt
        ms = (time.perf_counter() - started) * 1000
        self._failed.inc()
        envelope.trace.append(TraceEntry(actor=self.name, ms=round(ms, 3), attempt=attempt))
        error = ErrorInfo(actor=self.name, reason=reason[:2000], permanent=permanent)
        await publish_progress(inbound.nc, envelope, self.name, "failed", ms, attempt)
        await take_error_path(
            self.nc, self.js, self.subjects, envelope, error, deliveries=attempt, dedup_key=inbound.key
        )


class _StepTimeout:
    """One step's processing timeout: `asyncio.timeout`'s semantics without what the host never uses
    (rescheduling, a state machine, two loop look-ups — each one a getpid() on 3.11 — and an async
    context manager): ~11 µs of a hop's pure Python in place (`python -m bench.host_cost`).

    On expiry the task running the step is cancelled and that cancellation leaves the block as
    TimeoutError; a cancellation from elsewhere (the drain) stays a cancellation. Not wait_for(): on
    3.11 it wraps the coroutine in a Task per step.
    """

    __slots__ = ("_cancelling", "_expired", "_handle", "_task")

    def __init__(self, delay_s: float) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("_StepTimeout must be used inside a task")
        self._task = task
        loop = task.get_loop()
        self._cancelling = task.cancelling()
        self._expired = False
        self._handle = loop.call_at(loop.time() + delay_s, self._expire)

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        self._handle.cancel()
        if self._expired and self._task.uncancel() <= self._cancelling and kind is asyncio.CancelledError:
            raise TimeoutError from error


class _Outcome(enum.Enum):
    """How a chain run left its inbound message (`ActorHost._run_chain`)."""

    ACK = enum.auto()
    """Done, or handed on by a publish or the error path: to be acked (unless handed on directly)."""
    RETURNED = enum.auto()
    """Handed back for a redelivery (a nak), or left to the redelivery under way: not acked here."""
    AGAIN = enum.auto()
    """A direct hop's chain to run again from the hop, in this process, at `_Inbound.attempt`."""


class _Inbound:
    """The message a chain was fetched as (or, for a direct hop, the origin delivery it belongs to),
    and the connection of the host that runs it.

    The inbound message is acked once the whole chain is settled, unless the chain was handed on by
    a direct hop (`handed_on`: settled further on). The chain's progress events and its publish go
    out on the running host's connection, so they stay in order.

    While the host works on it (its steps, their hand-on, the error path), `timer` resets its ack
    timer every third of `ack_wait` (`bus.ack_timer`): a step and a chain may take longer than
    `ack_wait`, yet a replica that dies mid-step has its message redelivered `ack_wait` after its last
    sign of life, not after the longest step could take. The resets stop before it is acked or nak'ed.
    """

    __slots__ = ("attempt", "direct", "handed_on", "js", "key", "msg", "nc", "stopping", "timer")

    def __init__(
        self, host: ActorHost, msg: Msg, key: str, attempt: int, reset_at: float | None = None
    ) -> None:
        """`reset_at`: when the ack timer was last reset by another process (Unix time; a direct hop),
        None: it started with this delivery."""
        self.msg = msg
        self.key = key
        self.attempt = attempt
        """The delivery count, or for a direct hop retried in place the attempt it is at."""
        self.direct = reset_at is not None
        self.stopping = host._stopping
        """The stop of the host that took the message (a fused step's host stops with it)."""
        self.nc = host.nc
        self.js = host.js
        self.handed_on = False
        self.timer = AckTimer(msg, host.keep_alive_after_s, reset_at)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, TimeoutError) and not text:
        text = "processing timeout"
    # Dead letters, escalation reasons and logs keep this text: an exception may quote customer input
    # (cards and SSNs redacted, addresses pseudonymised as in log lines).
    return scrubbed(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)

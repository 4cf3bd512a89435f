"""Small test actors and a rig for exercising the bus mechanics without the real actors' policies.

The test actors borrow real actor names (the bus only knows the nine), run on a short slip
(`TEST_ROUTE`), and record what happened to them so tests can count handles and side effects.
`BusRig` hosts them on a real nats-server and submits envelopes with a reply subject.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from actormesh_runtime.actors.base import Actor
from actormesh_runtime.bus import dlq
from actormesh_runtime.bus.connection import connect, open_bus
from actormesh_runtime.bus.fusion import Colocated
from actormesh_runtime.bus.host import ActorHost
from actormesh_runtime.bus.publish import BusPublisher, submit
from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.envelope import (
    Envelope,
    Escalation,
    FinalResult,
    MethodSummary,
    ProgressEvent,
    ReplyTo,
    RoutingSlip,
    Screening,
)
from actormesh_runtime.errors import PermanentError, TransientError
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.settings import RuntimeSettings
from tests.support.nats_flush import server_has_seen

WORKER = ActorName.SENTIMENT_ANALYZER
SECOND_WORKER = ActorName.INTENT_ANALYZER
TEST_ROUTE = [WORKER, ActorName.RESPONSE_AGGREGATOR]
TWO_WORKER_ROUTE = [WORKER, SECOND_WORKER, ActorName.RESPONSE_AGGREGATOR]

Behaviour = Callable[[Envelope, int], Awaitable[None]]
"""(envelope, call number for this message) -> None; may raise, sleep or block."""


def fast_settings(nats_url: str, **overrides: object) -> RuntimeSettings:
    """Small timeouts and backoffs, a unique mesh name: what every bus test starts from."""
    values: dict[str, object] = {
        "mesh_name": f"t{uuid.uuid4().hex[:10]}",
        "nats_url": nats_url,
        "processing_timeout_s": 2.0,
        "ack_wait_s": 3.0,
        "max_deliver": 3,
        "redelivery_backoff_s": [0.05, 0.1],
        "drain_grace_s": 5.0,
        "fetch_batch": 4,
        "actor_concurrency": 4,
        "duplicate_window_s": 60.0,
    }
    values.update(overrides)
    return RuntimeSettings(**values)  # type: ignore[arg-type]


async def _noop(envelope: Envelope, call: int) -> None:
    return None


@dataclass
class Recorder:
    """Shared across replicas of one test actor: handles per message and idempotent side effects."""

    calls: Counter[str] = field(default_factory=Counter)
    effect_keys: Counter[str] = field(default_factory=Counter)
    """Idempotency key -> times a side effect was requested with it. An idempotent API applies each
    key once, so "applied once" means: every delivery asked with the same key."""
    active: int = 0
    max_active: int = 0
    started: asyncio.Event = field(default_factory=asyncio.Event)

    def request_effect(self, key: str) -> None:
        self.effect_keys[key] += 1


class _NoClients:
    """Test stand-ins open nothing: `start`/`stop` are no-ops, like `actors.base.PlainActor`."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class WorkerActor(_NoClients):
    """Stands in as sentiment_analyzer; what it does per call comes from `behaviour`."""

    name: ClassVar[ActorName] = WORKER

    def __init__(self, recorder: Recorder, behaviour: Behaviour = _noop) -> None:
        self.recorder = recorder
        self.behaviour = behaviour

    async def handle(self, envelope: Envelope) -> None:
        rec = self.recorder
        rec.calls[envelope.message_id] += 1
        rec.active += 1
        rec.max_active = max(rec.max_active, rec.active)
        rec.started.set()
        try:
            await self.behaviour(envelope, rec.calls[envelope.message_id])
        finally:
            rec.active -= 1


class SecondWorkerActor(WorkerActor):
    """A second worker, standing in as intent_analyzer: for routes of two workers (hop fusion)."""

    name: ClassVar[ActorName] = SECOND_WORKER


class ErrorEscalationActor(_NoClients):
    """Stands in as escalation_router: in error mode, a reference id (like the real one)."""

    name: ClassVar[ActorName] = ActorName.ESCALATION_ROUTER

    def __init__(self, recorder: Recorder | None = None) -> None:
        self.recorder = recorder or Recorder()

    async def handle(self, envelope: Envelope) -> None:
        self.recorder.calls[envelope.message_id] += 1
        envelope.escalation = Escalation(
            reference_id=f"ESC-{uuid.uuid4().hex[:8]}",
            estimated_wait_minutes=5,
            error_mode=envelope.error is not None,
        )


class SinkAggregator(_NoClients):
    """Stands in as response_aggregator: publishes a FinalResult to the caller, like the real one."""

    name: ClassVar[ActorName] = ActorName.RESPONSE_AGGREGATOR

    def __init__(self, deps: ActorDeps, recorder: Recorder | None = None, *, poison: bool = False) -> None:
        self.deps = deps
        self.recorder = recorder or Recorder()
        self.poison = poison

    async def handle(self, envelope: Envelope) -> None:
        self.recorder.calls[envelope.message_id] += 1
        if self.poison:
            raise PermanentError("aggregator is poison in this test")
        ref = envelope.escalation.reference_id if envelope.escalation else None
        result = FinalResult(
            message_id=envelope.message_id,
            session_id=envelope.session_id,
            response="error reply" if envelope.error else f"echo: {envelope.message}",
            intent=None,
            intent_confidence=None,
            sentiment=None,
            urgency=None,
            escalated=ref is not None,
            reference_id=ref,
            actions=[],
            flags=["error"] if envelope.error else [],
            method=MethodSummary(intent="rules", response="template"),
            trace=list(envelope.trace),
            processing_ms=(time.time() - envelope.created_at.timestamp()) * 1000,
        )
        envelope.final = result
        if envelope.reply.result_subject:
            await self.deps.publisher.publish_core(
                envelope.reply.result_subject, result.model_dump_json().encode()
            )


@dataclass
class BusRig:
    """A mesh of test actors on a real NATS server; `ask` submits and waits for the result."""

    settings: RuntimeSettings
    nc: NATS
    js: JetStreamContext
    subjects: Subjects
    deps: ActorDeps
    hosts: list[ActorHost] = field(default_factory=list)
    connections: list[NATS] = field(default_factory=list)
    results: list[FinalResult] = field(default_factory=list)
    progress: list[ProgressEvent] = field(default_factory=list)
    reply_prefix: str = ""
    _waiters: dict[str, asyncio.Future[FinalResult]] = field(default_factory=dict)

    async def add_host(
        self,
        actor: Actor,
        *,
        own_connection: bool = False,
        nc: NATS | None = None,
        colocated: Colocated | None = None,
        fetch_wait_s: float = 0.3,
    ) -> ActorHost:
        """Host `actor` on the rig's connection, a new one (`own_connection`) or `nc`; hosts given
        one `colocated` group chain their steps in memory like one process's (`bus.fusion`)."""
        if nc is None:
            nc = self.nc
        if own_connection:
            nc = await self.connect(f"test-{actor.name.value}")
        host = ActorHost(
            actor,
            nc,
            nc.jetstream(),
            self.subjects,
            self.settings,
            fetch_wait_s=fetch_wait_s,
            colocated=colocated,
        )
        await host.start()
        self.hosts.append(host)
        return host

    async def connect(self, name: str) -> NATS:
        """A further connection to the rig's server, closed with the rig."""
        nc = await connect(self.settings, name=name)
        self.connections.append(nc)
        return nc

    async def kill(self, host: ActorHost) -> None:
        """Kill a replica as a crash would: its connection goes away without a nak, its tasks die."""
        await host.nc.close()
        if host._loop_task is not None:
            host._loop_task.cancel()
        for task in list(host._tasks):
            task.cancel()
        self.hosts.remove(host)

    def envelope(
        self, text: str = "hello", *, steps: list[ActorName] | None = None, budget_s: float = 30
    ) -> Envelope:
        env = Envelope.start(
            session_id="s-1",
            customer_email="john.doe@example.com",
            message=text,
            screening=Screening(),
            budget_s=budget_s,
            reply=ReplyTo(
                result_subject=f"{self.reply_prefix}.result", progress_subject=f"{self.reply_prefix}.progress"
            ),
        )
        env.slip = RoutingSlip(steps=list(steps or TEST_ROUTE))
        return env

    async def send(self, envelope: Envelope) -> asyncio.Future[FinalResult]:
        fut: asyncio.Future[FinalResult] = asyncio.get_running_loop().create_future()
        self._waiters[envelope.message_id] = fut
        await submit(self.js, self.subjects, envelope)
        return fut

    async def ask(self, envelope: Envelope, timeout_s: float = 20) -> FinalResult:
        return await asyncio.wait_for(await self.send(envelope), timeout_s)

    async def sentinel(self) -> FinalResult:
        """Send one more message along the test route and wait for its result.

        Delivery is in order along one route, so anything a message under test still had in flight
        (a duplicate hop, a second result) reaches the caller before the sentinel's result: once it
        is here, "nothing else arrived" is a fact, not a guess about a quiet window.
        """
        return await self.ask(self.envelope("sentinel"))

    async def _on_result(self, msg: Msg) -> None:
        result = FinalResult.model_validate_json(msg.data)
        self.results.append(result)
        fut = self._waiters.get(result.message_id)
        if fut is not None and not fut.done():
            fut.set_result(result)

    async def _on_progress(self, msg: Msg) -> None:
        self.progress.append(ProgressEvent.model_validate_json(msg.data))


@contextlib.asynccontextmanager
async def bus_rig(settings: RuntimeSettings) -> AsyncIterator[BusRig]:
    nc = await open_bus(settings, name="test-rig")
    js = nc.jetstream()
    subjects = Subjects(settings.mesh_name)
    rig = BusRig(settings, nc, js, subjects, ActorDeps(settings=settings, publisher=BusPublisher(nc, js)))
    rig.reply_prefix = subjects.replies(uuid.uuid4().hex[:8])
    await nc.subscribe(f"{rig.reply_prefix}.result", cb=rig._on_result)
    await nc.subscribe(f"{rig.reply_prefix}.progress", cb=rig._on_progress)
    await server_has_seen(nc)
    try:
        yield rig
    finally:
        for host in rig.hosts:
            with contextlib.suppress(Exception):
                await host.stop(grace_s=1)
        for conn in [*rig.connections, nc]:
            with contextlib.suppress(Exception):
                await conn.close()


REPO_ROOT = Path(__file__).resolve().parents[2]


async def always_transient(envelope: Envelope, call: int) -> None:
    raise TransientError("upstream 503")


async def always_permanent(envelope: Envelope, call: int) -> None:
    raise PermanentError("order id is malformed")


def effect_then_hang_first_time(recorder: Recorder) -> Behaviour:
    """Ask for a side effect, then, on the first call only, never finish: the process is killed there
    (effect asked, chain not acked). The sentinel (`BusRig.sentinel`) passes at once."""

    async def behaviour(envelope: Envelope, call: int) -> None:
        recorder.request_effect(f"{envelope.message_id}:refund")
        if call == 1 and envelope.message != "sentinel":
            await asyncio.Event().wait()

    return behaviour


async def assert_rerun_and_answered_once(
    rig: BusRig, envelope: Envelope, result: FinalResult, first: Recorder, second: Recorder, sink: Recorder
) -> None:
    """After a crash in the second step: the whole chain ran again (both steps on delivery 2), the side
    effect was asked twice with one idempotency key, and the caller got one answer (a sentinel sent
    after it proves nothing else arrives)."""
    message_id = envelope.message_id
    assert (first.calls[message_id], second.calls[message_id]) == (2, 2), "the chain ran again"
    assert second.effect_keys == Counter({f"{message_id}:refund": 2}), "one key for both runs"
    assert [(t.actor, t.attempt) for t in result.trace] == [(WORKER, 2), (SECOND_WORKER, 2)]
    sentinel = await rig.ask(rig.envelope("sentinel", steps=TWO_WORKER_ROUTE))
    assert [r.message_id for r in rig.results] == [message_id, sentinel.message_id]
    assert sink.calls == Counter({message_id: 1, sentinel.message_id: 1})


Placement = Callable[[BusRig, Sequence[Actor]], Awaitable[object]]
"""How a test hosts a set of actors: one process (fused), one process each (direct hops), ..."""


@dataclass
class FailedChain:
    first: Recorder
    second: Recorder
    envelope: Envelope
    result: FinalResult
    dead_letter: dlq.StoredDeadLetter
    statuses: list[tuple[str, int]]
    """The second worker's progress events: (status, attempt)."""


async def fail_the_second_step(rig: BusRig, behaviour: Behaviour, place: Placement) -> FailedChain:
    """Ask along TWO_WORKER_ROUTE with the second worker failing as `behaviour` says, hosted as
    `place` decides: the caller gets the error path's answer, and the one dead letter names the
    second worker."""
    first, second = Recorder(), Recorder()
    actors = [WorkerActor(first), SecondWorkerActor(second, behaviour), ErrorEscalationActor(),
              SinkAggregator(rig.deps)]  # fmt: skip
    await place(rig, actors)
    envelope = rig.envelope(steps=TWO_WORKER_ROUTE)

    result = await rig.ask(envelope)

    assert result.flags == ["error"]
    [stored] = await dlq.list_records(rig.js, rig.subjects)
    assert stored.record.actor == SECOND_WORKER
    statuses = [(p.status, p.attempt) for p in rig.progress if p.actor == SECOND_WORKER]
    return FailedChain(first, second, envelope, result, stored, statuses)


async def ask_beside_a_crash(
    rig: BusRig, script: str, envelope: Envelope
) -> tuple[FinalResult, int | None, str]:
    """Run `script` (actors in a process of their own, with the rig's settings as its argument), ask
    `envelope`, and wait up to 30 s for that process to end (killed if it did not): the result, the
    process's exit code and its stderr."""
    doomed = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, rig.settings.model_dump_json(),
        cwd=REPO_ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stderr = b""
    try:
        result = await rig.ask(envelope)
        _, stderr = await asyncio.wait_for(doomed.communicate(), 30)
    finally:
        if doomed.returncode is None:
            doomed.kill()
            await doomed.wait()
    return result, doomed.returncode, stderr.decode()[-2000:]

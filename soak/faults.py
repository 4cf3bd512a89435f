"""The seeded fault injector: one fault at a time, at random moments, every one logged.

Kinds, drawn from a shuffled bag so each comes up equally often:
- `actor_kill`: SIGKILL one random actor replica (mid-message, like an OOM kill), or now and then
  both replicas of one actor at once, start them again;
- `nats_restart`: SIGKILL nats-server, start it again on the same port and the same file store;
- `redis_stop`: take Redis away for a while: every other time SIGKILL and a restart (empty, as a
  cache restarts), otherwise SIGSTOP and SIGCONT (a hung Redis: connections stay open, nothing answers);
- `history_kill`: SIGKILL the history service (the single SQLite writer), start it again.
With `self_check` one more fault comes first, one the mesh cannot survive, to prove the judge sees a
loss (`SOAK_SELF_CHECK=1`: the soak must then exit 1 with `lost` > 0):
- `stream_purge`: SIGKILL every replica of the route's first actor, purge the messages waiting in
  its inbox on the work stream (data destroyed, as a lost disk would), start them again.
Faults are spread over the chaos phase by conversation count, not by time: fault i of k is due when
conversation `calm + (i + U(0.2, 0.8)) * (n - calm) / k` starts, so every fault lands among the
conversations on a fast machine and a slow one alike. The same seed gives the same kinds, targets,
downtimes and positions; the log says exactly what happened and when.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nats.aio.client import Client as NATS

from actormesh_runtime.catalog import DEFAULT_ROUTE, Subjects

from .layout import Mesh
from .procs import Child

KINDS = ("actor_kill", "nats_restart", "redis_stop", "history_kill")
PURGE_WAIT_S = 30.0
"""How long `stream_purge` waits for a message to queue in the stopped actor's inbox."""


@dataclass
class Fault:
    kind: str
    target: str
    at: float
    """Seconds since the soak's traffic started."""
    down_s: float
    recovered_s: float | None = None
    """Seconds from the kill until the restarted process was ready again."""


@dataclass
class FaultInjector:
    mesh: Mesh
    seed: int
    per_kind: int
    """Stop after this many faults of each kind."""
    self_check: bool = False
    """Begin the chaos with one `stream_purge` (a real loss the judge must report)."""
    log: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def _bag(self) -> list[str]:
        kinds = [k for k in KINDS for _ in range(self.per_kind)]
        self.rng.shuffle(kinds)
        return kinds

    def positions(self, calm: int, n: int) -> list[int]:
        """The conversation at whose start each fault is due (one per fault, ascending)."""
        count = self.per_kind * len(KINDS)
        span = (n - calm) / max(1, count)
        return [int(calm + (i + self.rng.uniform(0.2, 0.8)) * span) for i in range(count)]

    async def run(
        self, t0: float, started: Callable[[], int], calm: int, n: int, stop: asyncio.Event
    ) -> None:
        """Inject each fault when its conversation has started; each is fully recovered before the next."""
        kinds = self._bag()

        async def reached(due: int) -> bool:
            """Conversation `due` has started (False: the traffic stopped first)."""
            while started() < due:
                if stop.is_set():
                    return False
                await asyncio.sleep(0.05)
            return True

        if self.self_check:
            if not await reached(calm + 1):
                return
            await self._purge_first_inbox(t0)
        for kind, due in zip(kinds, self.positions(calm, n), strict=True):
            if not await reached(due):
                return
            await self._inject(kind, t0)

    async def _inject(self, kind: str, t0: float) -> None:
        mesh = self.mesh
        if kind == "actor_kill":
            child = self.rng.choice(mesh.actors)
            down = self.rng.uniform(0.2, 2.0)
            if self.rng.random() < 0.25:
                await self._kill_actor_entirely(child, down, t0)
                return
        elif kind == "redis_stop" and sum(f.kind == "redis_stop" for f in self.log) % 2 == 1:
            await self._freeze_redis(self.rng.uniform(3.0, 8.0), t0)
            return
        elif kind == "nats_restart":
            child, down = mesh.nats, self.rng.uniform(0.5, 3.0)
        elif kind == "redis_stop":
            child, down = mesh.redis, self.rng.uniform(3.0, 8.0)
        else:
            child, down = mesh.history, self.rng.uniform(0.5, 3.0)
        fault = Fault(kind, child.name, round(time.perf_counter() - t0, 3), round(down, 2))
        self.log.append(fault)
        print(f"soak: fault t={fault.at:.1f}s {kind} {child.name} down {down:.1f}s", flush=True)
        killed = time.perf_counter()
        child.kill()
        await asyncio.sleep(down)
        child.start()
        await self._wait_back(child)
        fault.recovered_s = round(time.perf_counter() - killed, 2)

    async def _kill_actor_entirely(self, child: Child, down: float, t0: float) -> None:
        """Both replicas of one actor: its messages wait in the stream until one is back."""
        actor = child.name.rsplit("-", 1)[0]
        replicas = self._replicas(actor)
        fault = Fault("actor_kill", f"{actor}-*", round(time.perf_counter() - t0, 3), round(down, 2))
        self.log.append(fault)
        print(
            f"soak: fault t={fault.at:.1f}s actor_kill {actor} (every replica) down {down:.1f}s", flush=True
        )
        await self._without(replicas, fault, asyncio.sleep(down))

    async def _without(self, replicas: list[Child], fault: Fault, while_down: Awaitable[None]) -> None:
        """SIGKILL every replica, await `while_down`, start them again and wait for the mesh."""
        killed = time.perf_counter()
        for replica in replicas:
            replica.kill()
        await while_down
        fault.down_s = fault.down_s or round(time.perf_counter() - killed, 2)  # planned, else measured
        for replica in replicas:
            replica.start()
        await self.mesh.wait_ready()
        fault.recovered_s = round(time.perf_counter() - killed, 2)

    def _replicas(self, actor: str) -> list[Child]:
        return [a for a in self.mesh.actors if a.name.rsplit("-", 1)[0] == actor]

    async def _purge_first_inbox(self, t0: float) -> None:
        """Destroy conversations in flight: no retry, redelivery or history check can bring them back."""
        actor = DEFAULT_ROUTE[0].value
        fault = Fault("stream_purge", f"{actor}-*", round(time.perf_counter() - t0, 3), 0.0)
        self.log.append(fault)
        await self._without(self._replicas(actor), fault, self._purge_inbox(actor, fault))

    async def _purge_inbox(self, actor: str, fault: Fault) -> None:
        """Wait for a message to queue in the (stopped) actor's inbox, then purge the inbox."""
        subjects = Subjects(self.mesh.layout.mesh)
        nc = NATS()
        await nc.connect(self.mesh.layout.nats_url, name="soak-purge", connect_timeout=5)
        try:
            js = nc.jetstream()
            inbox = subjects.actor(actor)
            deadline = time.monotonic() + PURGE_WAIT_S
            while time.monotonic() < deadline:
                info = await js.stream_info(subjects.stream, subjects_filter=inbox)
                if info.state.subjects and info.state.subjects.get(inbox):
                    break
                await asyncio.sleep(0.1)
            await js.purge_stream(subjects.stream, subject=inbox)
        finally:
            await nc.close()
        print(f"soak: fault t={fault.at:.1f}s stream_purge {actor} (every replica, inbox purged)", flush=True)

    async def _freeze_redis(self, down: float, t0: float) -> None:
        redis = self.mesh.redis
        fault = Fault(
            "redis_stop", "redis-server (SIGSTOP)", round(time.perf_counter() - t0, 3), round(down, 2)
        )
        self.log.append(fault)
        print(
            f"soak: fault t={fault.at:.1f}s redis_stop redis-server frozen (SIGSTOP) {down:.1f}s", flush=True
        )
        frozen = time.perf_counter()
        redis.pause()
        try:
            await asyncio.sleep(down)
        finally:
            redis.resume()
        fault.recovered_s = round(time.perf_counter() - frozen, 2)

    async def _wait_back(self, child: Child) -> None:
        mesh = self.mesh
        if child is mesh.nats:
            await mesh.wait_tcp(mesh.layout.nats_port, child)
            await mesh.wait_ready()  # every client reconnected and re-bound
        elif child is mesh.redis:
            await mesh.wait_tcp(mesh.layout.redis_port, child)
        else:
            await mesh.wait_ready()

"""The seeded fault injector: one fault at a time, at random moments, every one logged.

Kinds, drawn from a shuffled bag so each comes up equally often:
- `actor_kill`: SIGKILL one random actor replica (mid-message, like an OOM kill), start it again;
- `nats_restart`: SIGKILL nats-server, start it again on the same port and the same file store;
- `redis_stop`: SIGKILL redis-server, keep it down for a while, start it again (empty, as a cache
  restarts);
- `history_kill`: SIGKILL the history service (the single SQLite writer), start it again.
The same seed gives the same sequence of kinds, targets and pauses; when they land relative to the
conversations depends on the machine, so the log says exactly what happened and when.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from .layout import Mesh
from .procs import Child

KINDS = ("actor_kill", "nats_restart", "redis_stop", "history_kill")


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
    gap_s: tuple[float, float] = (2.0, 5.0)
    log: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def _bag(self) -> list[str]:
        kinds = [k for k in KINDS for _ in range(self.per_kind)]
        self.rng.shuffle(kinds)
        return kinds

    async def run(self, t0: float, stop: asyncio.Event) -> None:
        """Inject faults until the bag is empty or `stop` is set; each fault is fully recovered."""
        for kind in self._bag():
            pause = self.rng.uniform(*self.gap_s)
            try:
                await asyncio.wait_for(stop.wait(), pause)
                return
            except TimeoutError:
                pass
            await self._inject(kind, t0)

    async def _inject(self, kind: str, t0: float) -> None:
        mesh = self.mesh
        if kind == "actor_kill":
            child = self.rng.choice(mesh.actors)
            down = self.rng.uniform(0.2, 2.0)
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

    async def _wait_back(self, child: Child) -> None:
        mesh = self.mesh
        if child is mesh.nats:
            await mesh.wait_tcp(mesh.layout.nats_port, child)
            await mesh.wait_ready()  # every client reconnected and re-bound
        elif child is mesh.redis:
            await mesh.wait_tcp(mesh.layout.redis_port, child)
        else:
            await mesh.wait_ready()

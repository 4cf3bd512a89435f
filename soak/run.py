"""One soak: start the layout, run the calm baseline, then traffic and faults together, then judge.

Bounded: the traffic stops after `n` conversations or `max_s`; late results are fetched for at most
`late_s`; the history store gets `store_s` to catch up. Whatever happens, every child process is
stopped (or killed) before `run_soak` returns or raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NATS

from actormesh_runtime.bus import dlq
from actormesh_runtime.bus.dlq import StoredDeadLetter
from actormesh_runtime.catalog import ActorName, Subjects

from .check import Verdict, judge, stored_turns
from .faults import FaultInjector
from .layout import Layout, Mesh
from .observe import ResultWatcher
from .traffic import Traffic, collect_late


@dataclass
class SoakConfig:
    n: int = 1000
    seed: int = 1
    concurrency: int = 8
    think_s: float = 2.0
    calm: int = 0
    """Conversations before the first fault; 0 = a tenth of `n`."""
    faults_per_kind: int = 10
    max_s: float = 1800.0
    late_s: float = 120.0
    store_s: float = 60.0
    self_check: bool = False
    """Destroy a few conversations first (`stream_purge`): the run must then fail with `lost` > 0."""
    env: dict[str, str] = field(default_factory=dict)
    """Runtime settings for every process of the mesh on top of SOAK_RUNTIME_ENV (e.g. DIRECT_HOPS)."""


@dataclass
class SoakRun:
    config: SoakConfig
    verdict: Verdict
    faults: list[dict[str, Any]]
    timings: dict[str, float]
    workdir: str
    deliveries: dict[str, int] = field(default_factory=dict)
    """Deliveries (first ones and redeliveries) of each actor's consumer: how many hops went through
    the stream, e.g. only the first step's with direct hops."""


async def _stream_facts(nats_url: str, mesh: str) -> tuple[list[StoredDeadLetter], dict[str, int]]:
    """What the streams hold at the end, on one connection: the dead letters, and the deliveries (first
    ones and redeliveries) of each actor's consumer."""
    nc = NATS()
    await nc.connect(nats_url, name="soak-streams", connect_timeout=5)
    try:
        js, subjects = nc.jetstream(), Subjects(mesh)
        dead = await dlq.list_records(js, subjects, limit=100_000)
        deliveries = {}
        for actor in ActorName:
            info = await js.consumer_info(subjects.stream, subjects.consumer(actor))
            deliveries[actor.value] = int(info.delivered.consumer_seq or 0)
        return dead, deliveries
    finally:
        await nc.close()


async def _wait_stored(db: Path, message_ids: set[str], max_s: float) -> None:
    deadline = time.monotonic() + max_s
    while time.monotonic() < deadline:
        stored = {m for _, m, role in await asyncio.to_thread(stored_turns, db) if role == "agent"}
        if message_ids <= stored:
            return
        await asyncio.sleep(0.5)


async def run_soak(config: SoakConfig, workdir: Path) -> SoakRun:
    layout = Layout(workdir, extra_env=dict(config.env))
    mesh = Mesh(layout)
    timings: dict[str, float] = {}
    begun = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    try:
        await mesh.start()
        timings["start_s"] = round(time.perf_counter() - begun, 1)
        watcher = ResultWatcher(layout.nats_url, layout.mesh)
        await watcher.start()
        calm = config.calm or max(config.concurrency * 4, config.n // 10)
        traffic = Traffic(layout.gateway_urls, config.n, config.concurrency, config.think_s, calm)
        injector = FaultInjector(mesh, config.seed, config.faults_per_kind, config.self_check)
        t0 = time.perf_counter()
        sending = asyncio.create_task(traffic.run(config.max_s))
        tasks.append(sending)
        await traffic.calm_done.wait()
        timings["calm_s"] = round(time.perf_counter() - t0, 1)
        stop_faults = asyncio.Event()
        injecting = asyncio.create_task(
            injector.run(t0, lambda: len(traffic.conversations), calm, config.n, stop_faults)
        )
        tasks.append(injecting)
        await sending
        stop_faults.set()
        await injecting
        timings["traffic_s"] = round(time.perf_counter() - t0, 1)
        await mesh.wait_ready()
        await collect_late(traffic.conversations, layout.gateway_urls, config.late_s)
        accepted = {c.message_id for c in traffic.conversations if c.message_id}
        await _wait_stored(layout.db_path, accepted, config.store_s)
        await asyncio.sleep(1.0)  # the last results on the wire reach the watcher
        await watcher.stop()
        dead_letters, deliveries = await _stream_facts(layout.nats_url, layout.mesh)
        verdict = judge(
            traffic.conversations,
            await asyncio.to_thread(stored_turns, layout.db_path),
            watcher.seen,
            await mesh.mock_state(),
            dead_letters,
        )
        timings["total_s"] = round(time.perf_counter() - begun, 1)
        return SoakRun(config, verdict, [asdict(f) for f in injector.log], timings, str(workdir), deliveries)
    finally:
        for task in tasks:  # interrupted: no fault may restart a process after the stop below
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await mesh.stop()
        finally:
            mesh.children.kill_all()


def write_json(run: SoakRun, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"config": asdict(run.config), "verdict": asdict(run.verdict), "faults": run.faults,
           "timings": run.timings, "deliveries": run.deliveries}  # fmt: skip
    with contextlib.suppress(OSError):
        path.write_text(json.dumps(doc, indent=2, default=str))

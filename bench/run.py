"""Orchestrates one benchmark: a nats-server; the relay's payloads captured from an unfused mesh;
then per repeat every target at each concurrency level; then the profile and the footprint.

Targets (`--targets`): the one-process layout (`actormesh dev`) — `mesh`, `mesh-nf` (hop fusion
off), `mesh-np` (no progress events), `host-only`, `relay-7`, `relay-8` — and the one-process-per-
actor layout (Kubernetes) — `mesh-mp`, `mesh-direct-mp` (direct hops), `mesh-np-mp`,
`host-only-mp`, `mesh-groups` and `relay-7-mp`. Every phase is bounded by a message count and a
time limit, so a run always ends by itself.
"""

from __future__ import annotations

import cProfile
import json
import os
import tempfile
import time
import timeit
from dataclasses import dataclass, field
from typing import Any, Literal

from actormesh_runtime.commands.eventloop import loop_name
from actormesh_runtime.embedded_nats import EmbeddedNats
from actormesh_runtime.envelope import Envelope, ProgressEvent
from actormesh_runtime.settings import RuntimeSettings

from .actors import actor_costs
from .footprint import footprint
from .load import Pending, run_level
from .machine import machine
from .mesh import MIX, MeshTarget, relay_payloads
from .profile import summarise
from .relay import RelayChain
from .stats import LevelResult

TARGETS: dict[str, str] = {
    "mesh": "the nine actors in one process (LocalMesh, hop fusion on)",
    "mesh-nf": "the same with HOP_FUSION=false: every hop through the stream",
    "mesh-np": "mesh without a progress subject (no progress events)",
    "host-only": "the same hosts with actors that do nothing (unfused)",
    "relay-7": "bare 7-hop JetStream relay, hops in one process",
    "relay-8": "bare 8-hop JetStream relay, hops in one process",
    "mesh-mp": "one `actormesh actor NAME` process per actor (the Kubernetes layout)",
    "mesh-direct-mp": "mesh-mp with DIRECT_HOPS: core NATS between the actor processes, the chain acked once",
    "relay-7-mp": "bare 7-hop relay, one process per hop",
    "host-only-mp": "mesh-mp with actors that do nothing (the host's own cost per hop in that layout)",
    "mesh-np-mp": "mesh-mp without a progress subject (no progress events)",
    "mesh-groups": "three processes of co-located actors (`actormesh actor A,B,...`), fused inside each",
}
DEFAULT_TARGETS = (
    "mesh", "mesh-nf", "host-only", "relay-7", "relay-8", "mesh-mp", "mesh-direct-mp", "mesh-groups",
    "relay-7-mp",
)  # fmt: skip


@dataclass
class Config:
    levels: list[int] = field(default_factory=lambda: [1, 8, 32])
    sequential: int = 300
    """Messages at concurrency 1 (the low-load latency distribution)."""
    messages: int = 1500
    """Messages at every other level."""
    warmup: int = 40
    max_seconds: float = 30.0
    repeat: int = 3
    targets: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    profile_messages: int = 300
    footprint: bool = True
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    """The loop of the benchmark process and of every child process (the runtime's default)."""
    server_pid: int | None = None
    """Set by run_benchmark: the nats-server whose CPU each level also reports."""


def make_target(name: str, url: str, config: Config, payloads: Any) -> Any:
    loop = config.event_loop
    unfused = RuntimeSettings(hop_fusion=False)
    if name.startswith("relay-"):
        hops = int(name.split("-")[1])
        return RelayChain(url, hops, payloads, processes=name.endswith("-mp"), event_loop=loop)
    options: dict[str, dict[str, Any]] = {
        "mesh": {},
        "mesh-nf": {"settings": unfused},
        "mesh-np": {"progress": False},
        "host-only": {"kind": "host-only", "settings": unfused},
        "mesh-mp": {"layout": "processes"},
        "mesh-direct-mp": {"layout": "processes", "settings": RuntimeSettings(direct_hops=True)},
        "host-only-mp": {"layout": "processes", "kind": "host-only"},
        "mesh-np-mp": {"layout": "processes", "progress": False},
        "mesh-groups": {"layout": "groups"},
    }
    if name not in options:
        raise ValueError(f"unknown target {name!r}: one of {', '.join(TARGETS)}")
    return MeshTarget(url, label=name, event_loop=loop, **options[name])


async def _levels(target: Any, config: Config) -> list[LevelResult]:
    pending: Pending = target.pending
    await run_level(target, pending, concurrency=8, total=config.warmup, max_seconds=config.max_seconds)
    results = []
    for level in config.levels:
        total = config.sequential if level == 1 else config.messages
        result = await run_level(
            target,
            pending,
            concurrency=level,
            total=total,
            max_seconds=config.max_seconds,
            server_pid=config.server_pid,
        )
        results.append(result)
        _progress(result)
    return results


def _progress(result: LevelResult) -> None:
    s = result.summary()
    print(f"  {s['target']:<11} c={s['concurrency']:<3} n={s['completed']:<5} {s['msgs_per_s']:>7} msg/s  "
          f"p50 {s['p50_ms']:>7} ms  p99 {s['p99_ms']:>7} ms", flush=True)  # fmt: skip


async def _phase(target: Any, config: Config) -> list[LevelResult]:
    try:
        await target.start()  # inside: a start that fails half-way still stops what it started (mocks)
        return await _levels(target, config)
    finally:
        await target.stop()


async def capture_payloads(url: str, config: Config) -> dict[str, bytes]:
    """One real envelope per mix kind as response_aggregator receives it (an unfused mesh: a fused
    one never publishes to that inbox). The relay's payloads."""
    target = MeshTarget(url, settings=RuntimeSettings(hop_fusion=False), event_loop=config.event_loop)
    try:
        await target.start()
        kinds = len(MIX)
        await run_level(target, target.pending, concurrency=1, total=2 * kinds, max_seconds=60)
        await target.stop_capture()
        return dict(target.captured)
    finally:
        await target.stop()


async def _profile_one(target: Any, config: Config) -> dict[str, Any]:
    try:
        await target.start()
        pending: Pending = target.pending
        await run_level(target, pending, concurrency=8, total=config.warmup, max_seconds=config.max_seconds)
        profiler = cProfile.Profile()
        profiler.enable()
        result = await run_level(
            target, pending, concurrency=8, total=config.profile_messages, max_seconds=config.max_seconds
        )
        profiler.disable()
        summary = summarise(profiler, result.completed)
        summary["wall_s"] = round(result.wall_s, 3)
        return summary
    finally:
        await target.stop()


async def _profile(url: str, config: Config, payloads: Any) -> dict[str, Any]:
    """The same bounded run at c=8 under cProfile for the mesh and its baselines."""
    names = [n for n in ("mesh", "mesh-nf", "host-only", "relay-7") if n in config.targets]
    return {name: await _profile_one(make_target(name, url, config, payloads), config) for name in names}


def codec_costs(envelope_json: bytes) -> dict[str, float]:
    """Microseconds per call for what every hop does to the envelope, pydantic vs plain json."""
    envelope = Envelope.from_bytes(envelope_json)
    doc = json.loads(envelope_json)
    event = ProgressEvent(message_id=envelope.message_id, actor=envelope.slip.current, status="done",
                          ms=1.0, attempt=1)  # fmt: skip
    cases = {
        "Envelope.from_bytes": lambda: Envelope.from_bytes(envelope_json),
        "Envelope.to_bytes": envelope.to_bytes,
        "json.loads": lambda: json.loads(envelope_json),
        "json.dumps+encode": lambda: json.dumps(doc).encode(),
        "ProgressEvent dump": lambda: event.model_dump_json().encode(),
        "Envelope.model_copy(deep)": lambda: envelope.model_copy(deep=True),
    }
    out = {"envelope_bytes": float(len(envelope_json))}
    for name, fn in cases.items():
        n = 2000
        out[name] = round(min(timeit.repeat(fn, number=n, repeat=3)) / n * 1e6, 1)
    return out


async def run_benchmark(config: Config) -> dict[str, Any]:
    started = time.time()
    load_before = os.getloadavg()
    results: dict[str, Any] = {
        "config": config.__dict__, "machine": machine(), "event_loop": loop_name(), "repeats": [],
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="actormesh-bench-") as tmp:
        server = EmbeddedNats(tmp)
        url = await server.astart()
        config.server_pid = server.pid
        try:
            print("capturing the relay's payloads from the mesh", flush=True)
            captured = await capture_payloads(url, config)
            payloads = relay_payloads(captured)
            for rep in range(config.repeat):
                print(f"repeat {rep + 1}/{config.repeat} (load {os.getloadavg()[0]:.2f})", flush=True)
                levels: list[LevelResult] = []
                for name in config.targets:
                    levels += await _phase(make_target(name, url, config, payloads), config)
                results["repeats"].append(
                    {"load_avg": os.getloadavg(), "levels": [r.to_json() for r in levels]}
                )
            sizes = {k: len(v) for k, v in captured.items()}
            results["relay_payload_bytes"] = sizes
            if captured:
                results["codec_us"] = codec_costs(max(captured.values(), key=len))
                results["actor_us"] = await actor_costs(captured)
            if config.profile_messages:
                print("profiling the mesh (cProfile)", flush=True)
                results["profile"] = await _profile(url, config, payloads)
            if config.footprint:
                print("measuring actor processes (RSS, import time)", flush=True)
                results["footprint"] = await footprint(url)
        finally:
            await server.astop()
    results["load_avg_before"] = load_before
    results["load_avg_after"] = os.getloadavg()
    results["elapsed_s"] = round(time.time() - started, 1)
    return results

"""Orchestrates one benchmark: a nats-server, then per repeat the mesh, the host-only mesh and the
relay chains (7 and 8 hops) at each concurrency level, then the profile and the footprint.

Every phase is bounded by a message count and a time limit, so a run always ends by itself.
"""

from __future__ import annotations

import cProfile
import json
import os
import tempfile
import time
import timeit
from dataclasses import dataclass, field
from typing import Any

from actormesh_runtime.embedded_nats import EmbeddedNats
from actormesh_runtime.envelope import Envelope, ProgressEvent

from .actors import actor_costs
from .footprint import footprint
from .load import Pending, run_level
from .mesh import MeshTarget, relay_payloads
from .profile import summarise
from .relay import RelayChain
from .stats import LevelResult


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
    relay_hops: list[int] = field(default_factory=lambda: [7, 8])
    host_only: bool = True
    what_if: bool = True
    """Also run `mesh-np`: the mesh without a progress subject (no progress events published)."""
    profile_messages: int = 300
    footprint: bool = True
    uvloop: bool = False
    server_pid: int | None = None
    """Set by run_benchmark: the nats-server whose CPU each level also reports."""


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


async def _mesh_phase(url: str, config: Config, kind: str) -> tuple[list[LevelResult], dict[str, bytes]]:
    variants: dict[str, dict[str, Any]] = {
        "mesh": {},
        "host-only": {"kind": "host-only"},
        "mesh-np": {"progress": False, "label": "mesh-np"},
    }
    target = MeshTarget(url, **variants[kind])
    await target.start()
    try:
        results = await _levels(target, config)
        await target.stop_capture()
        return results, dict(target.captured)
    finally:
        await target.stop()


async def _relay_phase(url: str, config: Config, hops: int, payloads: Any) -> list[LevelResult]:
    chain = RelayChain(url, hops, payloads)
    await chain.start()
    try:
        return await _levels(chain, config)
    finally:
        await chain.stop()


async def _profile_one(target: Any, config: Config) -> dict[str, Any]:
    await target.start()
    try:
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
    profiles = {"mesh": await _profile_one(MeshTarget(url), config)}
    if config.host_only:
        profiles["host-only"] = await _profile_one(MeshTarget(url, kind="host-only"), config)
    if payloads:
        profiles["relay-7"] = await _profile_one(RelayChain(url, 7, payloads), config)
    return profiles


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
    results: dict[str, Any] = {"config": config.__dict__, "cpus": os.cpu_count(), "repeats": []}
    with tempfile.TemporaryDirectory(prefix="actormesh-bench-") as tmp:
        server = EmbeddedNats(tmp)
        url = await server.astart()
        config.server_pid = server.pid
        try:
            captured: dict[str, bytes] = {}
            for rep in range(config.repeat):
                print(f"repeat {rep + 1}/{config.repeat} (load {os.getloadavg()[0]:.2f})", flush=True)
                levels: list[LevelResult] = []
                mesh_levels, got = await _mesh_phase(url, config, "mesh")
                captured = captured or got
                levels += mesh_levels
                if config.what_if:
                    levels += (await _mesh_phase(url, config, "mesh-np"))[0]
                if config.host_only:
                    levels += (await _mesh_phase(url, config, "host-only"))[0]
                for hops in config.relay_hops:
                    levels += await _relay_phase(url, config, hops, relay_payloads(captured))
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
                results["profile"] = await _profile(url, config, relay_payloads(captured))
            if config.footprint:
                print("measuring actor processes (RSS, import time)", flush=True)
                results["footprint"] = await footprint(url)
        finally:
            await server.astop()
    results["load_avg_before"] = load_before
    results["load_avg_after"] = os.getloadavg()
    results["elapsed_s"] = round(time.time() - started, 1)
    return results

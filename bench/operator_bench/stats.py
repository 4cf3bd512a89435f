"""Aggregation of the operator bench's measurements, and its text report (pure, unit-tested)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.stats import percentile


def spread(values_s: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / max of a list of durations in seconds (nearest rank), rounded to milliseconds."""
    ordered = sorted(values_s)
    return {
        "p50_s": round(percentile(ordered, 50), 3),
        "p99_s": round(percentile(ordered, 99), 3),
        "max_s": round(ordered[-1], 3) if ordered else 0.0,
    }


def per_mesh_durations(started: Mapping[str, float], reached: Mapping[str, float]) -> list[float]:
    """For every mesh that reached the milestone: seconds from its create to the milestone."""
    return [reached[name] - t0 for name, t0 in started.items() if name in reached]


def core_percent(cpu_s: float, wall_s: float) -> float:
    return round(100 * cpu_s / wall_s, 2) if wall_s > 0 else 0.0


def per_event_cpu_ms(cpu_s: float, wall_s: float, idle_rate: float, events: int) -> float:
    """CPU per event with the idle cost of the same window taken out (never below zero)."""
    if events <= 0:
        return 0.0
    return round(max(cpu_s - idle_rate * wall_s, 0.0) / events * 1000, 3)


def _mb(value: float) -> str:
    return f"{value / 1e6:.0f} MB"


def report(results: Mapping[str, Any]) -> list[str]:
    """The human-readable summary printed at the end of a run (and pasted into docs/benchmarks.md)."""
    m = results["machine"]
    lines = [
        f"machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB; "
        f"load before {m['load_avg']}, after {results.get('load_avg_after')}",
        f"operator: {results.get('operator_label', '')}",
        "",
        "meshes | children/mesh | apply->children p50 / p99 | all children | observedGeneration p50 / "
        "max | API requests per create | operator CPU | RSS after",
    ]
    for burst in results["bursts"]:
        c, o = burst["children"], burst["observed"]
        lines.append(
            f"{burst['meshes']:>6} | {burst['children_per_mesh']:>13} "
            f"| {c['p50_s']:.2f} s / {c['p99_s']:.2f} s"
            f" | {c['max_s']:.2f} s | {o['p50_s']:.2f} s / {o['max_s']:.2f} s"
            f" | {burst['requests_per_create']:.1f} | {burst['cpu_s']:.2f} s | {_mb(burst['rss_bytes'])}"
        )
        done = min(
            burst.get("completed_children", burst["meshes"]), burst.get("completed_observed", burst["meshes"])
        )
        if burst.get("control_plane_cpu_s"):
            parts = ", ".join(f"{name} {cpu:.2f} s" for name, cpu in burst["control_plane_cpu_s"].items())
            lines.append(f"       control plane CPU in the same window: {parts}")
        if done < burst["meshes"]:
            lines.append(
                f"       INCOMPLETE: only {done} of {burst['meshes']} meshes finished within the timeout"
            )
    first = results["bursts"][0] if results["bursts"] else None
    if first:
        lines.append(f"requests of the 1-mesh create: {first['requests_by_label']}")
    noop = results.get("noop")
    if noop and noop.get("skipped"):
        lines.append(f"no-op child events: skipped, {noop['skipped']}")
    elif noop:
        lines.append(
            f"no-op child events (status-only): {noop['events']} events, "
            f"{noop['requests']} API requests ({noop['requests_per_event']:.2f}/event), "
            f"{noop['cpu_ms_per_event']:.3f} ms operator CPU/event with the idle rate subtracted "
            f"({noop.get('raw_cpu_ms_per_event', 0.0):.3f} ms without)"
        )
    micro = results.get("noop_micro")
    if micro:
        lines.append(
            f"no-op child event in-process: {micro['cpu_us_per_event']:.0f} us CPU each "
            f"({micro['events']} events of a {micro['object_bytes']} B Deployment, "
            f"{micro['woken']} woke a mesh)"
        )
    fill = results.get("fill")
    if fill:
        lines.append(f"RSS with {fill['meshes_total']} meshes: {_mb(fill['rss_bytes'])}")
    idle = results.get("idle")
    if idle:
        lines.append(
            f"idle {idle['seconds']:.0f} s after the burst ({idle['meshes']} meshes, "
            f"after {results.get('idle_quiet_wait_s', 0)} s waiting for quiet): "
            f"{idle['cpu_s']:.2f} CPU-s = {idle['core_pct']:.2f} % of a core, "
            f"{idle['requests']} API requests "
            f"{idle['requests_by_label']}, RSS {_mb(idle['rss_bytes'])}"
        )
    return lines

"""The side-by-side table printed at the end of a run (pure: results dict → text)."""

from __future__ import annotations

import statistics
from typing import Any

from .machine import describe

BASELINE = "relay-7"
BASELINE_MP = "relay-7-mp"
_TAIL = (
    f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'x relay p50':>12} {'x relay tput':>13} "
    f"{'x relay cpu':>12} {'cpu ms/msg':>11} {'nats ms/msg':>11}"
)


def baseline_of(target: str) -> str:
    """The relay a target is compared with: the one in its own layout."""
    return BASELINE_MP if target.endswith(("-mp", "-groups")) else BASELINE


def _ratios(lv: dict[str, Any], ref: dict[str, Any] | None) -> tuple[float, float, float]:
    """(p50, throughput, cpu per message) as multiples of the baseline's at the same level."""
    if not ref:
        return 0.0, 0.0, 0.0

    def ratio(key: str) -> float:
        return lv.get(key, 0.0) / ref[key] if ref.get(key) else 0.0

    return ratio("p50_ms"), ratio("msgs_per_s"), ratio("cpu_ms_per_msg")


def _profiles(profiles: dict[str, Any]) -> list[str]:
    """Per category: profiled CPU microseconds per message, one column per target."""
    if not profiles:
        return []
    names = list(profiles)
    first = profiles[names[0]]
    lines = [f"cProfile, {first['messages']} msgs at c=8, CPU us/msg (profiler overhead included):"]
    lines.append(f"  {'category':<42}" + "".join(f"{n:>12}" for n in names))
    busy = "".join(f"{profiles[n]['busy_us_per_msg']:>12}" for n in names)
    lines.append(f"  {'TOTAL (busy)':<42}{busy}")
    categories = sorted({c for p in profiles.values() for c in p["categories"]},
                        key=lambda c: -first["categories"].get(c, {}).get("us_per_msg", 0))  # fmt: skip
    for cat in categories:
        row = "".join(f"{profiles[n]['categories'].get(cat, {}).get('us_per_msg', 0):>12}" for n in names)
        lines.append(f"  {cat:<42}{row}")
    return lines


def median_levels(results: dict[str, Any]) -> dict[tuple[str, int], dict[str, float]]:
    """Median over the repeats of each (target, concurrency)."""
    by_key: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for rep in results["repeats"]:
        for lv in rep["levels"]:
            by_key.setdefault((lv["target"], lv["concurrency"]), []).append(lv)
    keys = ("msgs_per_s", "p50_ms", "p95_ms", "p99_ms", "cpu_ms_per_msg", "server_cpu_ms_per_msg")
    return {k: {m: statistics.median(x.get(m, 0.0) for x in v) for m in keys} for k, v in by_key.items()}


def medians(results: dict[str, Any]) -> list[str]:
    """Median over the repeats of each (target, concurrency): the table to quote."""
    med = median_levels(results)
    lines = [
        f"median of {len(results['repeats'])} runs (x relay: vs {BASELINE}; -mp targets vs {BASELINE_MP})",
        f"{'target':<11} {'conc':>4} {'msg/s':>8} {_TAIL}",
    ]
    for (target, conc), m in med.items():
        p50x, tputx, cpux = _ratios(m, med.get((baseline_of(target), conc)))
        lines.append(
            f"{target:<11} {conc:>4} {m['msgs_per_s']:>8.1f} {m['p50_ms']:>8.2f} {m['p95_ms']:>8.2f} "
            f"{m['p99_ms']:>8.2f} {p50x:>11.2f}x {tputx:>12.2f}x {cpux:>11.2f}x "
            f"{m['cpu_ms_per_msg']:>11.3f} {m['server_cpu_ms_per_msg']:>11.3f}"
        )
    return [*lines, ""]


def table(results: dict[str, Any]) -> str:
    lines = []
    if "machine" in results:
        lines.append(f"machine: {describe(results['machine'])}; event loop {results.get('event_loop')}")
        before = ", ".join(f"{x:.2f}" for x in results.get("load_avg_before", ()))
        after = ", ".join(f"{x:.2f}" for x in results.get("load_avg_after", ()))
        lines.append(f"load average before: {before}; after: {after}")
        lines.append("")
    for i, rep in enumerate(results["repeats"], 1):
        load = ", ".join(f"{x:.2f}" for x in rep["load_avg"])
        lines.append(f"run {i}  (load average after: {load})")
        lines.append(f"{'target':<11} {'conc':>4} {'n':>5} {'msg/s':>8} {_TAIL}")
        base = {(lv["target"], lv["concurrency"]): lv for lv in rep["levels"]}
        for lv in rep["levels"]:
            p50x, tputx, cpux = _ratios(lv, base.get((baseline_of(lv["target"]), lv["concurrency"])))
            lines.append(
                f"{lv['target']:<11} {lv['concurrency']:>4} {lv['completed']:>5} {lv['msgs_per_s']:>8} "
                f"{lv['p50_ms']:>8} {lv['p95_ms']:>8} {lv['p99_ms']:>8} {p50x:>11.2f}x {tputx:>12.2f}x "
                f"{cpux:>11.2f}x {lv.get('cpu_ms_per_msg', 0):>11} {lv.get('server_cpu_ms_per_msg', 0):>11}"
            )
        lines.append("")
    lines += medians(results)
    mesh_kinds = [
        lv for lv in results["repeats"][-1]["levels"] if lv["target"] == "mesh" and lv["concurrency"] == 1
    ]
    if mesh_kinds:
        kinds = ", ".join(f"{k} {v}" for k, v in mesh_kinds[0]["p50_ms_by_kind"].items())
        lines.append(f"mesh p50 by message kind at c=1 (ms): {kinds}")
    if "codec_us" in results:
        lines.append("per-call cost (us): " + ", ".join(f"{k} {v}" for k, v in results["codec_us"].items()))
    if "actor_us" in results:
        costs = ", ".join(f"{k} {v}" for k, v in results["actor_us"]["us_per_call"].items())
        lines.append(f"actor.handle CPU (us/call, off the bus): {costs}")
        lines.append(f"  sum over the default route: {results['actor_us']['sum_default_route_us']} us")
    lines += _profiles(results.get("profile") or {})
    fp = results.get("footprint")
    if fp:
        for a in fp["actors"]:
            llm = a["llm"] or "-"
            lines.append(
                f"actor {a['actor']:<20} llm={llm:<20} ready {a['ready_s']} s  RSS idle "
                f"{a['rss_idle_mb']} MB, after {a['messages']} msgs {a['rss_after_mb']} MB"
            )
        lines.append("import (s): " + ", ".join(f"{k} {v}" for k, v in fp["import_s"].items()))
    return "\n".join(lines)

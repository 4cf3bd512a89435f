"""The side-by-side table printed at the end of a run (pure: results dict → text)."""

from __future__ import annotations

import statistics
from typing import Any

BASELINE = "relay-7"
_TAIL = (
    f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'x relay-7 p50':>14} {'x relay-7 tput':>15} "
    f"{'cpu ms/msg':>11} {'nats ms/msg':>11}"
)


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


def medians(results: dict[str, Any]) -> list[str]:
    """Median over the repeats of each (target, concurrency): the table to quote."""
    by_key: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for rep in results["repeats"]:
        for lv in rep["levels"]:
            by_key.setdefault((lv["target"], lv["concurrency"]), []).append(lv)
    base = {c: statistics.median(x["msgs_per_s"] for x in v) for (t, c), v in by_key.items() if t == BASELINE}
    base_p50 = {c: statistics.median(x["p50_ms"] for x in v) for (t, c), v in by_key.items() if t == BASELINE}
    lines = [f"median of {len(results['repeats'])} runs",
             f"{'target':<11} {'conc':>4} {'msg/s':>8} {_TAIL}"]  # fmt: skip
    for (target, conc), v in by_key.items():
        keys = ("msgs_per_s", "p50_ms", "p95_ms", "p99_ms", "cpu_ms_per_msg", "server_cpu_ms_per_msg")
        med = {k: statistics.median(x.get(k, 0.0) for x in v) for k in keys}
        p50x = med["p50_ms"] / base_p50[conc] if base_p50.get(conc) else 0.0
        tputx = med["msgs_per_s"] / base[conc] if base.get(conc) else 0.0
        lines.append(
            f"{target:<11} {conc:>4} {med['msgs_per_s']:>8.1f} {med['p50_ms']:>8.2f} {med['p95_ms']:>8.2f} "
            f"{med['p99_ms']:>8.2f} {p50x:>13.2f}x {tputx:>14.2f}x "
            f"{med['cpu_ms_per_msg']:>11.3f} {med['server_cpu_ms_per_msg']:>11.3f}"
        )
    return [*lines, ""]


def table(results: dict[str, Any]) -> str:
    lines = []
    for i, rep in enumerate(results["repeats"], 1):
        load = ", ".join(f"{x:.2f}" for x in rep["load_avg"])
        lines.append(f"run {i}  (load average after: {load})")
        lines.append(f"{'target':<11} {'conc':>4} {'n':>5} {'msg/s':>8} {_TAIL}")
        base = {lv["concurrency"]: lv for lv in rep["levels"] if lv["target"] == BASELINE}
        for lv in rep["levels"]:
            ref = base.get(lv["concurrency"])
            p50x = lv["p50_ms"] / ref["p50_ms"] if ref and ref["p50_ms"] else 0.0
            tputx = lv["msgs_per_s"] / ref["msgs_per_s"] if ref and ref["msgs_per_s"] else 0.0
            lines.append(
                f"{lv['target']:<11} {lv['concurrency']:>4} {lv['completed']:>5} {lv['msgs_per_s']:>8} "
                f"{lv['p50_ms']:>8} {lv['p95_ms']:>8} {lv['p99_ms']:>8} {p50x:>13.2f}x {tputx:>14.2f}x "
                f"{lv.get('cpu_ms_per_msg', 0):>11} {lv.get('server_cpu_ms_per_msg', 0):>11}"
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

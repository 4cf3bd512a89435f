"""What a soak prints: the faults, the numbers, the DLQ explained, the problems, one summary line."""

from __future__ import annotations

from .run import SoakRun


def summary_line(run: SoakRun) -> str:
    v = run.verdict
    return (
        f"soak: n={v.n} answered={v.answered} stored={v.stored} lost={v.lost} duplicated={v.duplicated} "
        f"side_effects_wrong={v.side_effects_wrong} faults={len(run.faults)}"
    )


def report(run: SoakRun) -> str:
    v, c = run.verdict, run.config
    kinds: dict[str, int] = {}
    for fault in run.faults:
        kinds[fault["kind"]] = kinds.get(fault["kind"], 0) + 1
    slowest = max((f["recovered_s"] or 0.0 for f in run.faults), default=0.0)
    lines = [
        f"soak seed={c.seed} n={c.n} concurrency={c.concurrency} think={c.think_s}s "
        f"faults/kind={c.faults_per_kind}; workdir {run.workdir}",
        f"timings: {run.timings}",
        f"faults: {len(run.faults)} {kinds}; slowest recovery {slowest:.1f}s",
        f"conversations: accepted={v.accepted} (over WebSocket: {v.over_ws}) answered={v.answered} "
        f"(late, fetched after 504: {v.answered_late}) stored={v.stored} refused={v.refused} "
        f"http_errors={v.http_errors}",
        f"answers: error-path={v.error_answers} wrong={v.wrong_answers} resent-identical={v.resent}",
        f"runtime env: {c.env or 'defaults'}; deliveries by actor consumer: {run.deliveries}",
    ]
    for phase, stats in v.latency_ms.items():
        label = "without faults" if phase == "calm" else "with faults"
        lines.append(
            f"latency {label:<15} n={int(stats['n'] or 0):<5} p50={stats['p50']} ms p99={stats['p99']} ms"
        )
    lines.append(f"dead letters: {sum(int(x.split(' x ')[0]) for x in v.dlq)} "
                 f"(unexplained: {v.dlq_unexplained})")  # fmt: skip
    lines += [f"  {entry}" for entry in v.dlq]
    if v.problems:
        lines.append(f"problems ({len(v.problems)}):")
        lines += [f"  {p}" for p in v.problems[:50]]
    lines.append(summary_line(run))
    return "\n".join(lines)

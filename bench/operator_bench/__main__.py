"""`python -m bench.operator_bench [OUT.json]`: run the operator bench; `... plot A.json B.json -o X.png`.

Environment: BENCH_OPERATOR_IDLE_S (idle window after the burst, default 120 s),
BENCH_OPERATOR_PYTHONPATH (another checkout's `operator/` dir to measure instead of this one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from actormesh_operator.reconcile.kube import KubeClient, load_kubeconfig

from . import procstat
from .cluster import Bench, new_workdir
from .micro import noop_event_cpu_us
from .plot import write_plot
from .scenario import Phases
from .stats import report

DEFAULT_OUT = Path(".actormesh/bench/operator.json")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.operator_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT, help="results JSON")
    parser.add_argument("--counts", default="1,10,50", help="meshes per burst, comma-separated")
    parser.add_argument("--total", type=int, default=100, help="meshes in total before the idle window (RSS)")
    parser.add_argument("--idle-s", type=float, default=float(os.environ.get("BENCH_OPERATOR_IDLE_S", "120")))
    parser.add_argument("--noop-events", type=int, default=100)
    parser.add_argument("--settle-s", type=float, default=10.0, help="wait after each burst (counted)")
    parser.add_argument("--timeout-s", type=float, default=180.0, help="give up on a burst after this")
    parser.add_argument("--pythonpath", default=os.environ.get("BENCH_OPERATOR_PYTHONPATH") or None)
    parser.add_argument("--label", default=None, help="name of this operator version in the report")
    parser.add_argument("--crd", type=Path, default=None, help="CRD file (default: crds/ of this tree)")
    parser.add_argument("--plot", type=Path, default=None, help="PNG (default: next to OUT)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (audit and operator logs)")
    return parser.parse_args(argv)


async def measure(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    assert bench.kube is not None
    pid = bench.start_operator(args.pythonpath)
    results: dict[str, Any] = {"machine": procstat.machine(), "python": sys.version.split()[0]}
    results["operator_label"] = args.label or (
        f"PYTHONPATH={args.pythonpath}" if args.pythonpath else "this tree"
    )
    results["bursts"] = []
    counts = [int(c) for c in args.counts.split(",") if c.strip()]
    async with KubeClient(load_kubeconfig(bench.kube.kubeconfig)) as kube:
        phases = Phases(kube, pid, bench.audit_log, bench.control_plane_pids())
        await phases.idle(3.0, 0)  # the operator's own start-up settles first
        created = 0
        for count in counts:
            print(f"burst of {count} meshes (load {os.getloadavg()[0]:.2f})", flush=True)
            save(args.out, results)
            burst = await phases.burst(
                count, f"bench-{count}", settle_s=args.settle_s, timeout_s=args.timeout_s
            )
            results["bursts"].append(burst)
            created += count
        results["quiet_wait_s"] = await phases.quiet(5.0, 120.0)
        probe = await phases.idle(10.0, created)
        idle_rate = probe["cpu_s"] / max(probe["seconds"], 1e-9)
        if args.noop_events and counts:
            print(f"{args.noop_events} status-only child events", flush=True)
            results["noop"] = await phases.noop_events(
                f"bench-{counts[-1]}", args.noop_events, interval_s=0.05, idle_rate=idle_rate, settle_s=3.0
            )
            sample = await phases.sample_deployment(f"bench-{counts[-1]}")
            if sample is not None and not args.pythonpath:  # it measures this tree's code
                results["noop_micro"] = noop_event_cpu_us(sample)
        if args.total > created:
            print(f"filling up to {args.total} meshes", flush=True)
            fill = await phases.burst(
                args.total - created, "bench-fill", settle_s=args.settle_s, timeout_s=args.timeout_s
            )
            created = args.total
            results["fill"] = {"meshes_total": created, "rss_bytes": fill["rss_bytes"], "burst": fill}
        results["idle_quiet_wait_s"] = await phases.quiet(10.0, 300.0)
        print(f"idle for {args.idle_s:.0f} s", flush=True)
        results["idle"] = await phases.idle(args.idle_s, created)
    results["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    return results


def save(out: Path, results: dict[str, Any]) -> None:
    """Written as the run goes, so an interrupted run still leaves its figures."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


def main(argv: list[str]) -> int:
    if argv[:1] == ["plot"]:
        parser = argparse.ArgumentParser(prog="python -m bench.operator_bench plot")
        parser.add_argument("results", nargs="+", type=Path, help="LABEL=FILE.json or FILE.json")
        parser.add_argument("-o", "--out", type=Path, required=True)
        plot_args = parser.parse_args(argv[1:])
        docs = []
        for item in plot_args.results:
            label, _, path = str(item).rpartition("=")
            docs.append((label or Path(path).stem, json.loads(Path(path).read_text())))
        print(write_plot(docs, plot_args.out))
        return 0
    args = parse_args(argv)
    # SIGTERM (a CI timeout, `kill`) ends the run through `finally`: the operator and the control
    # plane are stopped, not left behind.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    work = new_workdir()
    bench = Bench(work)
    try:
        bench.start(args.crd) if args.crd else bench.start()
        results = asyncio.run(measure(bench, args))
    finally:
        bench.close()
        if args.keep:
            print(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    save(args.out, results)
    print("\n".join(report(results)))
    plot = args.plot or args.out.with_suffix(".png")
    write_plot([(results["operator_label"], results)], plot)
    print(f"results: {args.out}; plot: {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`python -m bench OUT.json [options]`: run the benchmark, print the table, write the JSON results."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from actormesh_runtime.commands import eventloop

from .plots import write_plots
from .report import table
from .run import DEFAULT_TARGETS, TARGETS, Config, run_benchmark


def parse(argv: list[str] | None = None) -> tuple[Path, Config, Path]:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("out", type=Path, help="where to write the JSON results")
    p.add_argument("--levels", default="1,8,32", help="concurrency levels (in-flight messages)")
    p.add_argument("--sequential", type=int, default=300, help="messages at concurrency 1")
    p.add_argument("--messages", type=int, default=1500, help="messages at the other levels")
    p.add_argument("--warmup", type=int, default=40, help="messages before each target's levels")
    p.add_argument("--max-seconds", type=float, default=30.0, help="time limit per level")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--profile-messages", type=int, default=300, help="0 = no profile")
    p.add_argument("--no-footprint", action="store_true", help="skip RSS and import-time measurement")
    p.add_argument(
        "--loop", choices=["uvloop", "asyncio"], default="uvloop",
        help="event loop of the benchmark and of every child process (default: the runtime's, uvloop)",
    )  # fmt: skip
    p.add_argument(
        "--targets", default=",".join(DEFAULT_TARGETS),
        help="comma-separated, run in this order: " + "; ".join(f"{k}: {v}" for k, v in TARGETS.items()),
    )  # fmt: skip
    p.add_argument("--plots", type=Path, help="directory for the PNG plots (default: next to OUT)")
    a = p.parse_args(argv)
    unknown = set(a.targets.split(",")) - set(TARGETS)
    if unknown:
        p.error(f"unknown target(s) {', '.join(sorted(unknown))}: one of {', '.join(TARGETS)}")
    config = Config(
        levels=[int(x) for x in a.levels.split(",")],
        sequential=a.sequential,
        messages=a.messages,
        warmup=a.warmup,
        max_seconds=a.max_seconds,
        repeat=a.repeat,
        profile_messages=a.profile_messages,
        footprint=not a.no_footprint,
        targets=a.targets.split(","),
        event_loop=a.loop,
    )
    return a.out, config, a.plots or a.out.parent


def main(argv: list[str] | None = None) -> int:
    out, config, plots_dir = parse(argv)
    logging.basicConfig(level=logging.WARNING)
    results = eventloop.run(run_benchmark(config), config.event_loop)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    print()
    print(table(results))
    print(f"\nresults written to {out}")
    for path in write_plots(results, plots_dir):
        print(f"plot written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

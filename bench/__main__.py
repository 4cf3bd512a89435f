"""`python -m bench OUT.json [options]`: run the benchmark, print the table, write the JSON results."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path

from .report import table
from .run import Config, run_benchmark


def parse(argv: list[str] | None = None) -> tuple[Path, Config]:
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
    p.add_argument("--uvloop", action="store_true", help="run everything on uvloop instead of asyncio")
    p.add_argument("--no-what-if", action="store_true", help="skip the mesh-np (no progress events) variant")
    a = p.parse_args(argv)
    config = Config(
        levels=[int(x) for x in a.levels.split(",")],
        sequential=a.sequential,
        messages=a.messages,
        warmup=a.warmup,
        max_seconds=a.max_seconds,
        repeat=a.repeat,
        profile_messages=a.profile_messages,
        footprint=not a.no_footprint,
        what_if=not a.no_what_if,
    )
    config.uvloop = a.uvloop
    return a.out, config


def main(argv: list[str] | None = None) -> int:
    out, config = parse(argv)
    logging.basicConfig(level=logging.WARNING)
    if config.uvloop:
        import uvloop

        results = uvloop.run(run_benchmark(config))
    else:
        results = asyncio.run(run_benchmark(config))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    print()
    print(table(results))
    print(f"\nresults written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m soak` (`make soak`): the chaos soak of the real multi-process layout on this machine.

Environment: SOAK_N (conversations, default 1000), SOAK_SEED (default 1), SOAK_CONCURRENCY (8),
SOAK_THINK_S (pause per worker between conversations, 2.0), SOAK_FAULTS_PER_KIND (10),
SOAK_MAX_S (traffic time limit, 1800), SOAK_LATE_S (how long answers are fetched after a 504, 120),
SOAK_STORE_S (how long the history store gets to catch up, 60), SOAK_SELF_CHECK (1: destroy a few
conversations first, so the run must fail with lost > 0 — proof the judge sees a loss),
SOAK_OUT (JSON results, default .actormesh/soak/results.json),
SOAK_WORKDIR (keep logs and stores there instead of a temp dir that is removed). Runtime settings in
the environment (e.g. DIRECT_HOPS=true) reach every process of the mesh.
The last line printed is the summary; the exit status is 1 on any loss, duplicate, wrong side effect
or unexpected HTTP error, 2 if the soak itself could not run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

from .report import report
from .run import SoakConfig, run_soak, write_json


def config_from_env(env: dict[str, str]) -> SoakConfig:
    return SoakConfig(
        n=int(env.get("SOAK_N", "1000")),
        seed=int(env.get("SOAK_SEED", "1")),
        concurrency=int(env.get("SOAK_CONCURRENCY", "8")),
        think_s=float(env.get("SOAK_THINK_S", "2.0")),
        faults_per_kind=int(env.get("SOAK_FAULTS_PER_KIND", "10")),
        max_s=float(env.get("SOAK_MAX_S", "1800")),
        late_s=float(env.get("SOAK_LATE_S", "120")),
        store_s=float(env.get("SOAK_STORE_S", "60")),
        self_check=env.get("SOAK_SELF_CHECK", "") in ("1", "true"),
    )


async def _main(config: SoakConfig, workdir: Path, out: Path) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)  # the run's `finally` stops every child
    run = await run_soak(config, workdir)
    print(report(run), flush=True)
    write_json(run, out)
    return 0 if run.verdict.ok else 1


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    config = config_from_env(dict(os.environ))
    out = Path(os.environ.get("SOAK_OUT", ".actormesh/soak/results.json"))
    keep = os.environ.get("SOAK_WORKDIR")
    try:
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            return asyncio.run(_main(config, Path(keep), out))
        with tempfile.TemporaryDirectory(prefix="actormesh-soak-") as tmp:
            return asyncio.run(_main(config, Path(tmp), out))
    except (asyncio.CancelledError, KeyboardInterrupt):
        print("soak: interrupted; every process it started has been stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"soak: could not run: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

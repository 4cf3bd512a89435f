"""`python -m bench.cpuprofile OUT.prof MODULE [ARGS...]`: run MODULE as `__main__` under cProfile
timed by process CPU time, not wall time.

The bench's child processes share two cores with everything else on the machine: a wall-clock
profile (cProfile's default) charges the time a process waited for a core to whatever line it was
preempted in. CPU time charges only the work. Used by `processes.Children` when BENCH_CPROFILE_DIR
is set.
"""

from __future__ import annotations

import cProfile
import sys
import time

from .wrapped import run_as_main


def main() -> None:
    out, module, *args = sys.argv[1:]
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    try:
        run_as_main(module, args)
    finally:
        profiler.disable()
        profiler.dump_stats(out)


if __name__ == "__main__":
    main()

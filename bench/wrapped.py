"""Running a module as `__main__` inside one of the bench's measuring wrappers (`cpuprofile`,
`codec_timing`, `cpusample`): `python -m bench.WRAPPER OUT MODULE [ARGS...]`."""

from __future__ import annotations

import contextlib
import runpy
import sys


def run_as_main(module: str, args: list[str]) -> None:
    """Run `module` as `python -m module args...` would, in this process; its exit is not ours to take
    (the wrapper still has its results to write)."""
    sys.argv = [module, *args]
    with contextlib.suppress(SystemExit):
        runpy.run_module(module, run_name="__main__", alter_sys=True)

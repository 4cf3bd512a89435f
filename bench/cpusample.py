"""`python -m bench.cpusample OUT.folded MODULE [ARGS...]`: run MODULE as `__main__` while sampling its
Python stack every millisecond of the process's own CPU time (`ITIMER_PROF`; the kernel fires it at its
clock tick, every 4 ms on these VMs: a 3,000-message bench run gives each actor process ~500 samples).

Why not py-spy or cProfile: on two cores shared by a dozen processes, a process that wakes
nats-server with a socket write is often preempted in that write. py-spy counts a thread that is
runnable but not running as busy, so it charges the wait for a core to the write (a quarter of every
actor's samples in session 12, where `perf` puts the kernel at under a tenth of their CPU). cProfile
timed by CPU time (`bench.cpuprofile`) has no such bias but inflates call-heavy Python code. A timer
on the process's CPU time fires only while the process runs, and sampling costs the same whatever
the code does. Time in C (pydantic-core, uvloop, a system call) is charged to the Python frame that
called it: the signal handler runs when control comes back to the interpreter.

Output: one line per distinct stack, `file:function;file:function... COUNT` (outermost first),
the format flame-graph tools read; `python -m bench.cpusample --table DIR` sums a directory of them.
"""

from __future__ import annotations

import collections
import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from types import FrameType

from .wrapped import run_as_main

INTERVAL_S = 0.001

Stack = tuple[tuple[str, str], ...]


def _short(filename: str) -> str:
    """`.../site-packages/nats/aio/client.py` -> `nats/aio/client.py`; the stdlib keeps its last two parts."""
    parts = filename.replace("\\", "/").split("/")
    for anchor in ("site-packages", "runtime", "bench"):
        if anchor in parts:
            index = len(parts) - 1 - parts[::-1].index(anchor)
            kept = parts[index + 1 :] if anchor == "site-packages" else parts[index:]
            return "/".join(kept)
    return "/".join(parts[-2:])


def fold(counts: collections.Counter[Stack]) -> list[str]:
    """Folded-stack lines, heaviest first."""
    lines = []
    for stack, count in counts.most_common():
        frames = ";".join(f"{_short(filename)}:{name}" for filename, name in reversed(stack))
        lines.append(f"{frames} {count}")
    return lines


def parse(lines: Iterable[str]) -> collections.Counter[tuple[str, ...]]:
    """Folded-stack lines back to counts per stack (outermost first)."""
    counts: collections.Counter[tuple[str, ...]] = collections.Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if stack:
            counts[tuple(stack.split(";"))] += int(count)
    return counts


def shares(counts: collections.Counter[tuple[str, ...]], top: int = 40) -> list[tuple[str, float, float]]:
    """(frame, inclusive share, self share) of the `top` heaviest frames by inclusive share."""
    total = sum(counts.values()) or 1
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    for stack, count in counts.items():
        for frame in set(stack):  # a recursive frame counts once per sample
            inclusive[frame] += count
        if stack:
            own[stack[-1]] += count
    return [(frame, n / total, own[frame] / total) for frame, n in inclusive.most_common(top)]


def table(directory: Path, top: int = 40) -> str:
    """Per file of DIR: samples, then the heaviest frames with their inclusive and self shares."""
    out = []
    for path in sorted(directory.glob("*.folded")):
        counts = parse(path.read_text().splitlines())
        out.append(f"== {path.name}: {sum(counts.values())} samples (ms of CPU)")
        for frame, inclusive, own in shares(counts, top):
            out.append(f"  {inclusive:6.1%} {own:6.1%}  {frame}")
    return "\n".join(out)


def main() -> None:
    if sys.argv[1] == "--table":
        print(table(Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 40))
        return
    out, module, *args = sys.argv[1:]
    counts: collections.Counter[Stack] = collections.Counter()

    def sample(_signum: int, frame: FrameType | None) -> None:
        stack = []
        while frame is not None:
            stack.append((frame.f_code.co_filename, frame.f_code.co_name))
            frame = frame.f_back
        counts[tuple(stack)] += 1

    signal.signal(signal.SIGPROF, sample)
    signal.setitimer(signal.ITIMER_PROF, INTERVAL_S, INTERVAL_S)
    try:
        run_as_main(module, args)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        Path(out).write_text("\n".join(fold(counts)) + "\n")


if __name__ == "__main__":
    main()

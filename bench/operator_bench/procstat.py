"""CPU time and resident memory of a process from /proc (Linux). Parsing is pure and unit-tested."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds_from_stat(text: str, ticks: int = CLOCK_TICKS) -> float:
    """utime + stime of /proc/PID/stat. The command name may hold spaces and parentheses, so the
    fields are counted from the last `)`."""
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_bytes_from_status(text: str) -> int:
    """VmRSS of /proc/PID/status, in bytes (0 when absent: a zombie)."""
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass(frozen=True)
class Sample:
    cpu_s: float
    rss_bytes: int


def sample(pid: int) -> Sample:
    proc = Path("/proc") / str(pid)
    return Sample(
        cpu_s=cpu_seconds_from_stat((proc / "stat").read_text()),
        rss_bytes=rss_bytes_from_status((proc / "status").read_text()),
    )


def machine() -> dict[str, object]:
    """What the figures were measured on: CPU model, cores, memory, load averages."""
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }

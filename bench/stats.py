"""Latency summaries for one benchmark level (pure; used by `bench.load` and the report)."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile `q` in [0, 100] of an already sorted list (0.0 when empty)."""
    if not sorted_ms:
        return 0.0
    rank = max(1, round(q / 100 * len(sorted_ms) + 0.5 - 1e-9))
    return sorted_ms[min(rank, len(sorted_ms)) - 1]


@dataclass
class LevelResult:
    """One target at one concurrency level: every completed message's latency, and the wall time."""

    target: str
    concurrency: int
    wall_s: float
    latencies_ms: list[float]
    timeouts: int = 0
    cpu_s: float = 0.0
    """CPU time of this (benchmark) process during the level: every host, the driver, the mocks."""
    server_cpu_s: float = 0.0
    """CPU time of nats-server during the level."""
    per_kind_ms: dict[str, list[float]] = field(default_factory=dict)
    process_cpu_s: dict[str, float] = field(default_factory=dict)
    """Multi-process targets: CPU time of each of the target's processes during the level."""

    @property
    def completed(self) -> int:
        return len(self.latencies_ms)

    @property
    def throughput(self) -> float:
        return self.completed / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        kinds = {
            kind: round(statistics.median(values), 2) for kind, values in sorted(self.per_kind_ms.items())
        }
        return {
            "target": self.target,
            "concurrency": self.concurrency,
            "completed": self.completed,
            "timeouts": self.timeouts,
            "wall_s": round(self.wall_s, 3),
            "msgs_per_s": round(self.throughput, 1),
            "mean_ms": round(statistics.fmean(ordered), 2) if ordered else 0.0,
            "p50_ms": round(percentile(ordered, 50), 2),
            "p95_ms": round(percentile(ordered, 95), 2),
            "p99_ms": round(percentile(ordered, 99), 2),
            "max_ms": round(ordered[-1], 2) if ordered else 0.0,
            "cpu_ms_per_msg": round(self.cpu_s / max(self.completed, 1) * 1000, 3),
            "server_cpu_ms_per_msg": round(self.server_cpu_s / max(self.completed, 1) * 1000, 3),
            "p50_ms_by_kind": kinds,
            "process_cpu_ms_per_msg": {
                name: round(s / max(self.completed, 1) * 1000, 3) for name, s in self.process_cpu_s.items()
            },
        }

    def to_json(self) -> dict[str, Any]:
        data = self.summary()
        data["latencies_ms"] = [round(v, 3) for v in self.latencies_ms]
        return data


def as_dict(obj: Any) -> dict[str, Any]:
    return asdict(obj)

"""The load generator: N messages at a fixed number in flight, bounded by count and by time.

A target publishes message `seq` with a given message id; its reply subscription calls
`Pending.resolve(message_id)`, which stamps the arrival time. Latency = arrival - just before the
publish, so it includes building and submitting the first message, every hop and the reply.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Protocol

from .stats import LevelResult


class Target(Protocol):
    name: str

    def kind(self, seq: int) -> str:
        """Label of message `seq` in the mix (for per-kind latency)."""

    async def send(self, seq: int, message_id: str) -> None:
        """Publish message `seq` to the first hop; the reply must reach `Pending.resolve`."""

    def cpu_s(self) -> float | None:
        """CPU seconds so far of the target's own processes; None = it runs in this process."""


class Pending:
    """Message id → future resolved with the perf_counter() at which its reply arrived."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[float]] = {}

    def expect(self, message_id: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = future
        return future

    def resolve(self, message_id: str) -> None:
        future = self._waiting.pop(message_id, None)
        if future is not None and not future.done():
            future.set_result(time.perf_counter())

    def drop(self, message_id: str) -> None:
        self._waiting.pop(message_id, None)


async def run_level(
    target: Target,
    pending: Pending,
    *,
    concurrency: int,
    total: int,
    max_seconds: float,
    reply_timeout_s: float = 30.0,
    server_pid: int | None = None,
) -> LevelResult:
    """Send up to `total` messages with `concurrency` in flight; stop early after `max_seconds`."""
    run_id = uuid.uuid4().hex[:8]
    result = LevelResult(target=target.name, concurrency=concurrency, wall_s=0.0, latencies_ms=[])
    next_seq = 0
    cpu_before, server_before = _target_cpu_s(target), process_cpu_s(server_pid)
    by_process = getattr(target, "cpu_by_process", dict)
    processes_before: dict[str, float] = by_process()
    started = time.perf_counter()
    stop_at = started + max_seconds

    async def worker() -> None:
        nonlocal next_seq
        while next_seq < total and time.perf_counter() < stop_at:
            seq = next_seq
            next_seq += 1
            message_id = f"msg-bench-{run_id}-{seq}"
            arrived = pending.expect(message_id)
            sent = time.perf_counter()
            await target.send(seq, message_id)
            try:
                at = await asyncio.wait_for(arrived, reply_timeout_s)
            except TimeoutError:
                pending.drop(message_id)
                result.timeouts += 1
                continue
            ms = (at - sent) * 1000
            result.latencies_ms.append(ms)
            result.per_kind_ms.setdefault(target.kind(seq), []).append(ms)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.wall_s = time.perf_counter() - started
    result.cpu_s = _target_cpu_s(target) - cpu_before
    result.server_cpu_s = process_cpu_s(server_pid) - server_before
    result.process_cpu_s = {k: v - processes_before.get(k, 0.0) for k, v in by_process().items()}
    return result


def _target_cpu_s(target: Target) -> float:
    """The target's processes' CPU, or this process's (where the target runs with the driver)."""
    own = target.cpu_s()
    return time.process_time() if own is None else own


def process_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of another process (0.0 when unknown): /proc/PID/stat."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks

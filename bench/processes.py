"""Child processes of the benchmark: the mock APIs, actors and relay hops, each as its own process.

The mock APIs always run in a process of their own, as they would in production: their CPU is not
the mesh's. The `*-mp` targets are the Kubernetes layout on one machine (one process per actor, and
one per relay hop); their CPU per message is the sum over those processes, read from /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from nats.js import JetStreamContext

from .load import process_cpu_s

ACTORMESH = str(Path(sys.executable).parent / "actormesh")
REPO_ROOT = Path(__file__).resolve().parents[1]
NOOP_ACTOR = (sys.executable, "-m", "bench.noop_actor")
"""Hosts actors that do nothing (targets `host-only-mp`, `hop_cost`'s `noop_ms`); takes the names as
`actormesh actor` does."""


def actor_command(*, noop: bool) -> tuple[str, ...]:
    """The start of an actor process's command line; the actor names follow."""
    return NOOP_ACTOR if noop else (ACTORMESH, "actor")


CPROFILE_DIR_ENV = "BENCH_CPROFILE_DIR"
"""When set, every actor and relay hop process runs under cProfile (CPU time, `bench.cpuprofile`) and
writes DIR/<name>-<n>.prof at exit (for `python -m pstats`; cProfile inflates call-heavy code, so read
shares)."""


CODEC_DIR_ENV = "BENCH_CODEC_DIR"
"""When set, every actor and relay hop process records the CPU time of its envelope codec (`bench.
codec_timing`) and writes DIR/<name>-<n>.json at exit; `python -m bench.codec_timing --table DIR`."""


SAMPLE_DIR_ENV = "BENCH_SAMPLE_DIR"
"""When set, every actor and relay hop process samples its Python stack by CPU time (`bench.cpusample`)
and writes DIR/<name>-<n>.folded at exit; `python -m bench.cpusample --table DIR`."""

_WRAPPERS = (
    (CPROFILE_DIR_ENV, "bench.cpuprofile", "prof"),
    (CODEC_DIR_ENV, "bench.codec_timing", "json"),
    (SAMPLE_DIR_ENV, "bench.cpusample", "folded"),
)


def _instrumented(argv: tuple[str, ...]) -> tuple[str, ...]:
    """`argv` under the first wrapper whose variable is set (cProfile, the codec timer, the CPU-time
    sampler), for `actormesh actor`, `bench.noop_actor` and `bench.relay`."""
    chosen = [(wrapper, found, ext) for env, wrapper, ext in _WRAPPERS if (found := os.environ.get(env))]
    if not chosen:
        return argv
    wrapper, out_dir, suffix = chosen[0]
    if argv[0] == ACTORMESH and argv[1] == "actor":
        module, name, rest = "actormesh_runtime.cli", f"actor-{argv[2]}", argv[1:]
    elif argv[: len(NOOP_ACTOR)] == NOOP_ACTOR:
        module, name, rest = "bench.noop_actor", f"noop-{argv[3]}", argv[3:]
    elif argv[1:3] == ("-m", "bench.relay"):
        module, name, rest = "bench.relay", f"relay-hop{argv[8]}", argv[3:]
    else:
        return argv
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    out = Path(out_dir) / f"{name}-{time.monotonic_ns()}.{suffix}"
    return (sys.executable, "-m", wrapper, str(out), module, *rest)


class Children:
    """Processes started together and stopped together (SIGTERM, then SIGKILL after a grace)."""

    def __init__(self) -> None:
        self.procs: list[asyncio.subprocess.Process] = []
        self.labels: list[str] = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def cpu_s(self) -> float:
        return sum(process_cpu_s(pid) for pid in self.pids)

    def cpu_by_process(self) -> dict[str, float]:
        """CPU seconds so far of each process, by its label (`actor NAME`, `relay hop N`)."""
        return {label: process_cpu_s(p.pid) for label, p in zip(self.labels, self.procs, strict=True)}

    async def spawn(
        self, *argv: str, env: dict[str, str], stdout: int | None = None, label: str = ""
    ) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            *_instrumented(argv), env={**os.environ, **env}, cwd=REPO_ROOT,
            stdout=stdout if stdout is not None else asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        self.procs.append(proc)
        self.labels.append(label or " ".join(argv[1:3]))
        return proc

    async def stop(self, grace_s: float = 10.0) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), grace_s)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self.procs.clear()
        self.labels.clear()


class MocksProcess:
    """`actormesh mocks` on random ports; `env` points actors at it."""

    def __init__(self) -> None:
        self.children = Children()
        self.env: dict[str, str] = {}

    @property
    def pid(self) -> int:
        return self.children.pids[0]

    async def start(self, event_loop: str) -> MocksProcess:
        proc = await self.children.spawn(
            ACTORMESH, "mocks", "--customers-port", "0", "--orders-port", "0", "--tracking-port", "0",
            env={"LOG_LEVEL": "WARNING", "EVENT_LOOP": event_loop}, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        while len(self.env) < 3:
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()
            if not line:
                raise RuntimeError("actormesh mocks exited before printing its URLs")
            name, _, value = line.partition("=")
            self.env[name] = value
        return self

    async def stop(self) -> None:
        await self.children.stop()


async def wait_bound(js: JetStreamContext, stream: str, durables: list[str], timeout_s: float = 240) -> None:
    """Every durable has a pull request waiting: its host (in another process) is running. Generous:
    nine processes importing at once on a loaded two-core machine can take minutes."""
    deadline = time.monotonic() + timeout_s
    for durable in durables:
        while True:
            with contextlib.suppress(Exception):
                if (await js.consumer_info(stream, durable)).num_waiting > 0:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{durable} not bound within {timeout_s} s")
            await asyncio.sleep(0.05)

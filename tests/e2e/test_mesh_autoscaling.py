"""An actor's HorizontalPodAutoscaler scales it up under load (resource metrics from metrics-server).

The sealed node runs metrics-server as a host process behind the `v1beta1.metrics.k8s.io` APIService
(tests/harness/cluster). On another cluster the test needs a metrics API of its own.

Bounded: the load is a fixed number of workers sending chats to the gateway's ClusterIP; it stops as
soon as the HPA asks for a second replica, and after LOAD_LIMIT_S or MAX_CHATS in any case.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e import mesh as m
from tests.e2e.cluster import E2ECluster
from tests.support.eventually import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ACTOR = "sentimentAnalyzer"
DEPLOYMENT = "demo-sentiment-analyzer"
TARGET_CPU_PERCENT = 30  # of the actor's 50m request: far above idle, well below a busy replica
WORKERS = 4
LOAD_LIMIT_S = 300.0
MAX_CHATS = 20_000
METRICS_API = "v1beta1.metrics.k8s.io"


def _available(cluster: E2ECluster) -> bool:
    result = cluster.kubectl("get", "apiservice", METRICS_API, "-o", "json", check=False)
    if result.returncode != 0:
        return False
    conditions = json.loads(result.stdout).get("status", {}).get("conditions", [])
    return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)


@pytest.fixture
def scaling_mesh(cluster: E2ECluster, operator: dict[str, Any]) -> Iterator[str]:
    namespace = f"e2e-hpa-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        autoscaling = {
            "enabled": True,
            "minReplicas": 1,
            "maxReplicas": 3,
            "targetCPUUtilizationPercentage": TARGET_CPU_PERCENT,
        }
        m.apply_sample(
            cluster,
            namespace,
            actors={ACTOR: {"autoscaling": autoscaling}},
            runtime={"rateLimitRequests": 0},  # one test client drives the load: no per-client cap
        )
        m.wait_mesh_ready(cluster, namespace, "demo")
        yield namespace
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _hpa(cluster: E2ECluster, namespace: str) -> dict[str, Any]:
    items: list[dict[str, Any]] = cluster.get("hpa", "-n", namespace)["items"]
    [hpa] = [h for h in items if h["spec"]["scaleTargetRef"]["name"] == DEPLOYMENT]
    return hpa


def _cpu_percent(hpa: dict[str, Any]) -> int | None:
    for metric in hpa.get("status", {}).get("currentMetrics") or []:
        current = metric.get("resource", {}).get("current", {})
        if "averageUtilization" in current:
            return int(current["averageUtilization"])
    return None


async def _load_until(base: str, scaled: asyncio.Event) -> int:
    sent = 0
    deadline = time.monotonic() + LOAD_LIMIT_S

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent
        while not scaled.is_set() and time.monotonic() < deadline and sent < MAX_CHATS:
            sent += 1
            body = {"message": m.ORDER_QUESTION, "customer_email": m.JOHN, "session_id": f"hpa-{sent}"}
            response = await client.post("/api/chat", json=body)
            assert response.status_code == 200, response.text

    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(WORKERS)))
    return sent


def test_an_actor_hpa_scales_up_under_load(cluster: E2ECluster, scaling_mesh: str) -> None:
    if not cluster.sealed_node:
        pytest.skip("drives the gateway's ClusterIP from the host")
    namespace = scaling_mesh
    eventually(
        lambda: _available(cluster), what=f"APIService {METRICS_API} Available", timeout_s=180, interval_s=2
    )
    # Idle first: the HPA reads a utilization below its target and keeps one replica, so the
    # scale-up below is the load's doing.
    eventually(
        lambda: _cpu_percent(_hpa(cluster, namespace)) is not None,
        what="the HPA's first CPU reading",
        timeout_s=240,
        interval_s=5,
    )
    idle = _hpa(cluster, namespace)
    idle_cpu = _cpu_percent(idle)
    assert idle_cpu is not None
    assert idle_cpu < TARGET_CPU_PERCENT, idle["status"]
    assert idle["status"]["desiredReplicas"] == 1, idle["status"]

    base = m.gateway_url(cluster, namespace, "demo")

    async def scenario() -> tuple[int, dict[str, Any]]:
        scaled = asyncio.Event()
        load = asyncio.create_task(_load_until(base, scaled))
        hpa: dict[str, Any] = {}
        while not load.done():
            hpa = await asyncio.to_thread(_hpa, cluster, namespace)
            if hpa["status"].get("desiredReplicas", 1) > 1:
                scaled.set()
                break
            await asyncio.sleep(5)
        return await load, hpa

    sent, hpa = asyncio.run(scenario())
    assert hpa["status"].get("desiredReplicas", 1) > 1, (
        f"no scale-up after {sent} chats; idle CPU {idle_cpu}%, HPA status {hpa.get('status')}"
    )
    eventually(
        lambda: cluster.get("deployment", DEPLOYMENT, "-n", namespace)["status"].get("readyReplicas", 0) >= 2,
        what=f"{DEPLOYMENT} scaled to 2+ ready replicas",
        timeout_s=180,
        interval_s=3,
    )
    print(f"HPA scaled {DEPLOYMENT}: idle {idle_cpu}%, {sent} chats, status {hpa['status']}")

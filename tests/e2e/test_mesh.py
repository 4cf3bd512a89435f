"""The mesh on a cluster, installed and used as a platform engineer and a customer would.

Priority order of issue 8: the operator installed with `kubectl apply -k config/e2e` and Ready through
its own probes; `config/samples/minimal.yaml` Ready with every pod Ready and counts that match; a chat
through the gateway Service from the host (ClusterIP) and from a pod (DNS name), with real order data,
WebSocket progress per hop and the turn stored; NetworkPolicies enforced.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.e2e import mesh as m
from tests.e2e.cluster import E2ECluster, pod_ready
from tests.support.eventually import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

RUNTIME_IMAGE = "actormesh/actormesh:0.1.0"
MIN_HOPS = 6  # an order-status question passes at least this many actors


def test_operator_pod_is_ready_through_its_probes(cluster: E2ECluster, operator: dict[str, Any]) -> None:
    assert pod_ready(operator)
    manager = operator["spec"]["containers"][0]
    assert manager.get("readinessProbe"), "the operator needs a readiness probe"
    assert manager.get("livenessProbe"), "the operator needs a liveness probe"
    statuses = operator["status"]["containerStatuses"]
    assert all(s["ready"] and s["restartCount"] == 0 for s in statuses), statuses


def test_minimal_sample_is_ready_with_counts_matching_the_pods(
    cluster: E2ECluster, demo: tuple[str, dict[str, Any]]
) -> None:
    namespace, mesh = demo
    assert m.all_pods_ready(cluster, namespace) == []
    status = mesh["status"]
    assert status["phase"] == "Ready", m.dumps(status)
    components = status["components"]
    pods = cluster.pods(namespace)
    for component in ("nats", "redis", "history", "gateway", "mocks"):
        counts = components[component]
        running = [p for p in pods if p["metadata"]["labels"].get("app.kubernetes.io/component") == component]
        assert counts["ready"] == counts["desired"] == len(running), (component, counts, len(running))
    actors = components["actors"]
    assert status["actorsReady"] == f"{len(actors)}/{len(actors)}"
    for actor, counts in actors.items():
        assert counts["ready"] == counts["desired"] >= 1, (actor, counts)


def test_chat_from_the_host_through_the_cluster_ip(
    cluster: E2ECluster, demo: tuple[str, dict[str, Any]]
) -> None:
    if not cluster.sealed_node:
        pytest.skip("only the sealed node routes the Service range to the host")
    namespace, _ = demo
    base = m.gateway_url(cluster, namespace, "demo")
    session = f"e2e-host-{uuid.uuid4().hex[:8]}"
    result = m.chat(base, session_id=session)
    assert m.ORDER_TRACKING in result["response"], result["response"]
    assert result["intent"] == "order_status"
    transcript = _fetch_json(f"{base}/api/conversations/{session}")
    assert any(m.ORDER_QUESTION in json.dumps(turn) for turn in transcript["turns"]), m.dumps(transcript)
    stored = _fetch_json(f"{base}/api/messages/{result['message_id']}")
    assert stored["response"] == result["response"]


def test_websocket_reports_progress_for_every_hop(
    cluster: E2ECluster, demo: tuple[str, dict[str, Any]]
) -> None:
    if not cluster.sealed_node:
        pytest.skip("only the sealed node routes the Service range to the host")
    namespace, _ = demo
    ws_url = m.gateway_url(cluster, namespace, "demo").replace("http://", "ws://") + "/ws"
    frames = asyncio.run(_ws_chat(ws_url))
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "connected", kinds
    assert kinds[-1] == "response", kinds
    result = frames[-1]["data"]
    assert m.ORDER_TRACKING in result["response"]
    # One progress frame per hop of the routing slip, as the result's trace records the hops.
    hops = [entry["actor"] for entry in result["trace"]]
    progressed = [
        f["data"]["actor"] for f in frames if f["type"] == "progress" and f["data"]["status"] == "done"
    ]
    assert len(hops) >= MIN_HOPS, hops
    assert sorted(set(progressed)) == sorted(set(hops)), (progressed, hops)


async def _ws_chat(url: str) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    async with connect(url, open_timeout=10) as ws:
        frames.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        await ws.send(
            json.dumps({"type": "chat", "data": {"message": m.ORDER_QUESTION, "customer_email": m.JOHN}})
        )
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
            frames.append(frame)
            if frame["type"] in {"response", "error"}:
                return frames


def test_chat_from_a_pod_by_dns_name(
    cluster: E2ECluster, demo: tuple[str, dict[str, Any]], namespace: str
) -> None:
    demo_ns, _ = demo
    cluster.apply(m.probe_pod("client", RUNTIME_IMAGE), namespace)
    cluster.wait_pods_ready(namespace, timeout=120)
    url = m.gateway_dns_url(cluster, demo_ns, "demo") + "/api/chat"
    body = json.dumps({"message": m.ORDER_QUESTION, "customer_email": m.JOHN})
    script = (
        "import sys, urllib.request; r = urllib.request.Request(sys.argv[1], sys.argv[2].encode(), "
        "{'Content-Type': 'application/json'}); print(urllib.request.urlopen(r, timeout=60).read().decode())"
    )
    result = cluster.exec(namespace, "client", "python", "-c", script, url, body, timeout=90)
    assert result.returncode == 0, result.stderr
    assert m.ORDER_TRACKING in json.loads(result.stdout)["response"]


def test_network_policies_fence_the_backends(
    cluster: E2ECluster, demo: tuple[str, dict[str, Any]], namespace: str
) -> None:
    demo_ns, _ = demo
    cluster.apply(m.probe_pod("outsider", RUNTIME_IMAGE), namespace)
    cluster.apply(m.probe_pod("unlabelled", RUNTIME_IMAGE), demo_ns)
    cluster.wait_pods_ready(namespace, timeout=120)
    eventually(
        lambda: all(pod_ready(p) for p in cluster.pods(demo_ns, "!app.kubernetes.io/component")),
        what="unlabelled probe Ready",
        timeout_s=120,
        interval_s=1.0,
    )
    services = {s["metadata"]["name"]: s for s in cluster.get("services", "-n", demo_ns)["items"]}
    targets = []
    for name, svc in services.items():
        if svc["spec"].get("clusterIP") in (None, "None"):
            continue
        for port in svc["spec"]["ports"]:
            targets.append((name, f"{name}.{demo_ns}.svc.cluster.local", int(port["port"])))
    gateway = [t for t in targets if t[0] == "demo-gateway"]
    fenced = [t for t in targets if t[0] != "demo-gateway"]
    assert gateway, targets
    assert fenced, targets
    for ns, pod in ((namespace, "outsider"), (demo_ns, "unlabelled")):
        assert m.can_connect(cluster, ns, pod, gateway[0][1], gateway[0][2]), (
            f"{pod} cannot reach the gateway"
        )
        reached = [t for t in fenced if m.can_connect(cluster, ns, pod, t[1], t[2])]
        assert reached == [], f"{pod} in {ns} reached {reached}"
    cluster.kubectl("delete", "pod", "unlabelled", "-n", demo_ns, "--grace-period=0", "--force", check=False)


def _fetch_json(url: str) -> dict[str, Any]:
    import httpx

    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, f"{url}: {response.status_code} {response.text}"
    body: dict[str, Any] = response.json()
    return body

"""Faults on the demo mesh: pods force-deleted mid-conversation, the operator restarted.

Bounded: a fixed number of conversations, each with a deadline, against cluster addresses only.
Half the conversations ask about an order (real order data in the reply), half file a cancellation
request (a side effect): the mock commerce APIs' own state counts the effects, so "each side effect
once" is checked where it happened, not only in the history.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from typing import Any

import httpx
import pytest

from actormesh_runtime.actors.execution_coordinator import idempotency_key
from actormesh_runtime.envelope import ActionType
from tests.e2e import mesh as m
from tests.e2e.cluster import E2ECluster, pod_ready, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

CONVERSATIONS = 24
CONCURRENCY = 6
COMPONENT = "app.kubernetes.io/component"
BOB = "bob.wilson@example.com"  # a standard customer: a cancellation is filed as a request, repeatable
CANCEL_ORDER = "ORD-30001"
CANCEL_QUESTION = f"Please cancel my order {CANCEL_ORDER}"


def _message(session: str) -> tuple[str, str]:
    """(message, customer) for a session: cancellation requests for `cancel-*` sessions."""
    return (CANCEL_QUESTION, BOB) if session.startswith("cancel-") else (m.ORDER_QUESTION, m.JOHN)


async def _converse(base: str, sessions: list[str]) -> list[dict[str, Any]]:
    """One order question per session, CONCURRENCY at a time; a 504 is followed up via result_url."""
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(client: httpx.AsyncClient, session: str) -> dict[str, Any]:
        async with limit:
            message, customer = _message(session)
            body = {"message": message, "customer_email": customer, "session_id": session}
            response = await client.post("/api/chat", json=body)
            if response.status_code == 504:
                url = response.json()["result_url"]
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    fetched = await client.get(url)
                    if fetched.status_code == 200:
                        return dict(fetched.json())
                    await asyncio.sleep(1)
            assert response.status_code == 200, f"{session}: {response.status_code} {response.text}"
            return dict(response.json())

    async with httpx.AsyncClient(base_url=base, timeout=150) as client:
        return list(await asyncio.gather(*(one(client, s) for s in sessions)))


def _force_delete(cluster: E2ECluster, namespace: str, component: str) -> str:
    pods = [p for p in cluster.pods(namespace, f"{COMPONENT}={component}") if pod_ready(p)]
    assert pods, f"no ready {component} pod"
    name = str(pods[0]["metadata"]["name"])
    cluster.kubectl("delete", "pod", name, "-n", namespace, "--grace-period=0", "--force", check=False)
    return name


def _mock_state(cluster: E2ECluster, namespace: str) -> dict[str, Any]:
    """The mock commerce APIs' own record of every effect (`GET /_test/state`, via port-forward)."""
    pods = [p for p in cluster.pods(namespace, f"{COMPONENT}=mocks") if pod_ready(p)]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    with m.port_forward(cluster, namespace, pods[0]["metadata"]["name"], 8002) as url:
        state: dict[str, Any] = httpx.get(f"{url}/_test/state", timeout=10).json()
    return state


@pytest.mark.parametrize("component", ["context-retriever", "execution-coordinator", "gateway"])
def test_force_deleting_a_pod_mid_conversation_loses_nothing(
    cluster: E2ECluster, demo: tuple[str, dict[str, Any]], component: str
) -> None:
    if not cluster.sealed_node:
        pytest.skip("drives the gateway's ClusterIP from the host")
    namespace, _ = demo
    base = m.gateway_url(cluster, namespace, "demo")
    tag = uuid.uuid4().hex[:6]
    sessions = [f"{'cancel' if i % 2 else 'order'}-{component}-{tag}-{i}" for i in range(CONVERSATIONS)]
    before = _mock_state(cluster, namespace)

    async def scenario() -> list[dict[str, Any]]:
        talk = asyncio.create_task(_converse(base, sessions))
        await asyncio.sleep(1.5)  # conversations are in flight
        await asyncio.to_thread(_force_delete, cluster, namespace, component)
        return await talk

    results = asyncio.run(scenario())
    assert sorted(r["session_id"] for r in results) == sorted(sessions)
    orders = [r for r in results if r["session_id"].startswith("order-")]
    cancels = [r for r in results if r["session_id"].startswith("cancel-")]
    assert all(m.ORDER_TRACKING in r["response"] for r in orders), [r["response"] for r in orders]
    assert all(
        [(a["type"], a["status"]) for a in r["actions"]] == [("cancel_order", "pending_review")]
        for r in cancels
    ), [r["actions"] for r in cancels]

    # Each side effect happened exactly once, by the mock APIs' own books: one new cancellation
    # record per cancelling conversation, filed under that conversation's idempotency key.
    cluster.wait_pods_ready(namespace, timeout=180)
    after = _mock_state(cluster, namespace)
    new_records = [r for r in after["records"] if r not in before["records"]]
    assert [(r["kind"], r["order_id"]) for r in new_records] == [
        ("cancellation_request", CANCEL_ORDER)
    ] * len(cancels)
    assert after["effects"] - before["effects"] == len(cancels)
    keys = {idempotency_key(r["message_id"], ActionType.CANCEL_ORDER, CANCEL_ORDER) for r in cancels}
    assert {k: after["idempotency"].get(k) for k in keys} == dict.fromkeys(keys, 201)

    # Each conversation's turn was stored exactly once (redelivery after the kill must not duplicate).
    for session in sessions:
        transcript = httpx.get(f"{base}/api/conversations/{session}", timeout=30).json()
        roles = sorted(turn["role"] for turn in transcript["turns"])
        assert roles == ["agent", "customer"], transcript


def _child_versions(cluster: E2ECluster, namespace: str) -> dict[str, str]:
    kinds = (
        "deployments,statefulsets,services,configmaps,networkpolicies,poddisruptionbudgets,serviceaccounts"
    )
    items = cluster.get(kinds, "-n", namespace, "-l", "app.kubernetes.io/managed-by")["items"]
    return {f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["resourceVersion"] for i in items}


def test_operator_restart_rewrites_no_child(cluster: E2ECluster, demo: tuple[str, dict[str, Any]]) -> None:
    namespace, _ = demo
    cluster.wait_pods_ready(namespace, timeout=180)
    m.wait_for_mesh_condition(
        cluster, namespace, "demo", lambda mesh: mesh["status"]["phase"] == "Ready", "Ready"
    )
    before = _child_versions(cluster, namespace)
    assert len(before) > 10, before
    old = m.operator_pod(cluster)["metadata"]["name"]
    cluster.kubectl("delete", "pod", old, "-n", m.OPERATOR_NAMESPACE, "--wait=true", timeout=120)
    cluster.kubectl(
        "-n",
        m.OPERATOR_NAMESPACE,
        "rollout",
        "status",
        "deploy/actormesh-operator",
        "--timeout=180s",
        timeout=200,
    )
    new = m.operator_pod(cluster)["metadata"]["name"]
    assert new != old

    with m.port_forward(cluster, m.OPERATOR_NAMESPACE, new, 8080, "/metrics") as url:

        def metric(name: str, *labels: str) -> float:
            """Sum of a counter's samples whose label set includes every one of `labels`."""
            text = httpx.get(f"{url}/metrics", timeout=10).text
            samples = [line for line in text.splitlines() if line.startswith((f"{name}{{", f"{name} "))]
            return sum(float(s.rsplit(" ", 1)[1]) for s in samples if all(label in s for label in labels))

        wait_for(
            "the new operator to resume the meshes",
            lambda: (
                metric("actormesh_operator_reconciles_total", 'trigger="resume"', 'result="success"') >= 1
            ),
            120,
            2,
        )
        writes = metric("actormesh_operator_child_writes_total")
    assert writes == 0
    after = _child_versions(cluster, namespace)
    assert after == before
    mesh = cluster.get("actormesh/demo", "-n", namespace)
    assert mesh["status"]["phase"] == "Ready"


def test_actor_pod_deleted_with_grace_drains_its_work(
    cluster: E2ECluster, demo: tuple[str, dict[str, Any]]
) -> None:
    """Drain on SIGTERM, in a pod: a replica deleted with its normal grace period finishes what it
    started and hands back what it fetched but had not started; nothing waits for ack_wait."""
    if not cluster.sealed_node:
        pytest.skip("drives the gateway's ClusterIP from the host")
    namespace, _ = demo
    cluster.wait_pods_ready(namespace, timeout=180)
    base = m.gateway_url(cluster, namespace, "demo")
    [pod] = [p for p in cluster.pods(namespace, f"{COMPONENT}=context-retriever") if pod_ready(p)]
    name = pod["metadata"]["name"]
    logs = subprocess.Popen(
        [str(cluster.kube.kubectl_path), f"--kubeconfig={cluster.kube.kubeconfig}", "logs", "-f",
         "-n", namespace, name],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    sessions = [f"order-drain-{uuid.uuid4().hex[:8]}" for _ in range(CONVERSATIONS)]

    async def scenario() -> list[int]:
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(client: httpx.AsyncClient, session: str) -> int:
            async with limit:
                body = {"message": m.ORDER_QUESTION, "customer_email": m.JOHN, "session_id": session}
                return (await client.post("/api/chat", json=body)).status_code

        async with httpx.AsyncClient(base_url=base, timeout=90) as client:
            talk = asyncio.gather(*(one(client, s) for s in sessions))
            await asyncio.sleep(1.0)
            await asyncio.to_thread(cluster.kubectl, "delete", "pod", name, "-n", namespace, "--wait=false")
            return list(await talk)

    try:
        statuses = asyncio.run(scenario())
        out, _ = logs.communicate(timeout=90)  # ends when the container has exited
    finally:
        logs.kill()
    # Every conversation answered in time: a message stranded with the stopping replica would have
    # waited ack_wait (= the request timeout) and come back as a 504.
    assert statuses == [200] * len(sessions)
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    [draining] = [r for r in records if r.get("msg") == "draining"]
    [stopped] = [r for r in records if r.get("msg") == "actor host stopped"]
    assert not [r for r in records if r.get("msg") == "drain grace expired"]
    assert stopped["finished_in_flight"] == draining["in_flight"]
    assert stopped["handed_back"] >= 0
    print(f"drain of {name}: in flight {draining['in_flight']}, handed back {stopped['handed_back']}")
    # And nothing is left un-acked on the bus once the conversations are answered.
    cluster.wait_pods_ready(namespace, timeout=180)
    with m.port_forward(cluster, namespace, "demo-nats-0", 8222) as url:
        jsz = httpx.get(f"{url}/jsz?consumers=true", timeout=10).json()
    consumers = [
        c for a in jsz["account_details"] for s in a["stream_detail"] for c in s.get("consumer_detail", [])
    ]
    assert consumers
    assert {c["name"]: c["num_ack_pending"] for c in consumers if c["num_ack_pending"]} == {}

"""`spec.actors.directHops` on the one-process-per-actor layout: the minimal sample with direct hops
reaches Ready and answers a chat with real order data, and the hops between its nine actor processes
really went over core NATS: only the first step's durable consumer delivered the conversation (its one
delivery, the origin, acked once by the process that ended the chain), while the consumers of every
later actor on the route delivered nothing. Switching the field off rolls NATS and every actor
Deployment at once; the mesh comes back Ready and the same measurement then sees every hop go through
the stream, so it tells the two apart. The first actor's process counts the hops it sent directly
(`actormesh_direct_hops_sent_total` on its /metrics)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from actormesh_operator.builders.meta import CONFIG_HASH_ANNOTATION
from actormesh_runtime.catalog import ACTORS_BY_NAME, DEFAULT_ROUTE, ActorName, Ports
from tests.e2e import mesh as m
from tests.e2e.cluster import E2ECluster
from tests.support.eventually import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"
SMALL = {"requests": {"cpu": "10m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
"""Actor requests small enough that the switch-off roll (nine surged actor pods and a new NATS pod) fits
on the 2-CPU node beside the suite's shared mesh; with the default 50-100m the NATS pod found no CPU."""
FIRST = DEFAULT_ROUTE[0].value
CHATS = 3


def _consumers(cluster: E2ECluster, namespace: str, mesh: str) -> dict[str, dict[str, Any]]:
    """Every durable consumer of the mesh's streams, by name, from the NATS monitoring endpoint."""
    with m.port_forward(cluster, namespace, f"{mesh}-nats-0", 8222) as url:
        jsz = httpx.get(f"{url}/jsz?consumers=true", timeout=10).json()
    return {
        c["name"]: c
        for account in jsz.get("account_details", [])
        for stream in account.get("stream_detail", [])
        for c in stream.get("consumer_detail", [])
    }


def _delivered(consumers: dict[str, dict[str, Any]], name: str) -> int:
    return int(consumers.get(name, {}).get("delivered", {}).get("consumer_seq", 0))


def _chats(base_url: str) -> list[str]:
    """CHATS answered conversations; the actors after the first step, in the order they ran."""
    later: list[str] = []
    for _ in range(CHATS):
        result = m.chat(base_url)
        assert m.ORDER_TRACKING in result["response"], result["response"]
        hops = [(t["actor"], t["attempt"]) for t in result["trace"]]
        assert hops[0] == (FIRST, 1), hops
        assert all(attempt == 1 for _, attempt in hops), hops  # no redelivery, no restarted chain
        later += [a for a, _ in hops[1:] if a not in later]
    return later


def _settled(cluster: E2ECluster, namespace: str, mesh: str) -> dict[str, dict[str, Any]]:
    """The consumers once nothing is left unacked (the last step acks the origin after replying)."""
    found: dict[str, dict[str, Any]] = {}

    def nothing_pending() -> bool:
        found.update(_consumers(cluster, namespace, mesh))
        return not any(c["num_ack_pending"] for c in found.values())

    eventually(nothing_pending, what="every delivery acked", timeout_s=60, interval_s=2)
    return found


def _direct_hops_sent(cluster: E2ECluster, namespace: str, mesh: str, sender: str, to: str) -> float:
    """`actormesh_direct_hops_sent_total{actor=to}` summed over the /metrics of `sender`'s pods."""
    component = ACTORS_BY_NAME[ActorName(sender)].k8s_name
    sample = f'actormesh_direct_hops_sent_total{{actor="{to}"}} '
    total = 0.0
    for pod in cluster.pods(namespace, f"{INSTANCE}={mesh},{COMPONENT}={component}"):
        with m.port_forward(cluster, namespace, pod["metadata"]["name"], Ports.ACTOR_HTTP) as url:
            text = httpx.get(f"{url}/metrics", timeout=10).text
        total += sum(float(line[len(sample) :]) for line in text.splitlines() if line.startswith(sample))
    return total


def _hashes(cluster: E2ECluster, namespace: str, mesh: str) -> dict[str, str]:
    """The config hash of every actor Deployment's and of the NATS StatefulSet's pod template."""
    workloads = cluster.get("deployments,statefulsets", "-n", namespace, "-l", f"{INSTANCE}={mesh}")["items"]
    return {
        w["metadata"]["name"]: w["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
        for w in workloads
        if w["metadata"]["name"] == f"{mesh}-nats"
        or (w["spec"]["template"]["spec"]["containers"][0].get("args") or [""])[0] == "actor"
    }


def _rolled(cluster: E2ECluster, namespace: str, mesh: str, before: dict[str, str]) -> bool:
    """Every actor Deployment and the NATS StatefulSet have a new pod template, all their replicas run
    it and are ready, and no old pod is left."""
    hashes = _hashes(cluster, namespace, mesh)
    if set(hashes) != set(before) or any(hashes[w] == before[w] for w in before):
        return False
    workloads = cluster.get("deployments,statefulsets", "-n", namespace, "-l", f"{INSTANCE}={mesh}")["items"]
    if not all(
        w["status"].get("observedGeneration") == w["metadata"]["generation"]
        and w["status"].get("updatedReplicas") == w["spec"]["replicas"] == w["status"].get("readyReplicas")
        == w["status"].get("replicas")
        for w in workloads
        if w["metadata"]["name"] in before
    ):  # fmt: skip
        return False
    return not any(
        p["metadata"].get("deletionTimestamp") for p in cluster.pods(namespace, f"{INSTANCE}={mesh}")
    )


def test_direct_hops_skip_the_stream_between_actor_processes(
    cluster: E2ECluster, operator: dict[str, Any], namespace: str
) -> None:
    if not cluster.sealed_node:
        pytest.skip("only the sealed node routes the Service range to the host")
    name = m.apply_sample(cluster, namespace, actors={"directHops": True, "defaults": {"resources": SMALL}})
    mesh = m.wait_mesh_ready(cluster, namespace, name)
    assert mesh["status"]["actorsReady"] == "9/9", m.dumps(mesh["status"])
    base_url = m.gateway_url(cluster, namespace, name)

    before = _consumers(cluster, namespace, name)
    later = _chats(base_url)
    after = _settled(cluster, namespace, name)
    assert len(later) >= 5, later  # the order question's route: 6 actors after the first
    # Each conversation was delivered once, at the first step, and acked: nothing redelivered.
    assert _delivered(after, FIRST) - _delivered(before, FIRST) == CHATS, after[FIRST]
    assert after[FIRST]["num_redelivered"] == 0, after[FIRST]
    # Every later actor ran (the trace) but its consumer delivered nothing: the hops were direct.
    # The consumers exist (each actor binds its own at start), so zero is a measurement.
    for actor in later:
        assert actor in after, sorted(after)
        assert _delivered(after, actor) == _delivered(before, actor) == 0, (actor, after[actor])
    # And the first actor's process says so: every conversation's hop to the second step went direct.
    assert _direct_hops_sent(cluster, namespace, name, FIRST, to=later[0]) == CHATS

    # Off again: NATS (narrower allow-lists) and all nine actors roll at once; the mesh comes back and
    # the same measurement sees the hops go through the stream.
    hashes = _hashes(cluster, namespace, name)
    assert len(hashes) == 10, hashes  # nine actors and NATS
    patch = json.dumps({"spec": {"actors": {"directHops": False}}})
    cluster.kubectl("patch", f"actormesh/{name}", "-n", namespace, "--type=merge", "-p", patch)
    eventually(
        lambda: _rolled(cluster, namespace, name, hashes),
        what="NATS and every actor Deployment rolled",
        timeout_s=420,
        interval_s=3,
    )
    m.wait_mesh_ready(cluster, namespace, name)
    before = _consumers(cluster, namespace, name)
    later = _chats(base_url)
    after = _settled(cluster, namespace, name)
    for actor in later:
        assert _delivered(after, actor) - _delivered(before, actor) >= CHATS, (actor, after.get(actor))

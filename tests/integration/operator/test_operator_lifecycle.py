"""Deletion (GC and PVC retention), operator restarts (no writes), a missing Secret (Stalled, recovery)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.integration.operator.conftest import OperatorFactory
from tests.integration.operator.kubeapi import (
    apply,
    children,
    condition,
    get,
    matching,
    minimal_mesh,
    reconciled,
    resource_versions,
    stalled,
)
from tests.support.eventually import eventually
from tests.support.k8s import KubeControlPlane

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]


def _reconciles(trigger: str, result: str = "success") -> float:
    value = REGISTRY.get_sample_value(
        "actormesh_operator_reconciles_total", {"trigger": trigger, "result": result}
    )
    return value or 0.0


def _errors(kind: str) -> float:
    return REGISTRY.get_sample_value("actormesh_operator_reconcile_errors_total", {"kind": kind}) or 0.0


def _child_writes() -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "actormesh_operator_child_writes"
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def _pvcs(kube: KubeControlPlane, ns: str) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p["metadata"] for p in get(kube, ns, "persistentvolumeclaims")["items"]}


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
def test_deleting_the_mesh_collects_children_and_pvcs_follow_the_retention(
    operators: OperatorFactory, kube_namespace: str, policy: str
) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, f"bye-{policy.lower()}"
    operators.start()
    apply(kube, ns, minimal_mesh(mesh, persistence={"reclaimPolicy": policy}))
    eventually(lambda: reconciled(kube, ns, mesh) is not None, what="mesh reconciled", timeout_s=60)
    # The StatefulSet controller creates one claim per volumeClaimTemplate: NATS, Redis, history.
    eventually(lambda: len(_pvcs(kube, ns)) == 3, what="three PVCs", timeout_s=60)

    kube.kubectl("delete", "actormesh", mesh, "-n", ns, "--wait=false")
    eventually(lambda: not children(kube, ns, mesh), what="children garbage-collected", timeout_s=90)
    if policy == "Delete":
        # Gone, or terminating until the PVC protection controller (if any) releases it.
        eventually(
            lambda: all(meta.get("deletionTimestamp") for meta in _pvcs(kube, ns).values()),
            what="PVCs deleted",
            timeout_s=90,
        )
    else:
        pvcs = _pvcs(kube, ns)
        assert len(pvcs) == 3
        assert not any(meta.get("deletionTimestamp") for meta in pvcs.values())
        assert not any(meta.get("ownerReferences") for meta in pvcs.values()), "a retained PVC has no owner"


def test_restarting_the_operator_writes_nothing(operators: OperatorFactory, kube_namespace: str) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "steady"
    first = operators.start()
    apply(kube, ns, minimal_mesh(mesh))
    eventually(lambda: matching(kube, ns, mesh) is not None, what="children match the spec", timeout_s=60)
    # The controllers update the children's status for a moment after creation; wait for quiet.
    eventually(lambda: _stable(kube, ns, mesh), what="children settled", timeout_s=90)
    first.stop()
    before = resource_versions(kube, ns, mesh)
    writes, resumed, resynced = _child_writes(), _reconciles("resume"), _reconciles("resync")

    operators.start()
    eventually(lambda: _reconciles("resume") > resumed, what="resume reconcile", timeout_s=60)
    eventually(lambda: _reconciles("resync") > resynced, what="a resync reconcile", timeout_s=60)

    assert _child_writes() == writes
    assert resource_versions(kube, ns, mesh) == before


def _stable(kube: KubeControlPlane, ns: str, mesh: str) -> bool:
    first = resource_versions(kube, ns, mesh)
    time.sleep(2)
    return resource_versions(kube, ns, mesh) == first


def test_missing_secret_stalls_and_recovers(operators: OperatorFactory, kube_namespace: str) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "secretive"
    errors_before = _errors("MissingSecretError")
    operators.start()
    body = minimal_mesh(mesh, gateway={"authSecretRef": {"name": "gateway-jwt", "key": "secret"}})
    apply(kube, ns, body)

    eventually(lambda: stalled(kube, ns, mesh) is not None, what="Stalled", timeout_s=60)
    live = stalled(kube, ns, mesh)
    assert live is not None
    stall = condition(live, "Stalled")
    assert stall["reason"] == "SecretNotFound"
    assert "spec.gateway.authSecretRef" in str(stall["message"])
    assert "gateway-jwt" in str(stall["message"])
    assert condition(live, "Reconciling")["status"] == "False"
    assert condition(live, "Ready")["status"] == "False"
    assert live["status"]["phase"] == "Failed"
    assert not children(kube, ns, mesh), "nothing is applied while a referenced Secret is missing"
    assert _errors("MissingSecretError") > errors_before, "the errors metric counts the cause"

    def events() -> list[dict[str, Any]]:
        items = get(kube, ns, "events", "--field-selector", f"involvedObject.name={mesh}")["items"]
        return [e for e in items if e.get("reason") == "SecretNotFound"]

    eventually(lambda: bool(events()), what="a Warning Event", timeout_s=60)
    assert events()[0]["type"] == "Warning"
    # Two resyncs later: still stalled, one attempt per resync (no hot loop), the Event not repeated.
    attempts = _reconciles("resync", "stalled")
    eventually(
        lambda: _reconciles("resync", "stalled") >= attempts + 2,
        what="two more resync attempts",
        timeout_s=60,
    )
    assert len(events()) == 1
    assert sum(int(e.get("count") or 1) for e in events()) == 1

    kube.kubectl("create", "secret", "generic", "gateway-jwt", "--from-literal=secret=s3cr3t", "-n", ns)
    eventually(
        lambda: (
            (live := matching(kube, ns, mesh)) is not None
            and condition(live, "Stalled").get("status") == "False"
        ),
        what="recovered",
        timeout_s=60,
    )


def _uid(kube: KubeControlPlane, ns: str, mesh: str) -> str:
    return str(get(kube, ns, "actormesh", mesh)["metadata"]["uid"])


def _warnings_about(kube: KubeControlPlane, ns: str, uid: str) -> list[dict[str, Any]]:
    """The Warning Events `kubectl describe` shows for this very mesh (matched by UID, not name)."""
    items = get(kube, ns, "events", "--field-selector", f"involvedObject.uid={uid}")["items"]
    return [e for e in items if e.get("type") == "Warning"]


def test_a_mesh_recreated_under_a_deleted_stalled_name_gets_its_own_warning(
    operators: OperatorFactory, kube_namespace: str
) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "phoenix"
    operators.start()
    body = minimal_mesh(mesh, gateway={"authSecretRef": {"name": "phoenix-jwt", "key": "secret"}})
    apply(kube, ns, body)
    eventually(lambda: stalled(kube, ns, mesh) is not None, what="first mesh stalled", timeout_s=60)
    first = _uid(kube, ns, mesh)
    eventually(lambda: bool(_warnings_about(kube, ns, first)), what="its Warning Event", timeout_s=60)

    kube.kubectl("delete", "actormesh", mesh, "-n", ns)  # waits until it is gone
    apply(kube, ns, body)
    second = _uid(kube, ns, mesh)
    assert second != first
    eventually(lambda: stalled(kube, ns, mesh) is not None, what="second mesh stalled", timeout_s=60)
    # The same failure, but another object: a user describing the new mesh must see why it is stuck.
    eventually(
        lambda: [e["reason"] for e in _warnings_about(kube, ns, second)] == ["SecretNotFound"],
        what="the new mesh's own Warning Event",
        timeout_s=60,
    )

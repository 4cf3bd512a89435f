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
from tests.support.k8s import KubeControlPlane, wait_for

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
    wait_for("mesh reconciled", lambda: reconciled(kube, ns, mesh) is not None)
    # The StatefulSet controller creates one claim per volumeClaimTemplate: NATS, Redis, history.
    wait_for("three PVCs", lambda: len(_pvcs(kube, ns)) == 3)

    kube.kubectl("delete", "actormesh", mesh, "-n", ns, "--wait=false")
    wait_for("children garbage-collected", lambda: not children(kube, ns, mesh), timeout=90)
    if policy == "Delete":
        # Gone, or terminating until the PVC protection controller (if any) releases it.
        wait_for(
            "PVCs deleted",
            lambda: all(meta.get("deletionTimestamp") for meta in _pvcs(kube, ns).values()),
            timeout=90,
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
    wait_for("children match the spec", lambda: matching(kube, ns, mesh) is not None)
    # The controllers update the children's status for a moment after creation; wait for quiet.
    wait_for("children settled", lambda: _stable(kube, ns, mesh), timeout=90)
    first.stop()
    before = resource_versions(kube, ns, mesh)
    writes, resumed, resynced = _child_writes(), _reconciles("resume"), _reconciles("resync")

    operators.start()
    wait_for("resume reconcile", lambda: _reconciles("resume") > resumed)
    wait_for("a resync reconcile", lambda: _reconciles("resync") > resynced)

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

    wait_for("Stalled", lambda: stalled(kube, ns, mesh) is not None)
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

    wait_for("a Warning Event", lambda: bool(events()))
    assert events()[0]["type"] == "Warning"
    # Two resyncs later: still stalled, one attempt per resync (no hot loop), the Event not repeated.
    attempts = _reconciles("resync", "stalled")
    wait_for("two more resync attempts", lambda: _reconciles("resync", "stalled") >= attempts + 2)
    assert len(events()) == 1
    assert sum(int(e.get("count") or 1) for e in events()) == 1

    kube.kubectl("create", "secret", "generic", "gateway-jwt", "--from-literal=secret=s3cr3t", "-n", ns)
    wait_for(
        "recovered",
        lambda: (
            (live := matching(kube, ns, mesh)) is not None
            and condition(live, "Stalled").get("status") == "False"
        ),
    )

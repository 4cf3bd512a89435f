"""Status writes on a real API server: other writers' conditions survive, and our own status patches
start no reconcile of their own (kopf's update handler fires for the spec change only)."""

from __future__ import annotations

import json

import pytest
from prometheus_client import REGISTRY

from tests.integration.operator.conftest import OperatorFactory
from tests.integration.operator.kubeapi import (
    apply,
    condition,
    get,
    matching,
    merge_patch,
    minimal_mesh,
    reconciled,
)
from tests.support.eventually import eventually

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]

FOREIGN = {
    "type": "example.com/Audited",
    "status": "True",
    "reason": "PolicyChecked",
    "message": "written by another controller",
    "lastTransitionTime": "2026-01-02T03:04:05Z",
}


def _reconciles(trigger: str) -> float:
    total = 0.0
    for result in ("success", "retry", "stalled"):
        labels = {"trigger": trigger, "result": result}
        total += REGISTRY.get_sample_value("actormesh_operator_reconciles_total", labels) or 0.0
    return total


def _unchanged_across_resyncs(operators: OperatorFactory, ns: str, mesh: str, count: int = 2) -> bool:
    """True when the mesh's resourceVersion holds while `count` resync reconciles run."""
    before = get(operators.kube, ns, "actormesh", mesh)["metadata"]["resourceVersion"]
    resyncs = _reconciles("resync")
    eventually(lambda: _reconciles("resync") >= resyncs + count, what=f"{count} resyncs", timeout_s=60)
    return bool(get(operators.kube, ns, "actormesh", mesh)["metadata"]["resourceVersion"] == before)


def test_other_writers_conditions_are_kept_and_status_writes_do_not_reconcile(
    operators: OperatorFactory, kube_namespace: str
) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "audited"
    operators.start(resync_interval_s=1.0, resync_jitter_s=0.2)
    apply(kube, ns, minimal_mesh(mesh))
    eventually(lambda: matching(kube, ns, mesh) is not None, what="children match the spec", timeout_s=60)
    # Another controller adds its own condition through the status subresource.
    patch = [{"op": "add", "path": "/status/conditions/-", "value": FOREIGN}]
    kube.kubectl(
        "patch", f"actormesh/{mesh}", "-n", ns, "--subresource=status", "--type=json", "-p", json.dumps(patch)
    )
    updates = _reconciles("update")

    # A spec change: one update reconcile, which writes a new status (observedGeneration moves).
    merge_patch(kube, ns, f"actormesh/{mesh}", {"spec": {"gateway": {"replicas": 2}}})
    eventually(lambda: reconciled(kube, ns, mesh) is not None, what="new generation reconciled", timeout_s=60)
    # Children's controllers may still move their status (and so ours) for a moment; then quiet.
    eventually(
        lambda: _unchanged_across_resyncs(operators, ns, mesh), what="mesh status settled", timeout_s=90
    )
    version = get(kube, ns, "actormesh", mesh)["metadata"]["resourceVersion"]
    assert _unchanged_across_resyncs(operators, ns, mesh), "resyncs of an unchanged mesh wrote its status"

    assert _reconciles("update") == updates + 1, "our status write (or the foreign one) triggered a reconcile"
    live = get(kube, ns, "actormesh", mesh)
    assert live["metadata"]["resourceVersion"] == version
    assert condition(live, FOREIGN["type"]) == FOREIGN
    types = [c["type"] for c in live["status"]["conditions"]]
    assert sorted(types) == sorted(
        ["Ready", "Reconciling", "Stalled", "Paused", "MonitoringReady", "HTTPRouteReady", FOREIGN["type"]]
    )
    assert live["status"]["observedGeneration"] == live["metadata"]["generation"]
    assert all(
        condition(live, kind)["observedGeneration"] == live["metadata"]["generation"]
        for kind in ("Ready", "Reconciling", "Stalled")
    )

"""A child the API server rejects stalls the mesh with a message naming the failed action; fixing the
spec heals it."""

from __future__ import annotations

import json

import pytest

from tests.integration.operator.conftest import OperatorFactory
from tests.integration.operator.kubeapi import (
    apply,
    condition,
    get,
    matching,
    minimal_mesh,
    stalled,
)
from tests.support.eventually import eventually

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]

# Accepted by the CRD (it checks the affinity's structure, not its values) but invalid in a pod template.
BAD_AFFINITY = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}


def test_rejected_child_stalls_the_mesh_until_the_spec_is_fixed(
    operators: OperatorFactory, kube_namespace: str
) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "rejected"
    operators.start()
    apply(kube, ns, minimal_mesh(mesh, scheduling={"affinity": BAD_AFFINITY}))

    eventually(lambda: stalled(kube, ns, mesh) is not None, what="Stalled", timeout_s=60)
    live = stalled(kube, ns, mesh)
    assert live is not None
    stall = condition(live, "Stalled")
    assert stall["reason"] == "ApplyRejected"
    assert stall["message"].startswith(f"apply statefulset {mesh}-"), stall["message"]
    assert "nodeSelectorTerms" in stall["message"]
    assert live["status"]["observedGeneration"] == live["metadata"]["generation"]

    def events() -> list[str]:
        selector = f"involvedObject.name={mesh},reason=ApplyRejected"
        return [e["type"] for e in get(kube, ns, "events", "--field-selector", selector)["items"]]

    eventually(lambda: events() == ["Warning"], what="a Warning Event", timeout_s=60)

    kube.kubectl(
        "patch", f"actormesh/{mesh}", "-n", ns, "--type=json",
        "-p", json.dumps([{"op": "remove", "path": "/spec/scheduling"}]),
    )  # fmt: skip
    eventually(
        lambda: (
            (body := matching(kube, ns, mesh)) is not None
            and condition(body, "Stalled").get("status") == "False"
        ),
        what="healed",
        timeout_s=60,
    )

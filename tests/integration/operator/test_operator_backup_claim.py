"""The history snapshots' own claim on a live mesh: a smaller size in the spec never stalls the mesh
(Kubernetes refuses to shrink a claim; the spec's size is a floor), and its storage class is refused
by the API server rather than by every later apply."""

from __future__ import annotations

import json
from typing import Any

import pytest

from actormesh_operator.builders import names
from tests.integration.operator.conftest import OperatorFactory
from tests.integration.operator.kubeapi import apply, condition, get, minimal_mesh, reconciled
from tests.support.eventually import eventually

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]

NEW_IMAGE = "actormesh/actormesh:0.1.0-b"


def _mesh(
    name: str, size: str, *, image: str = "actormesh/actormesh:0.1.0", **storage: str
) -> dict[str, Any]:
    body = minimal_mesh(name, history={"backup": {"enabled": True, "storage": {"size": size, **storage}}})
    body["spec"]["image"] = image
    return body


def test_a_smaller_snapshot_claim_in_the_spec_keeps_the_claim_and_applies_the_rest(
    operators: OperatorFactory, kube_namespace: str
) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "snaps"
    operators.start()
    apply(kube, ns, _mesh(mesh, "2Gi"))
    claim = names.history_backups(mesh)
    eventually(lambda: reconciled(kube, ns, mesh) is not None, what="mesh reconciled", timeout_s=60)

    def requested() -> str:
        return str(get(kube, ns, "pvc", claim)["spec"]["resources"]["requests"]["storage"])

    eventually(lambda: requested() == "2Gi", what="the snapshot claim", timeout_s=60)

    # One edit: the claim asked smaller (refused by Kubernetes if applied) and a new image.
    apply(kube, ns, _mesh(mesh, "1Gi", image=NEW_IMAGE))

    def rolled() -> bool:
        body = reconciled(kube, ns, mesh)
        if body is None:
            return False
        assert condition(body, "Stalled").get("status") != "True", condition(body, "Stalled")
        gateway = get(kube, ns, "deployment", names.gateway(mesh))
        return bool(gateway["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_IMAGE)

    eventually(rolled, what="the new image applied, the mesh not stalled", timeout_s=60)
    assert requested() == "2Gi"

    other_class = _mesh(mesh, "2Gi", image=NEW_IMAGE, storageClassName="fast")
    refused = kube.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(other_class), check=False)
    assert refused.returncode != 0
    assert "spec.history.backup.storage.storageClassName is immutable" in refused.stderr

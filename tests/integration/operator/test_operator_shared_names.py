"""Two meshes of one name in two namespaces on one external NATS: the runtime would give both the same
stream and consumers, so a cluster-wide operator stalls the newer one (`SharedNameClash`) and applies
nothing for it, keeps the older one working, and lets the newer one through as soon as the older is
gone."""

from __future__ import annotations

import pytest

from actormesh_operator.reconcile.kube import load_kubeconfig
from tests.integration.operator.conftest import OperatorFactory
from tests.integration.operator.kubeapi import (
    apply,
    children,
    condition,
    get,
    matching,
    minimal_mesh,
    stalled,
)
from tests.support.eventually import eventually

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]

SHARED_NATS = {"external": {"url": "nats://nats.shared.svc:4222"}}


def test_the_newer_mesh_of_a_shared_name_stalls_until_the_older_is_deleted(
    operators: OperatorFactory, kube_namespace: str
) -> None:
    kube, mesh = operators.kube, "shop"
    first, second = kube_namespace, f"{kube_namespace}-z"  # on a tie, the first namespace wins
    kube.kubectl("create", "namespace", second)
    try:
        # Cluster-wide (a namespaced operator sees one namespace, where names are unique); the resync
        # an hour away, so the recovery below comes from the deletion's wake-up alone.
        operators.start(creds=load_kubeconfig(kube.kubeconfig), namespace=None, resync_interval_s=3600)
        apply(kube, first, minimal_mesh(mesh, nats=SHARED_NATS))
        eventually(lambda: matching(kube, first, mesh) is not None, what="older mesh applied", timeout_s=60)

        # Another URL form of the same server: default port, another scheme, a list.
        other_form = {"external": {"url": "tls://nats.shared.svc,nats://elsewhere:4222"}}
        apply(kube, second, minimal_mesh(mesh, nats=other_form))
        eventually(lambda: stalled(kube, second, mesh) is not None, what="newer mesh Stalled", timeout_s=60)
        live = stalled(kube, second, mesh)
        assert live is not None
        stall = condition(live, "Stalled")
        assert stall["reason"] == "SharedNameClash"
        for part in ("spec.nats.external.url", f"{first}/{mesh}", "ACTORMESH-shop"):
            assert part in stall["message"], stall["message"]
        assert condition(live, "Ready")["status"] == "False"
        assert children(kube, second, mesh) == {}, "nothing applied for the newer mesh"

        def warnings() -> list[str]:
            selector = f"involvedObject.name={mesh},reason=SharedNameClash"
            return [e["type"] for e in get(kube, second, "events", "--field-selector", selector)["items"]]

        eventually(lambda: warnings() == ["Warning"], what="a Warning Event", timeout_s=60)
        older = matching(kube, first, mesh)
        assert older is not None, "the older mesh stays applied"
        assert condition(older, "Stalled").get("status") == "False"

        kube.kubectl("delete", "actormesh", mesh, "-n", first)
        eventually(
            lambda: (
                (body := matching(kube, second, mesh)) is not None
                and condition(body, "Stalled").get("status") == "False"
            ),
            what="newer mesh applied once the older is gone",
            timeout_s=60,
        )
    finally:
        operators.stop_all()
        kube.kubectl("delete", "namespace", second, "--wait=false", check=False)

"""Drift: a deleted or edited child is restored through the child watch; an HPA's scaling is kept."""

from __future__ import annotations

import json
import time

import pytest

from actormesh_operator.builders import names
from actormesh_runtime.catalog import ACTORS_BY_NAME, ActorName
from tests.integration.operator.conftest import OperatorFactory
from tests.integration.operator.kubeapi import (
    FIELD_MANAGER,
    apply,
    children,
    generations,
    get,
    merge_patch,
    minimal_mesh,
    reconciled,
    resource_versions,
    try_get,
)
from tests.support.eventually import eventually
from tests.support.k8s import KubeControlPlane

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]


def test_deleted_and_edited_children_are_restored(operators: OperatorFactory, kube_namespace: str) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "drift"
    # A resync far in the future: only the child watch can bring the children back in time.
    operators.start(resync_interval_s=3600)
    apply(kube, ns, minimal_mesh(mesh))
    eventually(lambda: reconciled(kube, ns, mesh) is not None, what="mesh reconciled", timeout_s=60)
    gateway, config = names.gateway(mesh), names.runtime_config(mesh)
    eventually(
        lambda: ("Service", gateway) in children(kube, ns, mesh), what="children created", timeout_s=60
    )
    original = get(kube, ns, "deployment", gateway)
    container = original["spec"]["template"]["spec"]["containers"][0]
    old_uid = get(kube, ns, "service", gateway)["metadata"]["uid"]

    kube.kubectl("delete", f"service/{gateway}", f"configmap/{config}", "-n", ns)
    kube.kubectl("set", "image", f"deployment/{gateway}", f"{container['name']}=evil/image:1", "-n", ns)
    policy = names.network_policy(mesh, "base")
    kube.kubectl("label", "networkpolicy", policy, "-n", ns, "app.kubernetes.io/managed-by-")

    def restored() -> bool:
        service = try_get(kube, ns, "service", gateway)
        deployment = get(kube, ns, "deployment", gateway)
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        return (
            service is not None
            and service["metadata"]["uid"] != old_uid
            and try_get(kube, ns, "configmap", config) is not None
            and image == container["image"]
            and "app.kubernetes.io/managed-by" in get(kube, ns, "networkpolicy", policy)["metadata"]["labels"]
        )

    eventually(restored, what="deleted and edited children restored", timeout_s=60)


def test_a_child_stripped_of_its_owner_reference_is_restored(
    operators: OperatorFactory, kube_namespace: str
) -> None:
    """Without its ownerReference a child would outlive the mesh (the garbage collector would not take
    it, and pruning never touches what another owns): the mesh it belonged to repairs it at once."""
    kube, ns, mesh = operators.kube, kube_namespace, "owned"
    # A resync far in the future: only the child watch can bring the reference back in time.
    operators.start(resync_interval_s=3600)
    apply(kube, ns, minimal_mesh(mesh))
    eventually(lambda: reconciled(kube, ns, mesh) is not None, what="mesh reconciled", timeout_s=60)
    uid = get(kube, ns, "actormesh", mesh)["metadata"]["uid"]
    gateway = names.gateway(mesh)
    eventually(
        lambda: ("Service", gateway) in children(kube, ns, mesh), what="children created", timeout_s=60
    )

    # Quiet first: a pass the creation still causes would repair it whatever the watch does.
    eventually(lambda: _stable(kube, ns, mesh), what="children settled", timeout_s=90)
    merge_patch(kube, ns, f"service/{gateway}", {"metadata": {"ownerReferences": None}})

    def owner() -> list[str]:
        refs = get(kube, ns, "service", gateway)["metadata"].get("ownerReferences") or []
        return [r["uid"] for r in refs if r.get("controller")]

    eventually(lambda: owner() == [uid], what="the mesh's ownerReference restored", timeout_s=60)


def _stable(kube: KubeControlPlane, ns: str, mesh: str) -> bool:
    first = resource_versions(kube, ns, mesh)
    time.sleep(2)
    return resource_versions(kube, ns, mesh) == first


def test_a_policy_an_older_release_made_is_pruned(operators: OperatorFactory, kube_namespace: str) -> None:
    """Upgrade from per-flow NetworkPolicies: the old ones, still owned by the mesh, are deleted once
    their flows live in the new ones (the child watch brings it; no resync needed)."""
    kube, ns, mesh = operators.kube, kube_namespace, "upgraded"
    operators.start(resync_interval_s=3600)
    apply(kube, ns, minimal_mesh(mesh))
    eventually(lambda: reconciled(kube, ns, mesh) is not None, what="mesh reconciled", timeout_s=60)
    base = get(kube, ns, "networkpolicy", names.network_policy(mesh, "base"))
    old_name = names.network_policy(mesh, "allow-dns")
    old = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": old_name,
            "labels": base["metadata"]["labels"],
            "ownerReferences": base["metadata"]["ownerReferences"],
        },
        "spec": {"podSelector": base["spec"]["podSelector"], "policyTypes": ["Egress"], "egress": []},
    }
    kube.kubectl(
        "apply",
        "--server-side",
        f"--field-manager={FIELD_MANAGER}",
        "-n",
        ns,
        "-f",
        "-",
        input=json.dumps(old),
    )
    eventually(
        lambda: try_get(kube, ns, "networkpolicy", old_name) is None, what="old policy pruned", timeout_s=60
    )
    assert try_get(kube, ns, "networkpolicy", base["metadata"]["name"]) is not None


def test_hpa_scaling_is_not_reverted(operators: OperatorFactory, kube_namespace: str) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "scaled"
    operators.start()
    autoscaling = {"enabled": True, "minReplicas": 2, "maxReplicas": 5}
    apply(kube, ns, minimal_mesh(mesh, actors={"defaults": {"autoscaling": autoscaling}}))
    eventually(lambda: reconciled(kube, ns, mesh) is not None, what="mesh reconciled", timeout_s=60)
    actor = names.actor(mesh, ACTORS_BY_NAME[ActorName.SENTIMENT_ANALYZER])

    # The real HPA controller raises the Deployment from its default 1 to minReplicas (no metrics needed).
    eventually(
        lambda: get(kube, ns, "deployment", actor)["spec"]["replicas"] == 2,
        what="HPA scaled the actor to 2",
        timeout_s=60,
    )

    # Make the operator reconcile again (a spec change elsewhere) and let the child watch fire too.
    merge_patch(kube, ns, f"actormesh/{mesh}", {"spec": {"gateway": {"replicas": 2}}})
    eventually(lambda: reconciled(kube, ns, mesh) is not None, what="new generation reconciled", timeout_s=60)
    eventually(
        lambda: get(kube, ns, "deployment", names.gateway(mesh))["spec"]["replicas"] == 2,
        what="gateway scaled by the operator",
        timeout_s=60,
    )

    deployment = children(kube, ns, mesh)[("Deployment", actor)]
    assert deployment["spec"]["replicas"] == 2
    ours = [m for m in deployment["metadata"]["managedFields"] if m["manager"] == FIELD_MANAGER]
    assert ours, "the operator applied the Deployment"
    assert all("f:replicas" not in m["fieldsV1"].get("f:spec", {}) for m in ours), (
        "the operator must not own spec.replicas of an autoscaled Deployment"
    )


def test_switching_autoscaling_on_keeps_the_current_replicas(
    operators: OperatorFactory, kube_namespace: str
) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "handover"
    operators.start()
    apply(kube, ns, minimal_mesh(mesh, actors={"sentimentAnalyzer": {"replicas": 3}}))
    eventually(lambda: reconciled(kube, ns, mesh) is not None, what="mesh reconciled", timeout_s=60)
    actor = names.actor(mesh, ACTORS_BY_NAME[ActorName.SENTIMENT_ANALYZER])
    eventually(
        lambda: get(kube, ns, "deployment", actor)["spec"]["replicas"] == 3, what="3 replicas", timeout_s=60
    )

    autoscaling = {"enabled": True, "minReplicas": 2, "maxReplicas": 5}
    merge_patch(
        kube,
        ns,
        f"actormesh/{mesh}",
        {"spec": {"actors": {"sentimentAnalyzer": {"autoscaling": autoscaling}}}},
    )
    eventually(lambda: reconciled(kube, ns, mesh) is not None, what="new generation reconciled", timeout_s=60)
    eventually(
        lambda: try_get(kube, ns, "horizontalpodautoscaler", actor) is not None,
        what="HPA created",
        timeout_s=60,
    )

    # Dropping the field without a handover would reset it to the default of 1 (then the HPA to 2).
    deployment = children(kube, ns, mesh)[("Deployment", actor)]
    assert deployment["spec"]["replicas"] == 3
    ours = [m for m in deployment["metadata"]["managedFields"] if m["manager"] == FIELD_MANAGER]
    assert all("f:replicas" not in m["fieldsV1"].get("f:spec", {}) for m in ours)


def test_a_rollout_paused_by_hand_is_resumed(operators: OperatorFactory, kube_namespace: str) -> None:
    """`kubectl rollout pause` on a child: before, it stayed paused, no new template ever rolled, and the
    mesh said "rolling out" for ever."""
    kube, ns, mesh = operators.kube, kube_namespace, "paused-rollout"
    operators.start(resync_interval_s=3600)  # only the child watch can bring it back in time
    apply(kube, ns, minimal_mesh(mesh))
    gateway = names.gateway(mesh)
    eventually(lambda: reconciled(kube, ns, mesh) is not None, what="mesh reconciled", timeout_s=60)
    eventually(
        lambda: try_get(kube, ns, "deployment", gateway) is not None, what="gateway created", timeout_s=60
    )
    before = generations(kube, ns, mesh, "Deployment")
    kube.kubectl("rollout", "pause", f"deployment/{gateway}", "-n", ns)
    eventually(
        lambda: not get(kube, ns, "deployment", gateway)["spec"].get("paused"),
        what="the rollout resumed by the operator",
        timeout_s=60,
    )
    # Only the paused Deployment's spec was written: a false `paused`, which the API server does not
    # store, is no drift on the others (their generation counts spec changes only).
    after = generations(kube, ns, mesh, "Deployment")
    assert {name for name in before if before[name] != after.get(name)} == {gateway}, (before, after)

"""Actor groups with the real operator and API server: grouping replaces the members' Deployments with
the group's (plus its HPA and NATS password), ungrouping prunes the group's children and brings the
members' own Deployments back."""

from __future__ import annotations

import base64

import pytest

from actormesh_operator.builders import names
from actormesh_runtime.catalog import ACTORS_BY_NAME, ActorName
from tests.integration.operator.conftest import OperatorFactory
from tests.integration.operator.kubeapi import apply, children, get, matching, merge_patch, minimal_mesh
from tests.support.eventually import eventually

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]

GROUP = {
    "name": "routers",
    "actors": ["decisionRouter", "escalationRouter"],
    "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 3},
}
MEMBERS = [ActorName.DECISION_ROUTER, ActorName.ESCALATION_ROUTER]


def test_grouping_and_ungrouping_swap_the_deployments(
    operators: OperatorFactory, kube_namespace: str
) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "grouping"
    group = ("Deployment", names.actor_workload(mesh, "routers"))
    own = {("Deployment", names.actor(mesh, ACTORS_BY_NAME[a])) for a in MEMBERS}
    operators.start()
    apply(kube, ns, minimal_mesh(mesh, actors={"groups": [GROUP]}))
    eventually(lambda: matching(kube, ns, mesh), what="grouped children", timeout_s=90)
    live = set(children(kube, ns, mesh))
    assert group in live
    assert ("HorizontalPodAutoscaler", group[1]) in live
    assert not own & live
    secret = get(kube, ns, "secret", names.nats_users_secret(mesh))
    assert base64.b64decode(secret["data"]["group_routers"])

    merge_patch(kube, ns, f"actormesh/{mesh}", {"spec": {"actors": {"groups": None}}})
    eventually(lambda: matching(kube, ns, mesh) is not None, what="ungrouped children", timeout_s=90)
    live = set(children(kube, ns, mesh))
    assert own <= live
    assert group not in live
    assert ("HorizontalPodAutoscaler", group[1]) not in live
    assert ("PodDisruptionBudget", group[1]) not in live

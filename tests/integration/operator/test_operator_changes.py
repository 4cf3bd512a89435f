"""Spec changes: only the affected workloads roll, and disabled components are deleted."""

from __future__ import annotations

import pytest

from actormesh_operator.builders import names
from actormesh_runtime.catalog import ACTORS_BY_NAME, ActorName
from tests.integration.operator.conftest import OperatorFactory
from tests.integration.operator.kubeapi import (
    apply,
    children,
    generations,
    matching,
    merge_patch,
    minimal_mesh,
    reconciled,
)
from tests.support.eventually import eventually

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]


def _settled(operators: OperatorFactory, ns: str, mesh: str) -> None:
    kube = operators.kube
    eventually(lambda: reconciled(kube, ns, mesh) is not None, what="mesh reconciled", timeout_s=60)
    eventually(lambda: matching(kube, ns, mesh) is not None, what="children match the spec", timeout_s=60)


def test_spec_change_rolls_only_the_affected_deployment(
    operators: OperatorFactory, kube_namespace: str
) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "rolling"
    operators.start()
    apply(kube, ns, minimal_mesh(mesh))
    _settled(operators, ns, mesh)
    deployments = generations(kube, ns, mesh, "Deployment")
    statefulsets = generations(kube, ns, mesh, "StatefulSet")

    merge_patch(
        kube, ns, f"actormesh/{mesh}", {"spec": {"actors": {"sentimentAnalyzer": {"concurrency": 3}}}}
    )
    _settled(operators, ns, mesh)

    changed = names.actor(mesh, ACTORS_BY_NAME[ActorName.SENTIMENT_ANALYZER])
    after = generations(kube, ns, mesh, "Deployment")
    assert after[changed] == deployments[changed] + 1
    assert {k: v for k, v in after.items() if k != changed} == {
        k: v for k, v in deployments.items() if k != changed
    }
    assert generations(kube, ns, mesh, "StatefulSet") == statefulsets


def test_disabled_components_are_deleted(operators: OperatorFactory, kube_namespace: str) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "shrinking"
    operators.start()
    apply(kube, ns, minimal_mesh(mesh))
    _settled(operators, ns, mesh)
    before = set(children(kube, ns, mesh))
    mocks = ("Deployment", names.mocks(mesh))
    actor = ("Deployment", names.actor(mesh, ACTORS_BY_NAME[ActorName.SENTIMENT_ANALYZER]))
    redis = ("StatefulSet", names.redis(mesh))
    assert {mocks, actor, redis} <= before

    merge_patch(
        kube,
        ns,
        f"actormesh/{mesh}",
        {
            "spec": {
                "mockServices": {"enabled": False},
                "redis": {"enabled": False},
                "actors": {"sentimentAnalyzer": {"enabled": False}},
            }
        },
    )
    _settled(operators, ns, mesh)
    after = set(children(kube, ns, mesh))
    assert not {mocks, actor, redis} & after
    assert ("Service", names.mocks(mesh)) not in after
    assert ("Service", names.redis(mesh)) not in after
    assert after < before

"""The resync over an unchanged mesh builds nothing, also after status updates of its children; a change
after it is still applied (`insync.py`, `children.ChildCache.apply_version`)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import REGISTRY

from actormesh_operator.builders import names
from actormesh_operator.reconcile import runner
from actormesh_runtime.catalog import ACTORS_BY_NAME, ActorName
from tests.integration.operator.conftest import OperatorFactory
from tests.integration.operator.kubeapi import apply, get, merge_patch, minimal_mesh, reconciled
from tests.support.eventually import eventually

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]


def _resyncs() -> float:
    labels = {"trigger": "resync", "result": "success"}
    return REGISTRY.get_sample_value("actormesh_operator_reconciles_total", labels) or 0.0


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The mesh name of every `build_children` call the operator's passes make."""
    seen: list[str] = []
    real_build = runner.build_children

    def counting_build(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[0].name)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(runner, "build_children", counting_build)
    return seen


def _settled_with_resyncs(operators: OperatorFactory, ns: str, mesh: str) -> None:
    """The mesh reconciled by a fast-resyncing operator, and three resync passes after it."""
    operators.start(resync_interval_s=0.5, resync_jitter_s=0.1)
    apply(operators.kube, ns, minimal_mesh(mesh))
    eventually(lambda: reconciled(operators.kube, ns, mesh) is not None, what="mesh reconciled", timeout_s=60)
    start = _resyncs()
    eventually(lambda: _resyncs() >= start + 3, what="three resync passes", timeout_s=60)


def test_a_resync_of_an_unchanged_mesh_skips_the_builders_and_a_change_still_lands(
    operators: OperatorFactory, kube_namespace: str, builds: list[str]
) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "insync"
    # A few resync passes after the one that verified every child: none of them builds.
    _settled_with_resyncs(operators, ns, mesh)
    settled_builds, start = len(builds), _resyncs()
    eventually(lambda: _resyncs() >= start + 4, what="four more resync passes", timeout_s=60)
    assert len(builds) == settled_builds, f"{len(builds) - settled_builds} builds"

    # A spec change is built and applied (the new generation changes the inputs' digest).
    apply(kube, ns, minimal_mesh(mesh, actors={"sentimentAnalyzer": {"replicas": 2}}))
    deployment = names.actor(mesh, ACTORS_BY_NAME[ActorName.SENTIMENT_ANALYZER])
    eventually(
        lambda: get(kube, ns, "deployment", deployment)["spec"]["replicas"] == 2,
        what="the new replica count applied",
        timeout_s=60,
    )
    assert len(builds) > settled_builds


def test_status_updates_and_the_revision_annotation_leave_a_mesh_verified_but_an_edit_is_repaired(
    operators: OperatorFactory, kube_namespace: str, builds: list[str]
) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "verified"
    _settled_with_resyncs(operators, ns, mesh)

    # What the controller manager writes on a Deployment, done by hand: new resourceVersions, no news.
    deployment = names.actor(mesh, ACTORS_BY_NAME[ActorName.DECISION_ROUTER])
    before = get(kube, ns, "deployment", deployment)["metadata"]["resourceVersion"]
    status = {"status": {"conditions": [{"type": "BenchTouched", "status": "True"}]}}
    kube.kubectl(
        "patch",
        "deployment",
        deployment,
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    kube.kubectl(
        "annotate", "deployment", deployment, "-n", ns, "deployment.kubernetes.io/revision=7", "--overwrite"
    )
    assert get(kube, ns, "deployment", deployment)["metadata"]["resourceVersion"] != before
    settled_builds, start = len(builds), _resyncs()
    eventually(lambda: _resyncs() >= start + 4, what="four resync passes", timeout_s=60)
    assert len(builds) == settled_builds, f"{len(builds) - settled_builds} builds after status-only writes"

    # An edit of a field we set is still seen and repaired.
    merge_patch(kube, ns, f"deployment/{deployment}", {"spec": {"replicas": 4}})
    eventually(
        lambda: get(kube, ns, "deployment", deployment)["spec"]["replicas"] == 1,
        what="the edited replica count repaired",
        timeout_s=60,
    )
    assert len(builds) > settled_builds

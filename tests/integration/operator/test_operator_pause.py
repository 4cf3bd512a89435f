"""Pause on a real API server: hand changes stick while `actormesh.io/paused` is "true", the status and
Events say so, and removing the annotation restores the spec and says what it changed."""

from __future__ import annotations

from typing import Any

import pytest

from actormesh_operator.builders import names
from actormesh_runtime.catalog import ACTORS_BY_NAME, ActorName
from tests.integration.operator.conftest import OperatorFactory
from tests.integration.operator.kubeapi import (
    apply,
    children,
    condition,
    get,
    matching,
    minimal_mesh,
    try_get,
)
from tests.support.k8s import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]

HAND_IMAGE = "actormesh/actormesh:0.1.0-b"


def _mesh_condition(operators: OperatorFactory, ns: str, mesh: str, kind: str) -> dict[str, Any]:
    live = try_get(operators.kube, ns, "actormesh", mesh) or {}
    return condition(live, kind)


def _events(operators: OperatorFactory, ns: str, mesh: str, reason: str) -> list[str]:
    selector = f"involvedObject.name={mesh},reason={reason}"
    return [e["message"] for e in get(operators.kube, ns, "events", "--field-selector", selector)["items"]]


def test_pause_keeps_hand_changes_and_resume_restores_the_spec(
    operators: OperatorFactory, kube_namespace: str
) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "incident"
    gateway = names.gateway(mesh)
    actor = names.actor(mesh, ACTORS_BY_NAME[ActorName.RESPONSE_GENERATOR])
    operators.start()
    apply(kube, ns, minimal_mesh(mesh))
    wait_for("children match the spec", lambda: matching(kube, ns, mesh) is not None)

    kube.kubectl("annotate", f"actormesh/{mesh}", "actormesh.io/paused=true", "-n", ns)
    wait_for("Paused=True", lambda: _mesh_condition(operators, ns, mesh, "Paused").get("status") == "True")
    reconciling = _mesh_condition(operators, ns, mesh, "Reconciling")
    assert (reconciling["status"], reconciling["reason"]) == ("False", "Paused")
    assert (try_get(kube, ns, "actormesh", mesh) or {})["status"]["phase"] == "Paused"
    wait_for("a Paused Event", lambda: bool(_events(operators, ns, mesh, "Paused")))

    # The guide's incident commands.
    kube.kubectl("scale", f"deployment/{gateway}", "--replicas=3", "-n", ns)
    kube.kubectl("set", "image", f"deployment/{actor}", f"actor={HAND_IMAGE}", "-n", ns)

    def drift_reported() -> bool:
        message = _mesh_condition(operators, ns, mesh, "Paused").get("message", "")
        return f"deployment {gateway} (drifted at" in message and f"deployment {actor} (drifted at" in message

    # The operator saw both changes (it reports them) and did not revert them.
    wait_for("the Paused condition lists the hand changes", drift_reported)
    live = children(kube, ns, mesh)
    assert live["Deployment", gateway]["spec"]["replicas"] == 3
    assert live["Deployment", actor]["spec"]["template"]["spec"]["containers"][0]["image"] == HAND_IMAGE

    kube.kubectl("annotate", f"actormesh/{mesh}", "actormesh.io/paused-", "-n", ns)
    wait_for("Paused=False", lambda: _mesh_condition(operators, ns, mesh, "Paused").get("status") == "False")

    def restored() -> bool:
        live = children(kube, ns, mesh)
        image = live["Deployment", actor]["spec"]["template"]["spec"]["containers"][0]["image"]
        return live["Deployment", gateway]["spec"]["replicas"] == 1 and image != HAND_IMAGE

    wait_for("the spec restored", restored)
    try:
        wait_for("a Resumed Event", lambda: bool(_events(operators, ns, mesh, "Resumed")))
    except BaseException:
        items = get(kube, ns, "events", "--field-selector", f"involvedObject.name={mesh}")["items"]
        print("EVENTS", [(e["reason"], e["message"][:200]) for e in items])
        raise
    (message,) = _events(operators, ns, mesh, "Resumed")
    assert f"deployment {gateway} (drifted at .spec.replicas)" in message
    assert f"deployment {actor} (drifted at" in message

"""Pause on a real API server: hand changes stick and spec changes wait while `actormesh.io/paused` is
"true", the status and Events say so (without flipping), and removing the annotation restores the spec
and says what it changed."""

from __future__ import annotations

import json
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
    merge_patch,
    minimal_mesh,
    try_get,
)
from tests.support.eventually import eventually

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
    # The resync is an hour away, as in production it is minutes: a rollout counter's event then gets
    # the status refresh it gets in a cluster (a resync would run a full pass in its place).
    operators.start(resync_interval_s=3600.0, resync_jitter_s=0.0)
    apply(kube, ns, minimal_mesh(mesh, gateway={"service": {"type": "LoadBalancer"}}))
    eventually(lambda: matching(kube, ns, mesh) is not None, what="children match the spec", timeout_s=60)

    kube.kubectl("annotate", f"actormesh/{mesh}", "actormesh.io/paused=true", "-n", ns)
    eventually(
        lambda: _mesh_condition(operators, ns, mesh, "Paused").get("status") == "True",
        what="Paused=True",
        timeout_s=60,
    )
    reconciling = _mesh_condition(operators, ns, mesh, "Reconciling")
    assert (reconciling["status"], reconciling["reason"]) == ("False", "Paused")
    assert (try_get(kube, ns, "actormesh", mesh) or {})["status"]["phase"] == "Paused"
    eventually(lambda: bool(_events(operators, ns, mesh, "Paused")), what="a Paused Event", timeout_s=60)
    paused_since = _mesh_condition(operators, ns, mesh, "Paused")["lastTransitionTime"]

    # The guide's incident commands.
    kube.kubectl("scale", f"deployment/{gateway}", "--replicas=3", "-n", ns)
    kube.kubectl("set", "image", f"deployment/{actor}", f"actor={HAND_IMAGE}", "-n", ns)

    def drift_reported() -> bool:
        message = _mesh_condition(operators, ns, mesh, "Paused").get("message", "")
        return f"deployment {gateway} (drifted at" in message and f"deployment {actor} (drifted at" in message

    # The operator saw both changes (it reports them) and did not revert them.
    eventually(drift_reported, what="the Paused condition lists the hand changes", timeout_s=60)
    live = children(kube, ns, mesh)
    assert live["Deployment", gateway]["spec"]["replicas"] == 3
    assert live["Deployment", actor]["spec"]["template"]["spec"]["containers"][0]["image"] == HAND_IMAGE

    # A spec change waits too: reported as pending, not applied.
    sentiment = names.actor(mesh, ACTORS_BY_NAME[ActorName.SENTIMENT_ANALYZER])
    generation = live["Deployment", sentiment]["metadata"]["generation"]
    merge_patch(
        kube, ns, f"actormesh/{mesh}", {"spec": {"actors": {"sentimentAnalyzer": {"concurrency": 3}}}}
    )

    def spec_change_pending() -> bool:
        message = _mesh_condition(operators, ns, mesh, "Paused").get("message", "")
        return f"deployment {sentiment} (desired state changed)" in message

    eventually(spec_change_pending, what="the Paused condition lists the spec change", timeout_s=60)
    assert children(kube, ns, mesh)["Deployment", sentiment]["metadata"]["generation"] == generation

    # A status-only change of a child (a load balancer's address; nothing else writes it here) while
    # paused: the status takes it in and still says Paused, without a flip (which would move the
    # condition's lastTransitionTime).
    status = {"status": {"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}}}
    kube.kubectl("patch", f"service/{gateway}", "-n", ns, "--subresource=status", "--type=merge",
                 "-p", json.dumps(status))  # fmt: skip

    def endpoint() -> str | None:
        found: str | None = ((try_get(kube, ns, "actormesh", mesh) or {}).get("status") or {}).get(
            "gatewayEndpoint"
        )
        return found

    eventually(lambda: endpoint() == "http://lb.example", what="the load balancer's address", timeout_s=60)
    paused = _mesh_condition(operators, ns, mesh, "Paused")
    assert (paused["status"], paused["lastTransitionTime"]) == ("True", paused_since)
    assert _mesh_condition(operators, ns, mesh, "Reconciling")["status"] == "False"
    # The printer column.
    assert "Paused" in kube.kubectl("get", "actormesh", mesh, "-n", ns).stdout

    kube.kubectl("annotate", f"actormesh/{mesh}", "actormesh.io/paused-", "-n", ns)
    eventually(
        lambda: _mesh_condition(operators, ns, mesh, "Paused").get("status") == "False",
        what="Paused=False",
        timeout_s=60,
    )

    def restored() -> bool:
        live = children(kube, ns, mesh)
        image = live["Deployment", actor]["spec"]["template"]["spec"]["containers"][0]["image"]
        env = {
            e["name"]: e.get("value")
            for e in live["Deployment", sentiment]["spec"]["template"]["spec"]["containers"][0].get("env", [])
        }
        return bool(
            live["Deployment", gateway]["spec"]["replicas"] == 1
            and image != HAND_IMAGE
            and env.get("ACTOR_CONCURRENCY") == "3"
        )

    eventually(restored, what="the spec restored", timeout_s=60)
    eventually(lambda: bool(_events(operators, ns, mesh, "Resumed")), what="a Resumed Event", timeout_s=60)
    (message,) = _events(operators, ns, mesh, "Resumed")
    assert f"deployment {gateway} (drifted at .spec.replicas)" in message
    assert f"deployment {actor} (drifted at" in message
    assert f"deployment {sentiment} (desired state changed)" in message


def _reasons_about(operators: OperatorFactory, ns: str, uid: str) -> list[str]:
    """The reasons of the Events about this very mesh (by UID: a recreated mesh is another object)."""
    items = get(operators.kube, ns, "events", "--field-selector", f"involvedObject.uid={uid}")["items"]
    return [e["reason"] for e in items]


def test_a_mesh_recreated_under_a_deleted_paused_name_was_never_paused(
    operators: OperatorFactory, kube_namespace: str
) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "reborn"
    operators.start()
    paused = minimal_mesh(mesh)
    paused["metadata"]["annotations"] = {"actormesh.io/paused": "true"}
    apply(kube, ns, paused)
    eventually(
        lambda: _mesh_condition(operators, ns, mesh, "Paused").get("status") == "True",
        what="the first mesh paused",
        timeout_s=60,
    )
    kube.kubectl("delete", "actormesh", mesh, "-n", ns)  # waits until it is gone

    apply(kube, ns, minimal_mesh(mesh))
    uid = get(kube, ns, "actormesh", mesh)["metadata"]["uid"]
    eventually(lambda: matching(kube, ns, mesh) is not None, what="the new mesh reconciled", timeout_s=60)
    # Its first pass created every child: that is an Applied Event, not a Resumed one.
    eventually(
        lambda: _reasons_about(operators, ns, uid) == ["Applied"],
        what="the new mesh's Applied Event (and no Resumed)",
        timeout_s=60,
    )

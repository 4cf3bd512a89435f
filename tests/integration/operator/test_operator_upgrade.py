"""Upgrading the operator over running meshes: children made by an older operator are adopted in place.

The old children are fixture files (`fixtures/`), each stored once from an older operator's run against
the test control plane (how: in each file's header), so CI never runs old code. docs/operator.md,
"Upgrading the operator", has what an upgrade does to running meshes, measured.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.operator.conftest import ROOT, OperatorFactory
from tests.integration.operator.kubeapi import (
    FIELD_MANAGER,
    apply,
    children,
    condition,
    get,
    load_sample,
    matching,
)
from tests.support.eventually import eventually
from tests.support.k8s import KubeControlPlane, create_namespace

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]

FIXTURES = Path(__file__).resolve().parent / "fixtures"
UPGRADE_NAMESPACE = "upgrade-from-d149a71"


def _owned_by(doc: dict[str, Any], mesh: dict[str, Any]) -> dict[str, Any]:
    """A fixture child owned by this test's mesh (the fixtures' owner uid is a placeholder)."""
    for ref in doc["metadata"].get("ownerReferences") or []:
        ref["uid"] = mesh["metadata"]["uid"]
    return doc


def test_an_upgrade_that_rolls_a_deployment_adopts_it_and_reports_rolling_out(
    operators: OperatorFactory, kube_namespace: str
) -> None:
    """The gateway Deployment of an operator from 2026-12-05 (b15c668: no NATS user, no JWT keys) is
    taken over in place (same uid) and its pods roll. With maxSurge 1 the Deployment then holds the
    surged new pod beside the old one (`replicas` 2, `updatedReplicas` 1) until the new one is ready;
    there is no kubelet, so that state stays. The mesh must say "rolling out", as `kubectl rollout
    status` would: it said "scaling", which is what the status showed for every workload an upgrade
    rolled. The status is cleared and recomputed by a second operator started after the Deployment's
    counters settled, so what is read was computed from exactly that state."""
    kube, ns = operators.kube, kube_namespace
    sample = load_sample(ROOT / "config" / "samples" / "minimal.yaml")
    apply(kube, ns, sample)
    mesh = get(kube, ns, "actormesh", "demo")
    old_gateway = _owned_by(yaml.safe_load((FIXTURES / "b15c668-demo-gateway.yaml").read_text()), mesh)
    kube.kubectl(
        "apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-n", ns, "-f", "-",
        input=json.dumps(old_gateway),
    )  # fmt: skip
    old = get(kube, ns, "deployment", "demo-gateway")

    first = operators.start()
    eventually(lambda: matching(kube, ns, "demo"), what="the mesh reconciled by the new operator")

    def surged() -> dict[str, Any] | None:
        live = get(kube, ns, "deployment", "demo-gateway")
        status = live.get("status") or {}
        settled = status.get("observedGeneration") == live["metadata"]["generation"] > 1
        return (
            live if settled and status.get("replicas") == 2 and status.get("updatedReplicas") == 1 else None
        )

    rolled = eventually(surged, what="the gateway's new pod surged beside the old one", timeout_s=120)
    assert rolled["metadata"]["uid"] == old["metadata"]["uid"], "recreated, not adopted"
    assert rolled["spec"]["template"] != old["spec"]["template"]

    first.stop()
    kube.kubectl(
        "patch", "actormesh", "demo", "-n", ns, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": None}),
    )  # fmt: skip
    operators.start()
    mesh = eventually(
        lambda: (m := get(kube, ns, "actormesh", "demo")) and condition(m, "Reconciling") and m,
        what="the status written again",
    )
    reconciling = condition(mesh, "Reconciling")
    assert reconciling["reason"] == "RollingOut", reconciling
    assert "rolling out: gateway 0/1" in reconciling["message"], reconciling
    assert get(kube, ns, "deployment", "demo-gateway")["metadata"]["uid"] == old["metadata"]["uid"]


WORKLOADS = ("Deployment", "StatefulSet")


@pytest.fixture
def fixture_namespace(crd: KubeControlPlane) -> Iterator[OperatorFactory]:
    """The namespace the d149a71 fixture was made in: the runtime ConfigMap (so every workload's config
    hash) and the history pod's NATS monitor URLs name it. Only one test uses it, and the k8s tests of a
    session share one worker and one control plane, so the fixed name is never used twice at once."""
    eventually(
        lambda: crd.kubectl("get", "namespace", UPGRADE_NAMESPACE, check=False).returncode != 0,
        what=f"namespace {UPGRADE_NAMESPACE} of an earlier run gone",
        timeout_s=120,
    )
    create_namespace(crd, UPGRADE_NAMESPACE)
    factory = OperatorFactory(crd, UPGRADE_NAMESPACE)
    try:
        yield factory
    finally:
        factory.stop_all()
        crd.kubectl("delete", "namespace", UPGRADE_NAMESPACE, "--wait=false", check=False)


def test_an_upgrade_from_a_day_ago_restarts_only_the_nats_servers(
    fixture_namespace: OperatorFactory,
) -> None:
    """The children an operator of a day ago (d149a71) made for the minimal sample, with its field
    ownership, are adopted in place: nothing is deleted or recreated, and no pod template changes but
    the NATS StatefulSet's config hash (nats.conf gained the history user's stored-answers subject since
    then; docs/operator.md, "Upgrading the operator"). A pod template the new builders render
    differently — a field added to every pod, a default spelled out, a label — fails this test: such a
    change restarts every pod of every mesh on upgrade, so it must be left out when unset or be
    release-noted (and this test's expectation changed with it)."""
    operators = fixture_namespace
    kube, ns = operators.kube, operators.namespace
    old_mesh, *old_objects = yaml.safe_load_all((FIXTURES / "d149a71-demo-children.yaml").read_text())
    apply(kube, ns, old_mesh)
    mesh = get(kube, ns, "actormesh", "demo")
    old_children = [_owned_by(doc, mesh) for doc in old_objects]
    kube.kubectl(
        "create", "-n", ns, "-f", "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": old_children}),
    )  # fmt: skip
    before = children(kube, ns, "demo")
    assert set(before) == {(d["kind"], d["metadata"]["name"]) for d in old_children if d["kind"] != "Secret"}
    assert all(
        any(
            m["manager"] == FIELD_MANAGER and m["operation"] == "Apply"
            for m in o["metadata"]["managedFields"]
        )
        for (kind, _), o in before.items()
        if kind in WORKLOADS
    ), "the old operator's field ownership was not kept"

    operators.start()
    eventually(lambda: matching(kube, ns, "demo"), what="the mesh reconciled by the new operator")
    after = children(kube, ns, "demo")
    assert set(after) == set(before)
    recreated = [key for key in before if after[key]["metadata"]["uid"] != before[key]["metadata"]["uid"]]
    assert recreated == []
    templates_changed = {
        key[1]: _template_diff(before[key], after[key])
        for key in before
        if key[0] in WORKLOADS and before[key]["spec"]["template"] != after[key]["spec"]["template"]
    }
    assert templates_changed == {"demo-nats": ["metadata.annotations.actormesh.io/config-hash"]}


def _template_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The dotted paths (leaves of dicts) where two workloads' pod templates differ."""

    def leaves(value: Any, path: str) -> dict[str, Any]:
        if isinstance(value, dict) and value:
            return {k: v for key, sub in value.items() for k, v in leaves(sub, f"{path}.{key}").items()}
        return {path: value}

    a, b = leaves(old["spec"]["template"], ""), leaves(new["spec"]["template"], "")
    return sorted(path.lstrip(".") for path in set(a) | set(b) if a.get(path) != b.get(path))

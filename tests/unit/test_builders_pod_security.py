"""pod_security.py: every pod is "restricted" and carries the spec's scheduling and pull secrets."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.builder_helpers import RICH_SPEC, children, index, pod_templates

SPECS = {
    "minimal": {},
    "rich": RICH_SPEC,
}


def _templates(spec_id: str) -> list[tuple[str, dict[str, Any]]]:
    return pod_templates(children(SPECS[spec_id], keda=True))


@pytest.mark.parametrize("spec_id", list(SPECS))
def test_every_pod_is_restricted(spec_id: str) -> None:
    templates = _templates(spec_id)
    assert len(templates) >= 13
    for name, template in templates:
        pod = template["spec"]
        ctx = pod["securityContext"]
        assert ctx["runAsNonRoot"] is True, name
        assert isinstance(ctx["runAsUser"], int), name
        assert ctx["runAsUser"] > 0, name
        assert isinstance(ctx["fsGroup"], int), name
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["serviceAccountName"] == "demo-runtime", name
        assert "hostNetwork" not in pod, name
        assert "hostPID" not in pod, name
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert "privileged" not in sc, name


@pytest.mark.parametrize("spec_id", list(SPECS))
def test_every_mount_has_a_volume_and_runtime_pods_get_a_writable_tmp(spec_id: str) -> None:
    for name, template in _templates(spec_id):
        pod = template["spec"]
        volumes = {v["name"] for v in pod["volumes"]}
        claims = set()  # claim templates are volumes too, declared on the StatefulSet
        for c in pod["containers"]:
            mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
            claims |= set(mounts) - volumes
            if c["image"].startswith("ghcr.io/example/actormesh"):
                assert mounts.get("tmp") == "/tmp", name
        assert claims <= {"jetstream", "data"}, name


def test_scheduling_and_pull_secrets_reach_every_pod() -> None:
    for name, template in _templates("rich"):
        pod = template["spec"]
        assert pod["nodeSelector"] == {"pool": "support"}, name
        assert pod["tolerations"] == [
            {"key": "dedicated", "operator": "Equal", "value": "support", "effect": "NoSchedule"}
        ], name
        assert pod["imagePullSecrets"] == [{"name": "regcred"}], name
        assert template["metadata"]["annotations"]["example.com/owner"] == "cx-team", name


def test_minimal_spec_sets_no_scheduling() -> None:
    for name, template in _templates("minimal"):
        for key in ("nodeSelector", "tolerations", "affinity", "imagePullSecrets", "priorityClassName"):
            assert key not in template["spec"], f"{name}: {key}"


def test_affinity_and_priority_class_pass_through() -> None:
    affinity: dict[str, Any] = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}
    spec = {"scheduling": {"affinity": affinity, "priorityClassName": "support-high"}}
    gw = index(children(spec))[("Deployment", "demo-gateway")]["spec"]["template"]["spec"]
    assert gw["affinity"] == affinity
    assert gw["priorityClassName"] == "support-high"


def test_runtime_image_pull_policy_comes_from_the_spec() -> None:
    objs = index(children({"imagePullPolicy": "Always"}))
    assert (
        objs[("Deployment", "demo-gateway")]["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"]
        == "Always"
    )
    nats_pod = objs[("StatefulSet", "demo-nats")]["spec"]["template"]["spec"]
    assert nats_pod["containers"][0]["imagePullPolicy"] == "IfNotPresent"

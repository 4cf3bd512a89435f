"""The install manifests grant exactly what reconcile/permissions.py declares, and the operator
Deployment is what the issue asks for (1 replica, Recreate, kopf liveness probe, non-root, RO rootfs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from actormesh_operator.builders.kinds import MANAGED_KINDS
from actormesh_operator.reconcile.permissions import CHILD_VERBS, PERMISSIONS, granted

CONFIG = Path(__file__).resolve().parents[2] / "config"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _rules_granted(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    triples = set()
    for rule in role["rules"]:
        assert "*" not in rule.get("verbs", []), rule
        assert "*" not in rule.get("resources", []), rule
        assert not rule.get("resourceNames"), "unexpected resourceNames"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    triples.add((group, resource, verb))
    return triples


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        pytest.param(CONFIG / "rbac" / "role.yaml", "ClusterRole", id="cluster-wide"),
        pytest.param(CONFIG / "namespaced" / "role.yaml", "Role", id="namespaced"),
    ],
)
def test_role_grants_exactly_the_declared_permissions(path: Path, kind: str) -> None:
    (role,) = _docs(path)
    assert role["kind"] == kind
    have, want = _rules_granted(role), granted()
    assert not want - have, f"missing in {path.name}: {sorted(want - have)}"
    assert not have - want, f"not used by the code, remove from {path.name}: {sorted(have - want)}"


def test_every_child_kind_is_declared() -> None:
    declared = granted()
    for kind in MANAGED_KINDS:
        for verb in CHILD_VERBS:
            assert (kind.group, kind.plural, verb) in declared, (kind.kind, verb)


def test_status_and_finalizers_subresources_and_secrets_never_listed_or_deleted() -> None:
    declared = granted()
    assert ("actormesh.io", "actormeshes/status", "patch") in declared
    # The mesh itself is only read: its status is the one thing the operator writes there.
    assert {v for g, r, v in declared if r == "actormeshes"} == {"get", "list", "watch"}
    assert ("actormesh.io", "actormeshes/finalizers", "update") in declared
    # get + watch (per-name watches of user Secrets, one label-selected watch of the generated ones);
    # create + patch (generated Secrets, created once, only missing keys added); never list, never
    # update or delete (a value is never overwritten).
    assert {v for g, r, v in declared if r == "secrets"} == {"get", "watch", "create", "patch"}
    assert not any(r == "customresourcedefinitions" for _, r, _ in declared)
    assert not any(
        v in {"update", "escalate", "bind", "impersonate"} and r != "actormeshes/finalizers"
        for _, r, v in declared
    )
    assert all(p.why for p in PERMISSIONS)


def test_bindings_point_at_the_roles_and_the_service_account() -> None:
    (crb,) = _docs(CONFIG / "rbac" / "role_binding.yaml")
    assert crb["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "actormesh-operator",
    }
    assert crb["subjects"] == [
        {"kind": "ServiceAccount", "name": "actormesh-operator", "namespace": "actormesh-system"}
    ]
    (rb,) = _docs(CONFIG / "namespaced" / "role_binding.yaml")
    assert rb["roleRef"]["kind"] == "Role"
    assert rb["subjects"][0]["name"] == "actormesh-operator"


def _operator_deployment() -> dict[str, Any]:
    (deployment,) = _docs(CONFIG / "manager" / "manager.yaml")
    return deployment


def test_operator_deployment_shape() -> None:
    deployment = _operator_deployment()
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "actormesh-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["image"] == "actormesh-operator:latest"
    assert container["command"] == ["actormesh-operator"]
    security = container["securityContext"]
    assert security == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"] == probe
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports[probe["port"]] == int(env["ACTORMESH_OPERATOR_HEALTH_PORT"])
    assert ports["metrics"] == int(env["ACTORMESH_OPERATOR_METRICS_PORT"])
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]


def test_kustomizations_tie_the_pieces_together() -> None:
    default = _docs(CONFIG / "default" / "kustomization.yaml")[0]
    assert default["namespace"] == "actormesh-system"
    assert {"../crd", "../rbac", "../manager"} <= set(default["resources"])
    namespaced = _docs(CONFIG / "namespaced" / "kustomization.yaml")[0]
    assert "../manager" in namespaced["resources"]
    assert "role.yaml" in namespaced["resources"]
    assert "ACTORMESH_OPERATOR_NAMESPACE" in namespaced["patches"][0]["patch"]
    for directory in ("rbac", "manager", "default", "namespaced"):
        kustomization = _docs(CONFIG / directory / "kustomization.yaml")[0]
        for resource in kustomization["resources"]:
            assert (CONFIG / directory / resource).exists(), f"{directory}: {resource}"
            # kustomize only loads files inside the kustomization's directory (directories may be anywhere)
            target = (CONFIG / directory / resource).resolve()
            assert target.is_dir() or target.parent == (CONFIG / directory).resolve(), resource


INSTALL_FILES = sorted(
    p
    for directory in ("rbac", "manager", "namespaced", "default")
    for p in (CONFIG / directory).glob("*.yaml")
    if p.name != "kustomization.yaml"
)


@pytest.mark.parametrize("path", INSTALL_FILES, ids=[f"{p.parent.name}/{p.name}" for p in INSTALL_FILES])
def test_install_manifests_validate_against_kubernetes_1_34(path: Path) -> None:
    for doc in _docs(path):
        try:
            kubernetes_validate.validate(doc, "1.34.0", strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{path.name}: {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}"
            )

"""Small synchronous helpers over kubectl for the operator's integration tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import build_children, referenced_secrets
from actormesh_operator.builders.kinds import MANAGED_KINDS
from actormesh_operator.builders.labels import mesh_selector
from actormesh_operator.builders.secret_hash import SECRET_HASH_ANNOTATION
from actormesh_operator.settings import OperatorSettings
from tests.support.k8s import KubeControlPlane

FIELD_MANAGER = OperatorSettings().field_manager
CHILD_KINDS = ",".join(
    f"{k.plural}.{k.group}" if k.group else k.plural for k in MANAGED_KINDS if not k.optional
)

ChildId = tuple[str, str]
"""(kind, name)"""


def get(kube: KubeControlPlane, namespace: str, *what: str) -> dict[str, Any]:
    return dict(json.loads(kube.kubectl("get", *what, "-n", namespace, "-o", "json").stdout))


def try_get(kube: KubeControlPlane, namespace: str, *what: str) -> dict[str, Any] | None:
    result = kube.kubectl("get", *what, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        if "NotFound" in result.stderr:
            return None
        raise AssertionError(result.stderr)
    return dict(json.loads(result.stdout))


def apply(kube: KubeControlPlane, namespace: str, body: dict[str, Any]) -> None:
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))


def merge_patch(kube: KubeControlPlane, namespace: str, what: str, patch: dict[str, Any]) -> None:
    kube.kubectl("patch", what, "-n", namespace, "--type=merge", "-p", json.dumps(patch))


def load_sample(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text()))


def minimal_mesh(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "actormesh.io/v1alpha1",
        "kind": "ActorMesh",
        "metadata": {"name": name},
        "spec": {"image": "actormesh/actormesh:0.1.0", **spec},
    }


def children(kube: KubeControlPlane, namespace: str, mesh: str) -> dict[ChildId, dict[str, Any]]:
    """Every live child of a mesh (label-selected, as the operator sees them)."""
    selector = ",".join(f"{k}={v}" for k, v in mesh_selector(mesh).items())
    items = get(kube, namespace, CHILD_KINDS, "-l", selector, "--show-managed-fields")["items"]
    return {(o["kind"], o["metadata"]["name"]): o for o in items}


def expected_children(live_mesh: dict[str, Any]) -> set[ChildId]:
    mesh = ActorMesh.from_body(live_mesh)
    return {
        (c["kind"], c["metadata"]["name"])
        for c in build_children(mesh, OperatorSettings(), keda_available=False)
    }


def create_referenced_secrets(kube: KubeControlPlane, namespace: str, body: dict[str, Any]) -> None:
    mesh = ActorMesh.from_body({**body, "metadata": {**body["metadata"], "namespace": namespace}})
    for ref in referenced_secrets(mesh):
        kube.kubectl(
            "create",
            "secret",
            "generic",
            ref.name,
            f"--from-literal={ref.key}=test-value",
            "-n",
            namespace,
            check=False,  # two references may share one Secret
        )


def condition(mesh: dict[str, Any], kind: str) -> dict[str, Any]:
    for entry in (mesh.get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            return dict(entry)
    return {}


def resource_versions(kube: KubeControlPlane, namespace: str, mesh: str) -> dict[ChildId, str]:
    return {key: obj["metadata"]["resourceVersion"] for key, obj in children(kube, namespace, mesh).items()}


def generations(kube: KubeControlPlane, namespace: str, mesh: str, kind: str) -> dict[str, int]:
    return {
        name: int(obj["metadata"]["generation"])
        for (k, name), obj in children(kube, namespace, mesh).items()
        if k == kind
    }


def template_annotations(obj: dict[str, Any]) -> dict[str, str]:
    """The pod template's annotations of a workload ({} for a child without a template)."""
    template = (obj.get("spec") or {}).get("template") or {}
    return dict((template.get("metadata") or {}).get("annotations") or {})


def secret_hashes(kube: KubeControlPlane, namespace: str, mesh: str) -> dict[str, str | None]:
    """Each workload's `actormesh.io/secret-hash` (None: it reads no Secret), by name."""
    return {
        name: template_annotations(obj).get(SECRET_HASH_ANNOTATION)
        for (kind, name), obj in children(kube, namespace, mesh).items()
        if kind in {"Deployment", "StatefulSet"}
    }


def reconciled(kube: KubeControlPlane, namespace: str, mesh: str) -> dict[str, Any] | None:
    """The mesh once the operator processed its current generation (else None)."""
    body = try_get(kube, namespace, "actormesh", mesh)
    if body is None:
        return None
    status = body.get("status") or {}
    if status.get("observedGeneration") != body["metadata"]["generation"]:
        return None
    return body


def matching(kube: KubeControlPlane, namespace: str, mesh: str) -> dict[str, Any] | None:
    """The mesh once its current generation is processed and exactly the expected children exist."""
    body = reconciled(kube, namespace, mesh)
    if body is None or set(children(kube, namespace, mesh)) != expected_children(body):
        return None
    return body


def stalled(kube: KubeControlPlane, namespace: str, mesh: str) -> dict[str, Any] | None:
    """The mesh while its Stalled condition is True (else None)."""
    live = try_get(kube, namespace, "actormesh", mesh)
    return live if live and condition(live, "Stalled").get("status") == "True" else None

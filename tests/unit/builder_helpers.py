"""Helpers shared by the builder unit tests: build a mesh from a spec dict, render and index children."""

from __future__ import annotations

from typing import Any

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import build_children
from actormesh_operator.settings import OperatorSettings

IMAGE = "ghcr.io/example/actormesh:0.1.0"
SETTINGS = OperatorSettings()


def make_mesh(
    spec: dict[str, Any] | None = None, *, name: str = "demo", namespace: str = "shop"
) -> ActorMesh:
    body = {
        "metadata": {"name": name, "namespace": namespace, "uid": "0000-uid", "labels": {"team": "support"}},
        "spec": {"image": IMAGE, **(spec or {})},
    }
    return ActorMesh.from_body(body)


def children(spec: dict[str, Any] | None = None, *, keda: bool = False, **kw: Any) -> list[dict[str, Any]]:
    return build_children(make_mesh(spec, **kw), SETTINGS, keda_available=keda)


def index(objs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


def kinds_names(objs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return set(index(objs))


def pod_templates(objs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (o["metadata"]["name"], o["spec"]["template"])
        for o in objs
        if o["kind"] in {"Deployment", "StatefulSet"}
    ]


def container(obj: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(obj: dict[str, Any]) -> dict[str, Any]:
    """name → value or valueFrom of the container's explicit env."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(obj).get("env", [])}


RICH_SPEC: dict[str, Any] = {
    "llm": {
        "model": "gpt-4o-mini",
        "apiBase": "https://llm.example.com/v1",
        "apiKeySecretRef": {"name": "llm", "key": "api-key"},
    },
    "gateway": {
        "replicas": 2,
        "authSecretRef": {"name": "jwt", "key": "secret"},
        "corsOrigins": ["https://shop.example.com"],
        "ingress": {
            "enabled": True,
            "host": "support.example.com",
            "className": "nginx",
            "tlsSecretName": "support-tls",
        },
    },
    "nats": {"replicas": 3, "storage": {"size": "20Gi", "storageClassName": "fast"}},
    "actors": {
        "defaults": {"replicas": 2},
        "intentAnalyzer": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 8}},
        "responseGenerator": {"autoscaling": {"enabled": True, "mode": "queueLag", "maxReplicas": 10}},
    },
    "scheduling": {
        "nodeSelector": {"pool": "support"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "support", "effect": "NoSchedule"}
        ],
    },
    "imagePullSecrets": [{"name": "regcred"}],
    "persistence": {"reclaimPolicy": "Delete"},
    "extraLabels": {"cost-center": "cx"},
    "extraAnnotations": {"example.com/owner": "cx-team"},
}

"""The gateway: Deployment running `actormesh gateway`, its Service, and the optional Ingress.

Called by `build_children`. Each gateway replica receives only its own replies (per-instance reply
subject), so the Deployment scales freely; with autoscaling on, `replicas` is left to the HPA.
"""

from __future__ import annotations

import math
from typing import Any

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import labels, names
from actormesh_operator.builders.meta import Manifest, manifest, object_meta
from actormesh_operator.builders.runtime_config import GATEWAY_KEYS, hash_for
from actormesh_operator.builders.workload import (
    GATEWAY_PRESTOP_SLEEP_S,
    GATEWAY_TERMINATION_GRACE_S,
    deployment,
    http_probe,
    redis_password_env,
    runtime_container,
    runtime_pod,
    secret_env,
    with_user_env,
)
from actormesh_operator.settings import OperatorSettings
from actormesh_runtime.catalog import Env, Ports


def gateway_env(mesh: ActorMesh) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    if mesh.spec.gateway.auth_secret_ref is not None:
        env.append(secret_env(Env.JWT_SECRET, mesh.spec.gateway.auth_secret_ref))
    return with_user_env(env + redis_password_env(mesh), mesh.spec.gateway.env)


def gateway_termination_grace_s(mesh: ActorMesh) -> int:
    """Room for the preStop sleep, then the runtime's graceful shutdown (request timeout + 5 s, so a chat
    waiting during a rollout still gets its reply), then closing NATS: 45 s at the default 30 s timeout."""
    timeout = math.ceil(mesh.spec.runtime.request_timeout_seconds)
    return max(GATEWAY_TERMINATION_GRACE_S, GATEWAY_PRESTOP_SLEEP_S + timeout + 10)


def build_gateway_deployment(mesh: ActorMesh, settings: OperatorSettings) -> Manifest:
    gw = mesh.spec.gateway
    container = runtime_container(
        mesh,
        "gateway",
        ["gateway"],
        ports=[{"name": "http", "containerPort": Ports.GATEWAY}],
        resources=gw.resources.to_k8s(),
        env=gateway_env(mesh),
        startupProbe=http_probe("/api/health", "http", period=2, failures=30),
        readinessProbe=http_probe("/api/ready", "http", period=5),
        livenessProbe=http_probe("/api/health", "http", period=15),
        # The kubelet's own sleep (no shell or `sleep` binary needed in the image).
        lifecycle={"preStop": {"sleep": {"seconds": GATEWAY_PRESTOP_SLEEP_S}}},
    )
    return deployment(
        mesh,
        names.gateway(mesh.name),
        labels.GATEWAY,
        runtime_pod(mesh, container, termination_grace_seconds=gateway_termination_grace_s(mesh)),
        replicas=None if gw.autoscaling.enabled else gw.replicas,
        config_hash=hash_for(mesh, settings, GATEWAY_KEYS),
    )


def build_gateway_service(mesh: ActorMesh) -> Manifest:
    svc = mesh.spec.gateway.service
    return manifest(
        "v1",
        "Service",
        object_meta(mesh, names.gateway(mesh.name), labels.GATEWAY),
        spec={
            "type": svc.type,
            "selector": labels.selector_labels(mesh.name, labels.GATEWAY),
            "ports": [{"name": "http", "port": svc.port, "targetPort": "http", "appProtocol": "http"}],
        },
    )


def build_gateway_ingress(mesh: ActorMesh) -> Manifest | None:
    """The Ingress when `spec.gateway.ingress.enabled`, else None (an existing one is pruned)."""
    ing = mesh.spec.gateway.ingress
    if not ing.enabled or ing.host is None:
        return None
    backend = {"service": {"name": names.gateway(mesh.name), "port": {"name": "http"}}}
    spec: dict[str, Any] = {
        "rules": [
            {"host": ing.host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
        ],
    }
    if ing.class_name is not None:
        spec["ingressClassName"] = ing.class_name
    if ing.tls_secret_name is not None:
        spec["tls"] = [{"hosts": [ing.host], "secretName": ing.tls_secret_name}]
    meta = object_meta(mesh, names.gateway(mesh.name), labels.GATEWAY, annotations=dict(ing.annotations))
    return manifest("networking.k8s.io/v1", "Ingress", meta, spec=spec)

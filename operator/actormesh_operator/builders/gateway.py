"""The gateway: Deployment running `actormesh gateway`, its Service, the optional Ingress and HTTPRoute.

Called by `build_children`. Each gateway replica receives only its own replies (per-instance reply
subject), so the Deployment scales freely; with autoscaling on, `replicas` is left to the HPA.
"""

from __future__ import annotations

import math
from typing import Any

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import labels, names
from actormesh_operator.builders.generated import gateway_key_ref
from actormesh_operator.builders.kinds import HTTP_ROUTE
from actormesh_operator.builders.meta import Manifest, manifest, object_meta
from actormesh_operator.builders.runtime_config import GATEWAY_KEYS, hash_for
from actormesh_operator.builders.workload import (
    GATEWAY_PRESTOP_SLEEP_S,
    GATEWAY_TERMINATION_GRACE_S,
    deployment,
    http_probe,
    nats_ca_volume,
    nats_credentials_env,
    redis_password_env,
    runtime_container,
    runtime_pod,
    secret_env,
    tracing_headers_env,
    with_user_env,
)
from actormesh_operator.settings import OperatorSettings
from actormesh_runtime.catalog import GATEWAY_USER, Env, Ports

PREVIOUS_KEY_DEFAULT = "jwt-previous-secret"
"""Key of the rotated-out signing key in the signing key's Secret when `spec.gateway.auth.previousKey` is
unset; optional, so the gateway verifies with two keys exactly while the Secret holds both."""


def auth_env(mesh: ActorMesh) -> list[dict[str, Any]]:
    """The gateway's token settings: the signing key (the user's or the generated one) and the optional
    previous key, issuer and audience; or explicit anonymous mode."""
    gw = mesh.spec.gateway
    key = gateway_key_ref(mesh)
    if key is None:
        return [{"name": Env.GATEWAY_ANONYMOUS, "value": "true"}]
    previous = {"name": key.name, "key": gw.auth.previous_key or PREVIOUS_KEY_DEFAULT, "optional": True}
    env = [
        secret_env(Env.JWT_SECRET, key),
        {"name": Env.JWT_PREVIOUS_SECRET, "valueFrom": {"secretKeyRef": previous}},
    ]
    if gw.auth.issuer is not None:
        env.append({"name": Env.JWT_ISSUER, "value": gw.auth.issuer})
    if gw.auth.audience is not None:
        env.append({"name": Env.JWT_AUDIENCE, "value": gw.auth.audience})
    return env


def gateway_env(mesh: ActorMesh) -> list[dict[str, Any]]:
    return with_user_env(
        auth_env(mesh)
        + redis_password_env(mesh)
        + nats_credentials_env(mesh, GATEWAY_USER)
        + tracing_headers_env(mesh),
        mesh.spec.gateway.env,
    )


def gateway_termination_grace_s(mesh: ActorMesh) -> int:
    """Room for the preStop sleep, then the runtime's graceful shutdown (request timeout + 5 s, so a chat
    waiting during a rollout still gets its reply), then closing NATS: 45 s at the default 30 s timeout."""
    timeout = math.ceil(mesh.spec.runtime.request_timeout_seconds)
    return max(GATEWAY_TERMINATION_GRACE_S, GATEWAY_PRESTOP_SLEEP_S + timeout + 10)


def build_gateway_deployment(mesh: ActorMesh, settings: OperatorSettings) -> Manifest:
    gw = mesh.spec.gateway
    ca_volumes, ca_mounts = nats_ca_volume(mesh)
    container = runtime_container(
        mesh,
        "gateway",
        ["gateway"],
        ports=[{"name": "http", "containerPort": Ports.GATEWAY}],
        resources=gw.resources.to_k8s(),
        env=gateway_env(mesh),
        extra_mounts=ca_mounts,
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
        runtime_pod(
            mesh,
            container,
            extra_volumes=ca_volumes,
            termination_grace_seconds=gateway_termination_grace_s(mesh),
        ),
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


INGRESS_PATHS = ("/api", "/ws", "/widget", "/console")
"""What the public may reach: the chat, history and agent API, the WebSockets (`/ws`, `/ws/agent`), the
web widget and the agent console (its API and socket need an agent token). `/metrics`, `/docs` and
`/openapi.json` stay inside the cluster."""


def build_gateway_ingress(mesh: ActorMesh) -> Manifest | None:
    """The Ingress when `spec.gateway.ingress.enabled`, else None (an existing one is pruned)."""
    ing = mesh.spec.gateway.ingress
    if not ing.enabled or ing.host is None:
        return None
    backend = {"service": {"name": names.gateway(mesh.name), "port": {"name": "http"}}}
    paths = [{"path": path, "pathType": "Prefix", "backend": backend} for path in INGRESS_PATHS]
    spec: dict[str, Any] = {"rules": [{"host": ing.host, "http": {"paths": paths}}]}
    if ing.class_name is not None:
        spec["ingressClassName"] = ing.class_name
    if ing.tls_secret_name is not None:
        spec["tls"] = [{"hosts": [ing.host], "secretName": ing.tls_secret_name}]
    meta = object_meta(mesh, names.gateway(mesh.name), labels.GATEWAY, annotations=dict(ing.annotations))
    return manifest("networking.k8s.io/v1", "Ingress", meta, spec=spec)


def _route_rule(mesh: ActorMesh, path: str) -> dict[str, Any]:
    prefix = mesh.spec.gateway.http_route.path_prefix
    backend = {"name": names.gateway(mesh.name), "port": mesh.spec.gateway.service.port}
    rule: dict[str, Any] = {
        "matches": [{"path": {"type": "PathPrefix", "value": f"{prefix or ''}{path}"}}],
        "backendRefs": [backend],
    }
    if prefix:
        rewrite = {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": path}}
        rule["filters"] = [{"type": "URLRewrite", "urlRewrite": rewrite}]
    return rule


def build_gateway_http_route(mesh: ActorMesh, *, served: bool) -> Manifest | None:
    """The HTTPRoute when `spec.gateway.httpRoute.enabled` and the API server serves HTTPRoutes (`served`);
    else None (status.py reports the missing CRDs; an existing route is pruned when switched off).

    One rule per public path (the Ingress's paths), so a path prefix can be stripped per rule."""
    route = mesh.spec.gateway.http_route
    if not route.enabled or not served:
        return None
    parents = [
        {
            "group": HTTP_ROUTE.group,
            "kind": "Gateway",
            "name": ref.name,
            **({"namespace": ref.namespace} if ref.namespace else {}),
            **({"sectionName": ref.section_name} if ref.section_name else {}),
            **({"port": ref.port} if ref.port else {}),
        }
        for ref in route.parent_refs
    ]
    spec: dict[str, Any] = {"parentRefs": parents, "rules": [_route_rule(mesh, p) for p in INGRESS_PATHS]}
    if route.hostnames:
        spec["hostnames"] = list(route.hostnames)
    meta = object_meta(mesh, names.gateway(mesh.name), labels.GATEWAY)
    return manifest(HTTP_ROUTE.api_version, HTTP_ROUTE.kind, meta, spec=spec)

"""Pieces shared by the runtime workloads (actors, gateway, history, mocks): the `actormesh` container,
probes, Secret-backed env vars and the Deployment wrapper.

Called by actors.py, gateway.py, history.py and mocks.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from actormesh_operator.api.runtime import EnvVar
from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.api.types import SecretKeyRef
from actormesh_operator.builders import labels, names, pod_security
from actormesh_operator.builders.generated import (
    external_nats_credentials,
    external_nats_token,
    nats_auth_enabled,
    nats_password_ref,
    redis_password_ref,
)
from actormesh_operator.builders.meta import Manifest, manifest, object_meta, template_meta
from actormesh_operator.builders.runtime_config import env_from_runtime_config
from actormesh_runtime.catalog import Env

RUNTIME_TERMINATION_GRACE_S = 35
"""Above the runtime's SIGTERM drain budget (RuntimeSettings.drain_grace_s = 25 s) plus slack."""
GATEWAY_PRESTOP_SLEEP_S = 5
"""The gateway keeps serving this long after it is marked terminating, while the Service's endpoints
(and Ingress controllers) drop it; SIGTERM first would refuse the requests still routed to it."""
GATEWAY_TERMINATION_GRACE_S = 45
"""Above the preStop sleep plus the gateway's graceful shutdown (RuntimeSettings.request_timeout_s + 5
= 35 s, so a chat waiting for its reply during a rollout still gets it) plus time to close NATS.
tests/unit/test_builders_runtime_contract.py checks both budgets against the runtime's settings."""


def http_probe(
    path: str, port: str, *, period: int = 10, failures: int = 3, delay: int = 0
) -> dict[str, Any]:
    probe: dict[str, Any] = {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }
    if delay:
        probe["initialDelaySeconds"] = delay
    return probe


def secret_env(name: str, ref: SecretKeyRef) -> dict[str, Any]:
    """An env var from a Secret key; not optional, so a missing Secret stops the pod visibly."""
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


NATS_CA_DIR = "/etc/actormesh/nats-ca"
NATS_CA_FILE = "ca.crt"


def nats_credentials_env(mesh: ActorMesh, user: str) -> list[dict[str, Any]]:
    """NATS_USER and NATS_PASSWORD: from the generated `<mesh>-nats-users` when the managed NATS
    requires them (`user` is the component's row in `catalog.nats_permissions`), or both from the
    external NATS's `credentialsSecretRef` (one user for every pod: the external server's permissions
    are its owner's), or NATS_TOKEN from its `tokenSecretRef`. NATS_TLS_CA when the managed NATS
    serves TLS (see `nats_ca_volume`)."""
    env: list[dict[str, Any]] = []
    external = external_nats_credentials(mesh)
    token = external_nats_token(mesh)
    if nats_auth_enabled(mesh):
        env += [
            {"name": Env.NATS_USER, "value": user},
            secret_env(Env.NATS_PASSWORD, nats_password_ref(mesh, user)),
        ]
    elif external is not None:
        env += [secret_env(Env.NATS_USER, external[0]), secret_env(Env.NATS_PASSWORD, external[1])]
    elif token is not None:
        env.append(secret_env(Env.NATS_TOKEN, token))
    if mesh.spec.nats.managed and mesh.spec.nats.tls is not None:
        env.append({"name": Env.NATS_TLS_CA, "value": f"{NATS_CA_DIR}/{NATS_CA_FILE}"})
    return env


def tracing_headers_env(mesh: ActorMesh) -> list[dict[str, Any]]:
    """The trace export headers from their Secret (`spec.monitoring.tracing.headersSecretRef`)."""
    tracing = mesh.spec.monitoring.tracing
    ref = tracing.headers_secret_ref
    if tracing.endpoint is None or ref is None:
        return []
    return [secret_env(Env.OTEL_EXPORTER_OTLP_HEADERS, ref)]


def nats_ca_volume(mesh: ActorMesh) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts) giving a NATS client only the CA certificate of the TLS Secret (not its key)."""
    tls = mesh.spec.nats.tls
    if not mesh.spec.nats.managed or tls is None:
        return [], []
    items = [{"key": tls.ca_key, "path": NATS_CA_FILE}]
    volume = {
        "name": "nats-ca",
        "secret": {"secretName": tls.secret_name, "items": items, "defaultMode": 0o444},
    }
    return [volume], [{"name": "nats-ca", "mountPath": NATS_CA_DIR, "readOnly": True}]


def with_user_env(ours: list[dict[str, Any]], extra: Iterable[EnvVar]) -> list[dict[str, Any]]:
    """The operator's env plus the spec's `env` escape hatch; a user entry replaces ours of that name
    (one entry per name: server-side apply rejects duplicate keys in the env list-map)."""
    user = [var.to_k8s() for var in extra]
    names = {var["name"] for var in user}
    return [var for var in ours if var["name"] not in names] + user


def redis_password_env(mesh: ActorMesh) -> list[dict[str, Any]]:
    """REDIS_PASSWORD for pods that use Redis: the user's Secret, or the generated one of a managed Redis."""
    ref = redis_password_ref(mesh)
    return [] if ref is None else [secret_env(Env.REDIS_PASSWORD, ref)]


def runtime_container(
    mesh: ActorMesh,
    name: str,
    args: list[str],
    *,
    ports: list[dict[str, Any]],
    resources: dict[str, Any],
    env: list[dict[str, Any]] | None = None,
    extra_mounts: list[dict[str, Any]] | None = None,
    **probes: Any,
) -> dict[str, Any]:
    """The runtime image running `actormesh <args>`, with the runtime ConfigMap as its environment."""
    return pod_security.container(
        name,
        mesh.spec.image,
        pull_policy=mesh.spec.image_pull_policy,
        command=["actormesh"],
        args=args,
        ports=ports,
        envFrom=env_from_runtime_config(mesh),
        env=env or None,
        resources=resources,
        volumeMounts=[pod_security.tmp_mount(), *(extra_mounts or [])],
        **probes,
    )


def runtime_pod(
    mesh: ActorMesh,
    container: dict[str, Any],
    *,
    extra_volumes: list[dict[str, Any]] | None = None,
    termination_grace_seconds: int = RUNTIME_TERMINATION_GRACE_S,
) -> dict[str, Any]:
    return pod_security.pod_spec(
        mesh,
        containers=[container],
        volumes=[pod_security.tmp_volume(), *(extra_volumes or [])],
        service_account=names.service_account(mesh.name),
        termination_grace_seconds=termination_grace_seconds,
    )


def deployment(
    mesh: ActorMesh,
    name: str,
    component: str,
    pod: dict[str, Any],
    *,
    replicas: int | None,
    config_hash: str,
    member_labels: dict[str, str] | None = None,
) -> Manifest:
    """A Deployment; `replicas=None` leaves the field out so an HPA or ScaledObject owns it.
    `member_labels` (a group's) go on the Deployment and its pods, outside the selector."""
    spec: dict[str, Any] = {
        "selector": {"matchLabels": labels.selector_labels(mesh.name, component)},
        # Said, not left out: a `kubectl rollout pause` by hand is then drift the operator undoes, not a
        # rollout that never ends while the mesh reports "rolling out" for ever.
        "paused": False,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "revisionHistoryLimit": 3,
        "template": {
            "metadata": template_meta(
                mesh, component, image=mesh.spec.image, config_hash=config_hash, labels=member_labels
            ),
            "spec": pod,
        },
    }
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    meta = object_meta(mesh, name, component, image=mesh.spec.image, labels=member_labels)
    return manifest("apps/v1", "Deployment", meta, spec=spec)

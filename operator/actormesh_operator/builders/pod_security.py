"""Pod-level settings every pod template shares: "restricted" security, scheduling, pull secrets.

Called by every workload builder (runtime, NATS, Redis). The security contexts satisfy the Pod
Security Standard "restricted" profile; the root filesystem is read-only, so each builder mounts an
emptyDir wherever its process must write (`/tmp` for Python, the pid directory for NATS).
"""

from __future__ import annotations

from typing import Any

from actormesh_operator.api.spec import ActorMesh

RUN_AS_USER = 10001
"""Numeric so the kubelet can check runAsNonRoot without reading the image; matches the runtime image's
USER. nats-server and redis-server run as any uid, and fsGroup makes their volumes writable."""
RUN_AS_GROUP = 10001
FS_GROUP = 10001
TMP_VOLUME = "tmp"


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_GROUP,
        "fsGroup": FS_GROUP,
        # Only chown/chmod a volume when its root does not already match: big JetStream stores
        # otherwise slow every restart.
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def empty_dir(name: str, size_limit: str = "64Mi") -> dict[str, Any]:
    """A writable scratch volume (bounded, so a runaway writer is evicted rather than filling the node)."""
    return {"name": name, "emptyDir": {"sizeLimit": size_limit}}


def tmp_volume() -> dict[str, Any]:
    return empty_dir(TMP_VOLUME)


def tmp_mount() -> dict[str, Any]:
    return {"name": TMP_VOLUME, "mountPath": "/tmp"}


def pod_spec(
    mesh: ActorMesh,
    *,
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    service_account: str,
    termination_grace_seconds: int = 30,
) -> dict[str, Any]:
    """A pod spec with the shared settings: security, service account, scheduling, pull secrets."""
    spec = mesh.spec
    pod: dict[str, Any] = {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,  # no *_SERVICE_HOST variables leaking into the runtime's settings
        "securityContext": pod_security_context(),
        "terminationGracePeriodSeconds": termination_grace_seconds,
        "containers": containers,
        "volumes": volumes,
    }
    if spec.image_pull_secrets:
        pod["imagePullSecrets"] = [s.to_k8s() for s in spec.image_pull_secrets]
    pod.update(scheduling(mesh))
    return pod


def scheduling(mesh: ActorMesh) -> dict[str, Any]:
    """nodeSelector, tolerations, affinity and priority class from `spec.scheduling` (only those set)."""
    s = mesh.spec.scheduling
    out: dict[str, Any] = {}
    if s.node_selector:
        out["nodeSelector"] = dict(s.node_selector)
    if s.tolerations:
        out["tolerations"] = [t.to_k8s() for t in s.tolerations]
    if s.affinity:
        out["affinity"] = s.affinity.to_k8s()
    if s.priority_class_name:
        out["priorityClassName"] = s.priority_class_name
    return out


def container(
    name: str,
    image: str,
    *,
    pull_policy: str = "IfNotPresent",
    **fields: Any,
) -> dict[str, Any]:
    """A container with the restricted security context; `fields` are camelCase container fields."""
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": pull_policy,
        "securityContext": container_security_context(),
        **{k: v for k, v in fields.items() if v is not None},
    }

"""Every child object name the operator creates, and nothing else forms one.

Called by all builders and by the reconcile layer (e.g. to read back a child's status). Names are
`<mesh>-<suffix>`; when that would exceed a Kubernetes limit the mesh part is shortened and a short
hash of the full name keeps it unique and stable.
"""

from __future__ import annotations

import hashlib

from actormesh_runtime.catalog import ActorInfo

DNS_LABEL_MAX = 63
"""Service names, label values and container hostnames are DNS-1123/1035 labels."""
STATEFULSET_NAME_MAX = 52
"""The controller adds `controller-revision-hash: <name>-<10 chars>` to each pod; that label value
must fit in 63 characters, so a StatefulSet name longer than 52 breaks its pods."""
_HASH_LEN = 8


def fit(base: str, suffix: str = "", limit: int = DNS_LABEL_MAX) -> str:
    """`base-suffix`, or `base[:n]-<hash>-suffix` when that is longer than `limit`."""
    full = f"{base}-{suffix}" if suffix else base
    if len(full) <= limit:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:_HASH_LEN]
    tail = f"-{digest}-{suffix}" if suffix else f"-{digest}"
    keep = limit - len(tail)
    if keep < 1:
        raise ValueError(f"suffix {suffix!r} leaves no room for the mesh name within {limit} characters")
    return base[:keep].rstrip("-") + tail


def instance_label(mesh: str) -> str:
    """The mesh name as a label value (≤ 63 characters)."""
    return fit(mesh)


# --- infrastructure
def nats(mesh: str) -> str:
    """NATS StatefulSet and its client Service."""
    return fit(mesh, "nats", STATEFULSET_NAME_MAX)


def nats_headless(mesh: str) -> str:
    """Headless Service giving each NATS pod a stable DNS name for cluster routes."""
    return fit(mesh, "nats-headless")


def nats_config(mesh: str) -> str:
    return fit(mesh, "nats-config")


def redis(mesh: str) -> str:
    """Redis StatefulSet and Service."""
    return fit(mesh, "redis", STATEFULSET_NAME_MAX)


def history(mesh: str) -> str:
    """History StatefulSet and its headless Service."""
    return fit(mesh, "history", STATEFULSET_NAME_MAX)


# --- runtime workloads
def gateway(mesh: str) -> str:
    """Gateway Deployment, Service, Ingress, HPA and PDB."""
    return fit(mesh, "gateway")


def mocks(mesh: str) -> str:
    """Mock commerce APIs Deployment and Service."""
    return fit(mesh, "mocks")


def actor(mesh: str, info: ActorInfo) -> str:
    """An actor's Deployment (and its HPA/ScaledObject/PDB, which share the name)."""
    return actor_workload(mesh, info.k8s_name)


def actor_workload(mesh: str, component: str) -> str:
    """The Deployment (and HPA/ScaledObject/PDB) of one actor (`component` = its k8s_name) or of a group
    of co-located actors (`component` = the group's name, never an actor's: the spec forbids it)."""
    return fit(mesh, component)


def runtime_config(mesh: str) -> str:
    """ConfigMap with the runtime environment shared by every runtime pod."""
    return fit(mesh, "runtime-config")


def service_account(mesh: str) -> str:
    return fit(mesh, "runtime")


def metrics(mesh: str) -> str:
    """The headless metrics Service and the ServiceMonitor/PodMonitor of the runtime's /metrics."""
    return fit(mesh, "metrics")


def alerts(mesh: str) -> str:
    """The PrometheusRule with the mesh's alerts."""
    return fit(mesh, "alerts")


def network_policy(mesh: str, purpose: str) -> str:
    """A NetworkPolicy by what it allows, e.g. `network_policy(m, "allow-redis")`."""
    return fit(mesh, purpose)


# --- StatefulSet volume claim templates (the PVC is `<template>-<statefulset>-<ordinal>`)
NATS_STORE_CLAIM = "jetstream"
REDIS_DATA_CLAIM = "data"
HISTORY_DATA_CLAIM = "data"
HISTORY_BACKUP_VOLUME = "backups"


def history_backups(mesh: str) -> str:
    """The PersistentVolumeClaim holding the history snapshots (when the operator creates it)."""
    return fit(mesh, "history-backups")


# --- Secrets the operator generates once (never overwritten, see builders/generated.py)
def gateway_auth_secret(mesh: str) -> str:
    """The generated JWT signing key when `spec.gateway.authSecretRef` is unset."""
    return fit(mesh, "gateway-auth")


def nats_users_secret(mesh: str) -> str:
    """One generated NATS password per component (key = NATS user name)."""
    return fit(mesh, "nats-users")


def redis_auth_secret(mesh: str) -> str:
    """The generated password of the managed Redis when `spec.redis.passwordSecretRef` is unset."""
    return fit(mesh, "redis-auth")

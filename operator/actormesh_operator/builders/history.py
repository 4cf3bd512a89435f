"""The conversation-history service: a one-replica StatefulSet running `actormesh history` with the
SQLite file on a PVC, and a headless Service (stable identity; it serves only probes and /metrics).

Called by `build_children`. One replica because SQLite has one writer; other processes query it over
NATS request/reply, so nothing else mounts the volume. With `spec.history.backup.enabled` the service
also writes snapshots to a second volume (its own PVC, or one the user names); docs/backups.md.
"""

from __future__ import annotations

from typing import Any

from actormesh_operator.api.spec import ActorMesh, HistoryBackupSpec
from actormesh_operator.builders import labels, names, nats
from actormesh_operator.builders.meta import Manifest, manifest, object_meta, template_meta
from actormesh_operator.builders.runtime_config import HISTORY_KEYS, hash_for
from actormesh_operator.builders.volumes import retention_policy, volume_claim_template
from actormesh_operator.builders.workload import (
    http_probe,
    nats_ca_volume,
    nats_credentials_env,
    runtime_container,
    runtime_pod,
    tracing_headers_env,
)
from actormesh_operator.settings import OperatorSettings
from actormesh_runtime.catalog import HISTORY_USER, Env, Ports

DATA_DIR = "/var/lib/actormesh"
DB_PATH = f"{DATA_DIR}/conversations.db"
BACKUP_MOUNT = "/var/lib/actormesh-backups"


def backup_dir(mesh: ActorMesh) -> str:
    """Where the snapshots go: below `<namespace>/<mesh>/`, so meshes can share a provided claim."""
    return f"{BACKUP_MOUNT}/{mesh.namespace}/{mesh.name}"


def build_history_backup_claim(mesh: ActorMesh) -> Manifest | None:
    """The snapshots' own PVC, when backups are on and no existing claim is named.

    A claim of its own (not a volumeClaimTemplate: those cannot be added to an existing StatefulSet, so
    switching backups on later would be rejected). Its mesh ownerReference follows
    `spec.persistence.reclaimPolicy`: with `Retain` it has none, so it outlives the mesh and is never
    pruned; with `Delete` it goes with the mesh, or when backups are switched off."""
    backup = mesh.spec.history.backup
    if not backup.enabled or backup.existing_claim is not None:
        return None
    meta = object_meta(mesh, names.history_backups(mesh.name), labels.HISTORY)
    if mesh.spec.persistence.reclaim_policy == "Retain":
        del meta["ownerReferences"]
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": backup.storage.size}},
    }
    if backup.storage.storage_class_name is not None:
        spec["storageClassName"] = backup.storage.storage_class_name
    return manifest("v1", "PersistentVolumeClaim", meta, spec=spec)


def _pre_migration_env(backup: HistoryBackupSpec) -> list[dict[str, Any]]:
    """The pre-migration copies' settings, left out at the runtime's own defaults (the model's, checked
    by a unit test): the pod behaves the same either way, and a mesh that had backups on before these
    fields existed keeps its history pod template, so the operator upgrade restarts nothing."""
    defaults = HistoryBackupSpec()
    env = []
    if backup.pre_migration_retention != defaults.pre_migration_retention:
        env.append(
            {"name": Env.HISTORY_BACKUP_PRE_MIGRATION_RETENTION, "value": str(backup.pre_migration_retention)}
        )
    if backup.pre_migration_max_age_days != defaults.pre_migration_max_age_days:
        env.append(
            {
                "name": Env.HISTORY_BACKUP_PRE_MIGRATION_MAX_AGE_DAYS,
                "value": str(backup.pre_migration_max_age_days),
            }
        )
    return env


def _backup_parts(mesh: ActorMesh) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(env, volumes, mounts) that switch the history service's snapshots on; empty when off."""
    backup = mesh.spec.history.backup
    if not backup.enabled:
        return [], [], []
    claim = backup.existing_claim or names.history_backups(mesh.name)
    env = [
        {"name": Env.HISTORY_BACKUP_DIR, "value": backup_dir(mesh)},
        {"name": Env.HISTORY_BACKUP_INTERVAL_S, "value": str(backup.interval_seconds())},
        {"name": Env.HISTORY_BACKUP_RETENTION, "value": str(backup.retention)},
        *_pre_migration_env(backup),
    ]
    volume = {"name": names.HISTORY_BACKUP_VOLUME, "persistentVolumeClaim": {"claimName": claim}}
    mount = {"name": names.HISTORY_BACKUP_VOLUME, "mountPath": BACKUP_MOUNT}
    return env, [volume], [mount]


def build_history_service(mesh: ActorMesh) -> Manifest:
    return manifest(
        "v1",
        "Service",
        object_meta(mesh, names.history(mesh.name), labels.HISTORY),
        spec={
            "clusterIP": "None",
            "selector": labels.selector_labels(mesh.name, labels.HISTORY),
            "ports": [{"name": "http", "port": Ports.HISTORY_HTTP, "targetPort": "http"}],
        },
    )


def _retention_env(mesh: ActorMesh) -> list[dict[str, Any]]:
    days = mesh.spec.history.retention_days
    return [] if days is None else [{"name": Env.HISTORY_RETENTION_DAYS, "value": str(days)}]


def _monitor_env(mesh: ActorMesh, settings: OperatorSettings) -> list[dict[str, Any]]:
    """NATS_MONITOR_URLS: the managed NATS servers the history service reads metrics from."""
    urls = nats.monitor_urls(mesh, settings)
    return [{"name": Env.NATS_MONITOR_URLS, "value": ",".join(urls)}] if urls else []


def build_history_statefulset(mesh: ActorMesh, settings: OperatorSettings) -> Manifest:
    history = mesh.spec.history
    ca_volumes, ca_mounts = nats_ca_volume(mesh)
    backup_env, backup_volumes, backup_mounts = _backup_parts(mesh)
    container = runtime_container(
        mesh,
        "history",
        ["history"],
        ports=[{"name": "http", "containerPort": Ports.HISTORY_HTTP}],
        resources=history.resources.to_k8s(),
        env=[
            {"name": Env.SQLITE_DB_PATH, "value": DB_PATH},
            *_monitor_env(mesh, settings),
            *backup_env,
            *_retention_env(mesh),
            *nats_credentials_env(mesh, HISTORY_USER),
            *tracing_headers_env(mesh),
        ],
        extra_mounts=[{"name": names.HISTORY_DATA_CLAIM, "mountPath": DATA_DIR}, *backup_mounts, *ca_mounts],
        startupProbe=http_probe("/healthz", "http", period=2, failures=60),
        readinessProbe=http_probe("/readyz", "http", period=5),
        livenessProbe=http_probe("/healthz", "http", period=15),
    )
    digest = hash_for(mesh, settings, HISTORY_KEYS)
    return manifest(
        "apps/v1",
        "StatefulSet",
        object_meta(mesh, names.history(mesh.name), labels.HISTORY, image=mesh.spec.image),
        spec={
            "replicas": 1,
            "serviceName": names.history(mesh.name),
            "selector": {"matchLabels": labels.selector_labels(mesh.name, labels.HISTORY)},
            "persistentVolumeClaimRetentionPolicy": retention_policy(mesh),
            "template": {
                "metadata": template_meta(mesh, labels.HISTORY, image=mesh.spec.image, config_hash=digest),
                "spec": runtime_pod(mesh, container, extra_volumes=[*backup_volumes, *ca_volumes]),
            },
            "volumeClaimTemplates": [
                volume_claim_template(
                    mesh,
                    names.HISTORY_DATA_CLAIM,
                    labels.HISTORY,
                    history.storage.size,
                    history.storage.storage_class_name,
                )
            ],
        },
    )

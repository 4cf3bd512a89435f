"""The conversation-history service: a one-replica StatefulSet running `actormesh history` with the
SQLite file on a PVC, and a headless Service (stable identity; it serves only probes and /metrics).

Called by `build_children`. One replica because SQLite has one writer; other processes query it over
NATS request/reply, so nothing else mounts the volume.
"""

from __future__ import annotations

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import labels, names
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


def build_history_statefulset(mesh: ActorMesh, settings: OperatorSettings) -> Manifest:
    history = mesh.spec.history
    ca_volumes, ca_mounts = nats_ca_volume(mesh)
    container = runtime_container(
        mesh,
        "history",
        ["history"],
        ports=[{"name": "http", "containerPort": Ports.HISTORY_HTTP}],
        resources=history.resources.to_k8s(),
        env=[
            {"name": Env.SQLITE_DB_PATH, "value": DB_PATH},
            *nats_credentials_env(mesh, HISTORY_USER),
            *tracing_headers_env(mesh),
        ],
        extra_mounts=[{"name": names.HISTORY_DATA_CLAIM, "mountPath": DATA_DIR}, *ca_mounts],
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
                "spec": runtime_pod(mesh, container, extra_volumes=ca_volumes),
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

"""Managed Redis: a one-replica StatefulSet with an append-only file on a PVC, and its Service.

Called by `build_children` only when `spec.redis` is enabled and not external. Redis holds a cache
and session state that the runtime can lose (it degrades to no cache), so one replica is enough;
the PVC only saves a cold cache after a restart.
"""

from __future__ import annotations

from typing import Any

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import labels, names, pod_security
from actormesh_operator.builders.meta import Manifest, manifest, object_meta, template_meta
from actormesh_operator.builders.volumes import retention_policy, volume_claim_template
from actormesh_operator.builders.workload import secret_env
from actormesh_operator.settings import OperatorSettings
from actormesh_runtime.catalog import Ports

DATA_DIR = "/data"
AUTH_ENV = "REDISCLI_AUTH"
"""The password env var: redis-cli (the readiness probe) reads it as is, and the server gets it through
`--requirepass $(REDISCLI_AUTH)`, which the kubelet expands from the container's env."""


def image(mesh: ActorMesh, settings: OperatorSettings) -> str:
    return mesh.spec.redis.image or settings.redis_image


def build_redis_service(mesh: ActorMesh) -> Manifest:
    return manifest(
        "v1",
        "Service",
        object_meta(mesh, names.redis(mesh.name), labels.REDIS),
        spec={
            "type": "ClusterIP",
            "selector": labels.selector_labels(mesh.name, labels.REDIS),
            "ports": [{"name": "redis", "port": Ports.REDIS, "targetPort": "redis"}],
        },
    )


def _container(mesh: ActorMesh, settings: OperatorSettings) -> dict[str, Any]:
    # `-e`: exit non-zero on an error reply. Without it redis-cli exits 0 on NOAUTH, WRONGPASS or
    # LOADING, so a Redis that refuses the mesh's password, or is still replaying its AOF, looks ready.
    # Needs redis-cli >= 7.0 in spec.redis.image (the default and actormesh/redis both have it).
    ping = {"exec": {"command": ["redis-cli", "-e", "-p", str(Ports.REDIS), "ping"]}}
    args = ["--port", str(Ports.REDIS), "--dir", DATA_DIR, "--appendonly", "yes", "--protected-mode", "no"]
    password = mesh.spec.redis.password_secret_ref
    return pod_security.container(
        "redis",
        image(mesh, settings),
        # Explicit args, not the image's entrypoint script: it would try to chown /data as root.
        command=["redis-server"],
        args=args if password is None else [*args, "--requirepass", f"$({AUTH_ENV})"],
        env=None if password is None else [secret_env(AUTH_ENV, password)],
        ports=[{"name": "redis", "containerPort": Ports.REDIS}],
        resources=mesh.spec.redis.resources.to_k8s(),
        readinessProbe={**ping, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3},
        livenessProbe={
            "tcpSocket": {"port": "redis"},
            "initialDelaySeconds": 10,
            "periodSeconds": 20,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        volumeMounts=[
            {"name": names.REDIS_DATA_CLAIM, "mountPath": DATA_DIR},
            pod_security.tmp_mount(),
        ],
    )


def build_redis_statefulset(mesh: ActorMesh, settings: OperatorSettings) -> Manifest:
    redis = mesh.spec.redis
    img = image(mesh, settings)
    pod = pod_security.pod_spec(
        mesh,
        containers=[_container(mesh, settings)],
        volumes=[pod_security.tmp_volume()],
        service_account=names.service_account(mesh.name),
    )
    return manifest(
        "apps/v1",
        "StatefulSet",
        object_meta(mesh, names.redis(mesh.name), labels.REDIS, image=img),
        spec={
            "replicas": 1,
            "serviceName": names.redis(mesh.name),
            "selector": {"matchLabels": labels.selector_labels(mesh.name, labels.REDIS)},
            "persistentVolumeClaimRetentionPolicy": retention_policy(mesh),
            "template": {"metadata": template_meta(mesh, labels.REDIS, image=img), "spec": pod},
            "volumeClaimTemplates": [
                volume_claim_template(
                    mesh,
                    names.REDIS_DATA_CLAIM,
                    labels.REDIS,
                    redis.storage.size,
                    redis.storage.storage_class_name,
                )
            ],
        },
    )

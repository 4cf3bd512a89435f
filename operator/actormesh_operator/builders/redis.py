"""Managed Redis: a one-replica StatefulSet with an append-only file on a PVC, and its Service.

Called by `build_children` only when `spec.redis` is enabled and not external. Redis holds a cache
and session state that the runtime can lose (it degrades to no cache), so one replica is enough;
the PVC only saves a cold cache after a restart.
"""

from __future__ import annotations

from typing import Any

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import labels, names, pod_security
from actormesh_operator.builders.generated import redis_password_ref
from actormesh_operator.builders.meta import Manifest, manifest, object_meta, template_meta
from actormesh_operator.builders.volumes import retention_policy, volume_claim_template
from actormesh_operator.builders.workload import secret_env
from actormesh_operator.settings import OperatorSettings
from actormesh_runtime.catalog import Ports

DATA_DIR = "/data"
AUTH_ENV = "REDISCLI_AUTH"
"""The password env var of redis-cli (the readiness probe); the server itself reads the password from
AUTH_CONF, never from its command line (visible in `ps` and /proc to anyone on the node)."""
AUTH_DIR = "/run/redis-auth"
AUTH_CONF = f"{AUTH_DIR}/auth.conf"
PASSWORD_DIR = "/run/redis-password"
PASSWORD_FILE = f"{PASSWORD_DIR}/password"
RUNTIME_PYTHON = "/opt/actormesh/bin/python"
RENDER_AUTH_CONF = r"""
import os, sys
raw = open(sys.argv[1], 'rb').read()
text = ''.join(chr(b) if 32 <= b < 127 and b not in (34, 92) else '\\x%02x' % b for b in raw)
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, ('requirepass "' + text + '"\n').encode())
os.close(fd)
"""
"""Run by the `auth-config` init container (the runtime image's Python; the Redis image needs no shell):
the Secret's password, byte for byte, as a double-quoted redis.conf string (a hex escape for every byte that
is not plain printable ASCII, and for `"` and backslash), written 0600 to a memory-backed emptyDir."""


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


def _auth_init_container(mesh: ActorMesh) -> dict[str, Any]:
    return pod_security.container(
        "auth-config",
        mesh.spec.image,
        pull_policy=mesh.spec.image_pull_policy,
        command=[RUNTIME_PYTHON, "-I", "-c", RENDER_AUTH_CONF, PASSWORD_FILE, AUTH_CONF],
        resources={"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
        volumeMounts=[
            {"name": "password", "mountPath": PASSWORD_DIR, "readOnly": True},
            {"name": "auth", "mountPath": AUTH_DIR},
        ],
    )


def _auth_volumes(mesh: ActorMesh) -> list[dict[str, Any]]:
    ref = redis_password_ref(mesh)
    if ref is None:
        return []
    secret = {"secretName": ref.name, "items": [{"key": ref.key, "path": "password"}], "defaultMode": 0o440}
    return [
        {"name": "password", "secret": secret},
        {"name": "auth", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
    ]


def _container(mesh: ActorMesh, settings: OperatorSettings) -> dict[str, Any]:
    # `-e`: exit non-zero on an error reply. Without it redis-cli exits 0 on NOAUTH, WRONGPASS or
    # LOADING, so a Redis that refuses the mesh's password, or is still replaying its AOF, looks ready.
    # Needs redis-cli >= 7.0 in spec.redis.image (the default and actormesh/redis both have it).
    ping = {"exec": {"command": ["redis-cli", "-e", "-p", str(Ports.REDIS), "ping"]}}
    args = ["--port", str(Ports.REDIS), "--dir", DATA_DIR, "--appendonly", "yes", "--protected-mode", "no"]
    password = redis_password_ref(mesh)
    mounts = [] if password is None else [{"name": "auth", "mountPath": AUTH_DIR, "readOnly": True}]
    return pod_security.container(
        "redis",
        image(mesh, settings),
        # Explicit args, not the image's entrypoint script: it would try to chown /data as root. The
        # config file, when there is a password, must come first.
        command=["redis-server"],
        args=args if password is None else [AUTH_CONF, *args],
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
            *mounts,
        ],
    )


def build_redis_statefulset(mesh: ActorMesh, settings: OperatorSettings) -> Manifest:
    redis = mesh.spec.redis
    img = image(mesh, settings)
    pod = pod_security.pod_spec(
        mesh,
        containers=[_container(mesh, settings)],
        volumes=[pod_security.tmp_volume(), *_auth_volumes(mesh)],
        service_account=names.service_account(mesh.name),
    )
    if redis_password_ref(mesh) is not None:
        pod["initContainers"] = [_auth_init_container(mesh)]
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

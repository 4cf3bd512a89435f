"""Managed NATS JetStream: ConfigMap (nats.conf), headless and client Services, StatefulSet.

Called by `build_children` when `spec.nats.external` is unset. The shape follows the upstream NATS
helm chart: ports 4222/6222/8222, `server_name` from the pod name, full-mesh cluster routes through
the headless Service when there are 3 replicas, the JetStream store on a volumeClaimTemplate, the
chart's three `/healthz` probes, and a lame-duck preStop so clients move away before the pod stops.
"""

from __future__ import annotations

import json
from typing import Any

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.api.types import quantity_bytes
from actormesh_operator.builders import labels, names, pod_security
from actormesh_operator.builders.generated import nats_auth_enabled, nats_password_ref, nats_users
from actormesh_operator.builders.meta import Manifest, manifest, object_meta, template_meta
from actormesh_operator.builders.runtime_config import config_hash, service_host
from actormesh_operator.builders.volumes import retention_policy, volume_claim_template
from actormesh_operator.builders.workload import secret_env
from actormesh_operator.settings import OperatorSettings
from actormesh_runtime.catalog import (
    NATS_USERS,
    NatsPermissions,
    Ports,
    Subjects,
    colocated_permissions,
    group_nats_user,
    nats_permissions,
)

CONFIG_FILE = "nats.conf"
TLS_DIR = "/etc/nats-tls"
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"
CONFIG_DIR = "/etc/nats-config"
PID_DIR = "/var/run/nats"
STORE_DIR = "/data"
LAME_DUCK_DURATION_S = 30
LAME_DUCK_GRACE_S = 10
TERMINATION_GRACE_S = LAME_DUCK_DURATION_S + LAME_DUCK_GRACE_S + 20
"""Longer than the lame-duck phase, so the kubelet never kills a server that is still draining."""


def image(mesh: ActorMesh, settings: OperatorSettings) -> str:
    return mesh.spec.nats.image or settings.nats_image


def server_hosts(mesh: ActorMesh, settings: OperatorSettings) -> list[str]:
    """Each server's stable DNS name: its pod under the headless Service."""
    sts, headless = names.nats(mesh.name), names.nats_headless(mesh.name)
    host = service_host(mesh, headless, settings)
    return [f"{sts}-{i}.{host}" for i in range(mesh.spec.nats.replicas)]


def routes(mesh: ActorMesh, settings: OperatorSettings) -> list[str]:
    """One route per server, through each pod's stable DNS name under the headless Service."""
    return [f"nats://{host}:{Ports.NATS_CLUSTER}" for host in server_hosts(mesh, settings)]


def monitor_urls(mesh: ActorMesh, settings: OperatorSettings) -> list[str]:
    """Each managed server's monitoring endpoint by its pod's DNS name (the history service reads them
    into the NATS server metrics); empty for an external NATS."""
    if not mesh.spec.nats.managed:
        return []
    return [f"http://{host}:{Ports.NATS_MONITOR}" for host in server_hosts(mesh, settings)]


def render_config(mesh: ActorMesh, settings: OperatorSettings) -> str:
    """nats.conf. `$POD_NAME` is resolved by nats-server from the environment at start-up."""
    nats = mesh.spec.nats
    lines = [
        "server_name: $POD_NAME",
        f"port: {Ports.NATS_CLIENT}",
        f"http_port: {Ports.NATS_MONITOR}",
        f"pid_file: {PID_DIR}/nats.pid",
        f"lame_duck_duration: {LAME_DUCK_DURATION_S}s",
        f"lame_duck_grace_period: {LAME_DUCK_GRACE_S}s",
        "jetstream {",
        f"  store_dir: {STORE_DIR}",
        f"  max_memory_store: {quantity_bytes(nats.jetstream.max_memory)}",
        f"  max_file_store: {nats.max_file_store_bytes()}",
        "}",
    ]
    if nats.tls is not None:
        # Client connections only; the monitoring port (probes, KEDA) stays HTTP inside the pod network.
        lines += [
            "tls {",
            f"  cert_file: {TLS_DIR}/{TLS_CERT}",
            f"  key_file: {TLS_DIR}/{TLS_KEY}",
            "  timeout: 2",
            "}",
        ]
    if nats_auth_enabled(mesh):
        lines += render_authorization(mesh)
    if nats.replicas > 1:
        route_list = ", ".join(routes(mesh, settings))
        lines += [
            "cluster {",
            f"  name: {names.nats(mesh.name)}",
            f"  port: {Ports.NATS_CLUSTER}",
            # Peers find each other through the routes; advertising pod IPs to clients adds nothing.
            "  no_advertise: true",
            f"  routes: [{route_list}]",
            "}",
        ]
    return "\n".join(lines) + "\n"


def password_variable(user: str) -> str:
    """The server's env var holding `user`'s password (from `<mesh>-nats-users`, key `user`)."""
    return f"NATS_PASSWORD_{user.upper()}"


def _quoted(subjects: tuple[str, ...]) -> str:
    return "[" + ", ".join(json.dumps(s) for s in subjects) + "]"


def user_permissions(mesh: ActorMesh) -> list[NatsPermissions]:
    """The allow-lists of every user: the catalog's per component, then one per running actor group (the
    union of the members its process runs; builders/actors.py connects the process as that user). A
    disabled member's subjects stay out, and a group with no running member gets no user: nats-server
    reads an empty allow-list as "allow everything". `spec.actors.directHops` adds every
    actor's direct subject to the actors' lists (and the groups'): every actor process then hands
    envelopes on, and asks for chains to be settled, through them (acks stay per consumer)."""
    subjects = Subjects(mesh.name)
    direct_hops = mesh.spec.actors.direct_hops
    out = [nats_permissions(subjects, user, direct_hops=direct_hops) for user in NATS_USERS]
    for workload in mesh.spec.actors.workloads():
        if workload.group is not None:
            members = [m.info.name for m in workload.members]
            user = group_nats_user(workload.group)
            out.append(colocated_permissions(subjects, user, members, direct_hops=direct_hops))
    return out


def render_authorization(mesh: ActorMesh) -> list[str]:
    """One user per component (and per actor group) with the catalog's allow-lists; everything else is
    denied. Passwords are `$NATS_PASSWORD_<USER>` references that nats-server resolves from its
    environment (filled from the generated Secret), so the ConfigMap holds no secret. Adding or removing
    a group therefore changes the NATS pod template: the servers roll, one at a time."""
    lines = ["authorization {", "  users = ["]
    for perms in user_permissions(mesh):
        user = perms.user
        lines += [
            f"    {{user: {json.dumps(user)}, password: ${password_variable(user)}, permissions: {{",
            f"      publish: {{allow: {_quoted(perms.publish)}}}",
            f"      subscribe: {{allow: {_quoted(perms.subscribe)}}}",
        ]
        if perms.allow_responses:
            lines.append("      allow_responses: true")
        lines.append("    }}")
    return [*lines, "  ]", "}"]


def password_env(mesh: ActorMesh) -> list[dict[str, Any]]:
    if not nats_auth_enabled(mesh):
        return []
    return [secret_env(password_variable(user), nats_password_ref(mesh, user)) for user in nats_users(mesh)]


def build_nats_configmap(mesh: ActorMesh, settings: OperatorSettings) -> Manifest:
    return manifest(
        "v1",
        "ConfigMap",
        object_meta(mesh, names.nats_config(mesh.name), labels.NATS),
        data={CONFIG_FILE: render_config(mesh, settings)},
    )


def _service_ports(*, cluster: bool, monitor: bool) -> list[dict[str, Any]]:
    ports = [{"name": "nats", "port": Ports.NATS_CLIENT, "targetPort": "nats"}]
    if cluster:
        ports.append({"name": "cluster", "port": Ports.NATS_CLUSTER, "targetPort": "cluster"})
    if monitor:
        ports.append({"name": "monitor", "port": Ports.NATS_MONITOR, "targetPort": "monitor"})
    return ports


def build_nats_headless_service(mesh: ActorMesh) -> Manifest:
    """Stable per-pod DNS for routes and for KEDA's per-server monitoring queries; lists not-ready pods
    too, or a cluster could never form."""
    return manifest(
        "v1",
        "Service",
        object_meta(mesh, names.nats_headless(mesh.name), labels.NATS),
        spec={
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": labels.selector_labels(mesh.name, labels.NATS),
            "ports": _service_ports(cluster=True, monitor=True),
        },
    )


def build_nats_service(mesh: ActorMesh) -> Manifest:
    """Client Service (4222) plus the monitor port (KEDA reads the headless one: it needs per-pod names)."""
    return manifest(
        "v1",
        "Service",
        object_meta(mesh, names.nats(mesh.name), labels.NATS),
        spec={
            "type": "ClusterIP",
            "selector": labels.selector_labels(mesh.name, labels.NATS),
            "ports": _service_ports(cluster=False, monitor=True),
        },
    )


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "monitor"},
        "initialDelaySeconds": 10,
        "timeoutSeconds": 5,
        "periodSeconds": period,
        "failureThreshold": failures,
    }


def _nats_container(mesh: ActorMesh, settings: OperatorSettings) -> dict[str, Any]:
    return pod_security.container(
        "nats",
        image(mesh, settings),
        args=["--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
        ports=[
            {"name": "nats", "containerPort": Ports.NATS_CLIENT},
            {"name": "cluster", "containerPort": Ports.NATS_CLUSTER},
            {"name": "monitor", "containerPort": Ports.NATS_MONITOR},
        ],
        env=[
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            *password_env(mesh),
        ],
        resources=mesh.spec.nats.resources.to_k8s(),
        # Up to 15 minutes to start: a large JetStream store is recovered before /healthz turns green.
        startupProbe=_probe("/healthz", period=10, failures=90),
        readinessProbe=_probe("/healthz?js-server-only=true", period=10, failures=3),
        livenessProbe=_probe("/healthz?js-enabled-only=true", period=30, failures=3),
        lifecycle={"preStop": {"exec": {"command": ["nats-server", f"-sl=ldm={PID_DIR}/nats.pid"]}}},
        volumeMounts=[
            {"name": "config", "mountPath": CONFIG_DIR},
            {"name": "pid", "mountPath": PID_DIR},
            {"name": names.NATS_STORE_CLAIM, "mountPath": STORE_DIR},
            *([{"name": "tls", "mountPath": TLS_DIR, "readOnly": True}] if mesh.spec.nats.tls else []),
        ],
    )


def _spread(mesh: ActorMesh) -> dict[str, Any]:
    """Prefer one server per node, so a node failure costs the cluster one vote, not its quorum."""
    return {
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": labels.selector_labels(mesh.name, labels.NATS)},
    }


def build_nats_statefulset(mesh: ActorMesh, settings: OperatorSettings) -> Manifest:
    nats = mesh.spec.nats
    img = image(mesh, settings)
    volumes = [
        {"name": "config", "configMap": {"name": names.nats_config(mesh.name)}},
        pod_security.empty_dir("pid", "1Mi"),
    ]
    if nats.tls is not None:
        items = [{"key": k, "path": k} for k in (TLS_CERT, TLS_KEY)]
        volumes.append(
            {
                "name": "tls",
                "secret": {"secretName": nats.tls.secret_name, "items": items, "defaultMode": 0o440},
            }
        )
    pod = pod_security.pod_spec(
        mesh,
        containers=[_nats_container(mesh, settings)],
        volumes=volumes,
        service_account=names.service_account(mesh.name),
        termination_grace_seconds=TERMINATION_GRACE_S,
    )
    if nats.replicas > 1:
        pod["topologySpreadConstraints"] = [_spread(mesh)]
    digest = config_hash({CONFIG_FILE: render_config(mesh, settings)})
    return manifest(
        "apps/v1",
        "StatefulSet",
        object_meta(mesh, names.nats(mesh.name), labels.NATS, image=img),
        spec={
            "replicas": nats.replicas,
            "serviceName": names.nats_headless(mesh.name),
            # All servers start together: a JetStream cluster needs a quorum before any pod is ready.
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": labels.selector_labels(mesh.name, labels.NATS)},
            "persistentVolumeClaimRetentionPolicy": retention_policy(mesh),
            "template": {
                "metadata": template_meta(mesh, labels.NATS, image=img, config_hash=digest),
                "spec": pod,
            },
            "volumeClaimTemplates": [
                volume_claim_template(
                    mesh,
                    names.NATS_STORE_CLAIM,
                    labels.NATS,
                    nats.storage.size,
                    nats.storage.storage_class_name,
                )
            ],
        },
    )

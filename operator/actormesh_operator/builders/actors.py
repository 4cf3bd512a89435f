"""One Deployment per enabled actor, running `actormesh actor <name>`, or per group of co-located
actors (`spec.actors.groups`), running `actormesh actor <a>,<b>,...` in one process.

Called by `build_children`. Replicas of an actor share one durable JetStream consumer, so a Deployment
scales freely, and a group's pods and a lone actor's pods may consume side by side while an actor moves
into or out of a group (the old Deployment is pruned once the new one is applied). When the workload is
autoscaled (HPA or KEDA ScaledObject) `replicas` is left out, so the operator's server-side apply never
takes the field back from the autoscaler. A group's process gets the union of its members' needs: the
Secrets and ConfigMap keys any member reads, and a NATS user allowed what any member may do.
"""

from __future__ import annotations

from typing import Any

from actormesh_operator.api.runtime import env_value
from actormesh_operator.api.spec import ActorMesh, ActorWorkload, EffectiveActorSpec
from actormesh_operator.builders import labels, names
from actormesh_operator.builders.meta import Manifest
from actormesh_operator.builders.runtime_config import hash_for, workload_keys
from actormesh_operator.builders.workload import (
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
from actormesh_runtime.catalog import Env, Ports, group_nats_user


def nats_user(workload: ActorWorkload) -> str:
    """The NATS user the process connects as: the actor's own, or its group's (builders/nats.py)."""
    group = workload.group
    return workload.process.info.name.value if group is None else group_nats_user(group)


def actor_env(mesh: ActorMesh, workload: ActorWorkload) -> list[dict[str, Any]]:
    """Per-process env on top of the runtime ConfigMap: concurrency, the process's own runtime
    overrides, the Secrets any member reads, then its `env` escape hatch."""
    process = workload.process
    env: list[dict[str, Any]] = [{"name": Env.ACTOR_CONCURRENCY, "value": str(process.concurrency)}]
    env += _runtime_overrides(mesh, process)
    llm = mesh.spec.llm
    if workload.any_member("uses_llm") and llm is not None and llm.api_key_secret_ref is not None:
        env.append(secret_env(Env.LLM_API_KEY, llm.api_key_secret_ref))
    if workload.any_member("uses_redis"):
        env += redis_password_env(mesh)
    env += nats_credentials_env(mesh, nats_user(workload)) + tracing_headers_env(mesh)
    return with_user_env(env, process.env)


def _runtime_overrides(mesh: ActorMesh, process: EffectiveActorSpec) -> list[dict[str, Any]]:
    """The process's overrides of `spec.runtime` (container env wins over the ConfigMap's envFrom); one
    equal to the mesh-wide value is left out, so setting it changes nothing in the pod template."""
    mesh_wide = mesh.spec.runtime
    overrides = {
        Env.LOG_LEVEL: (process.log_level, mesh_wide.log_level),
        Env.PROCESSING_TIMEOUT_S: (process.processing_timeout_seconds, mesh_wide.processing_timeout_seconds),
    }
    return [
        {"name": name, "value": env_value(own)}
        for name, (own, wide) in overrides.items()
        if own is not None and own != wide
    ]


def build_actor_deployment(mesh: ActorMesh, workload: ActorWorkload, settings: OperatorSettings) -> Manifest:
    process = workload.process
    ca_volumes, ca_mounts = nats_ca_volume(mesh)
    container = runtime_container(
        mesh,
        "actor",
        # Catalog order, whatever the spec's: reordering a group's list does not roll its pods.
        ["actor", ",".join(info.name.value for info in workload.infos)],
        ports=[{"name": "http", "containerPort": Ports.ACTOR_HTTP}],
        resources=process.resources.to_k8s(),
        env=actor_env(mesh, workload),
        extra_mounts=ca_mounts,
        # Up to a minute to start: LLM actors import litellm (seconds) before serving /healthz.
        startupProbe=http_probe("/healthz", "http", period=2, failures=30),
        readinessProbe=http_probe("/readyz", "http", period=5),
        livenessProbe=http_probe("/healthz", "http", period=15),
    )
    grouped = workload.group is not None
    return deployment(
        mesh,
        names.actor_workload(mesh.name, workload.component),
        workload.component,
        runtime_pod(mesh, container, extra_volumes=ca_volumes),
        replicas=None if process.autoscaling.enabled else process.replicas,
        config_hash=hash_for(mesh, settings, workload_keys(workload.infos)),
        member_labels=labels.member_labels(i.k8s_name for i in workload.infos) if grouped else None,
    )


def build_actor_deployments(mesh: ActorMesh, settings: OperatorSettings) -> list[Manifest]:
    """One Deployment per enabled ungrouped actor (catalog order), then one per group with an enabled
    member; a disabled actor (or an emptied group) has none: it is pruned."""
    return [build_actor_deployment(mesh, w, settings) for w in mesh.spec.actors.workloads()]

"""One Deployment per enabled actor, running `actormesh actor <name>`.

Called by `build_children`. Replicas of an actor share one durable JetStream consumer, so a Deployment
scales freely. When the actor is autoscaled (HPA or KEDA ScaledObject) `replicas` is left out, so the
operator's server-side apply never takes the field back from the autoscaler.
"""

from __future__ import annotations

from typing import Any

from actormesh_operator.api.runtime import env_value
from actormesh_operator.api.spec import ActorMesh, EffectiveActorSpec
from actormesh_operator.builders import names
from actormesh_operator.builders.meta import Manifest
from actormesh_operator.builders.runtime_config import actor_keys, hash_for
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
from actormesh_runtime.catalog import Env, Ports


def component(actor: EffectiveActorSpec) -> str:
    """The actor's `app.kubernetes.io/component` label value, e.g. `sentiment-analyzer`."""
    return actor.info.k8s_name


def actor_env(mesh: ActorMesh, actor: EffectiveActorSpec) -> list[dict[str, Any]]:
    """Per-actor env on top of the runtime ConfigMap: concurrency, the actor's own runtime overrides,
    the Secrets it reads, then its `env` escape hatch."""
    env: list[dict[str, Any]] = [{"name": Env.ACTOR_CONCURRENCY, "value": str(actor.concurrency)}]
    env += _runtime_overrides(mesh, actor)
    llm = mesh.spec.llm
    if actor.info.uses_llm and llm is not None and llm.api_key_secret_ref is not None:
        env.append(secret_env(Env.LLM_API_KEY, llm.api_key_secret_ref))
    if actor.info.uses_redis:
        env += redis_password_env(mesh)
    env += nats_credentials_env(mesh, actor.info.name.value) + tracing_headers_env(mesh)
    return with_user_env(env, actor.env)


def _runtime_overrides(mesh: ActorMesh, actor: EffectiveActorSpec) -> list[dict[str, Any]]:
    """The actor's overrides of `spec.runtime` (container env wins over the ConfigMap's envFrom); one
    equal to the mesh-wide value is left out, so setting it changes nothing in the pod template."""
    mesh_wide = mesh.spec.runtime
    overrides = {
        Env.LOG_LEVEL: (actor.log_level, mesh_wide.log_level),
        Env.PROCESSING_TIMEOUT_S: (actor.processing_timeout_seconds, mesh_wide.processing_timeout_seconds),
    }
    return [
        {"name": name, "value": env_value(own)}
        for name, (own, wide) in overrides.items()
        if own is not None and own != wide
    ]


def build_actor_deployment(
    mesh: ActorMesh, actor: EffectiveActorSpec, settings: OperatorSettings
) -> Manifest:
    ca_volumes, ca_mounts = nats_ca_volume(mesh)
    container = runtime_container(
        mesh,
        "actor",
        ["actor", actor.info.name.value],
        ports=[{"name": "http", "containerPort": Ports.ACTOR_HTTP}],
        resources=actor.resources.to_k8s(),
        env=actor_env(mesh, actor),
        extra_mounts=ca_mounts,
        # Up to a minute to start: LLM actors import litellm (seconds) before serving /healthz.
        startupProbe=http_probe("/healthz", "http", period=2, failures=30),
        readinessProbe=http_probe("/readyz", "http", period=5),
        livenessProbe=http_probe("/healthz", "http", period=15),
    )
    return deployment(
        mesh,
        names.actor(mesh.name, actor.info),
        component(actor),
        runtime_pod(mesh, container, extra_volumes=ca_volumes),
        replicas=None if actor.autoscaling.enabled else actor.replicas,
        config_hash=hash_for(mesh, settings, actor_keys(actor.info)),
    )


def build_actor_deployments(mesh: ActorMesh, settings: OperatorSettings) -> list[Manifest]:
    """Deployments of every enabled actor, in catalog order (a disabled actor has none: it is pruned)."""
    return [build_actor_deployment(mesh, a, settings) for a in mesh.spec.actors.enabled_actors()]

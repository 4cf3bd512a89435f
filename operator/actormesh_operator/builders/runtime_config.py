"""The runtime ConfigMap (every runtime env var) and the config hash that rolls exactly the affected pods.

Called by the runtime workload builders (actors, gateway, history, mocks) and by `build_children`.
Every runtime pod reads the whole ConfigMap through `envFrom`, but each reads only some keys; the
pod-template annotation `actormesh.io/config-hash` hashes just the keys that component reads, so
changing e.g. the LLM model restarts the two LLM actors and nothing else. Keys a component does not
read may change without restarting it (they are harmless in its environment).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

from actormesh_operator.api.runtime import POD_DEFAULTS, RuntimeSpec, env_value
from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import labels, names
from actormesh_operator.builders.meta import Manifest, manifest, object_meta
from actormesh_operator.settings import OperatorSettings
from actormesh_runtime.catalog import ActorInfo, ActorName, Env, Ports

_TRACING = (Env.OTEL_EXPORTER_OTLP_ENDPOINT, Env.OTEL_TRACES_SAMPLER, Env.OTEL_TRACES_SAMPLER_ARG)
_COMMON = (
    Env.MESH_NAME,
    Env.NATS_URL,
    Env.NATS_STREAM_REPLICAS,
    Env.LOG_FORMAT,
    Env.LOG_LEVEL,
    Env.HOST,
    *_TRACING,
)
_LLM = (Env.LITELLM_MODEL, Env.LLM_API_BASE, Env.LLM_TEMPERATURE, Env.LLM_TIMEOUT_S)
_APIS = (Env.CUSTOMER_API_URL, Env.ORDERS_API_URL, Env.TRACKING_API_URL, Env.CACHE_TTL, Env.API_TIMEOUT_S)
_ACTOR_HOST = (Env.ACTOR_HTTP_PORT, Env.PROCESSING_TIMEOUT_S, Env.DIRECT_HOPS)
_ONLY_BY: dict[ActorName, tuple[str, ...]] = {
    ActorName.DECISION_ROUTER: (Env.ESCALATION_CONFIDENCE_THRESHOLD,),
}
"""Settings a single actor reads."""
_RUNTIME_DEFAULTS = RuntimeSpec().env()


def service_host(mesh: ActorMesh, service: str, settings: OperatorSettings) -> str:
    """Fully qualified in-cluster DNS name of one of the mesh's Services."""
    return f"{service}.{mesh.namespace}.svc.{settings.cluster_domain}"


def nats_url(mesh: ActorMesh, settings: OperatorSettings) -> str:
    external = mesh.spec.nats.external
    if external is not None:
        return external.url
    return f"nats://{service_host(mesh, names.nats(mesh.name), settings)}:{Ports.NATS_CLIENT}"


def redis_url(mesh: ActorMesh, settings: OperatorSettings) -> str | None:
    """None when Redis is disabled (the runtime then caches in process)."""
    redis = mesh.spec.redis
    if not redis.enabled:
        return None
    if redis.external is not None:
        return redis.external.url
    return f"redis://{service_host(mesh, names.redis(mesh.name), settings)}:{Ports.REDIS}/0"


def commerce_api_urls(mesh: ActorMesh, settings: OperatorSettings) -> dict[str, str]:
    """Each API's URL: the real one from spec.commerceApis, else the mock service's when enabled."""
    apis = mesh.spec.commerce_apis
    explicit = {
        Env.CUSTOMER_API_URL: (apis.customer_url, Ports.CUSTOMER_API),
        Env.ORDERS_API_URL: (apis.orders_url, Ports.ORDERS_API),
        Env.TRACKING_API_URL: (apis.tracking_url, Ports.TRACKING_API),
    }
    mock_host = service_host(mesh, names.mocks(mesh.name), settings)
    urls: dict[str, str] = {}
    for env, (url, port) in explicit.items():
        if url is not None:
            urls[env] = url
        elif mesh.spec.mock_services.enabled:
            urls[env] = f"http://{mock_host}:{port}"
    return urls


def runtime_spec_env(runtime: RuntimeSpec) -> dict[str, str]:
    """`spec.runtime` as env vars, leaving out the runtime's own defaults: the pod behaves the same
    either way, and a setting added to the CRD then changes no existing mesh's config hash."""
    return {
        name: value
        for name, value in runtime.env().items()
        if name in POD_DEFAULTS or value != _RUNTIME_DEFAULTS[name]
    }


def runtime_env(mesh: ActorMesh, settings: OperatorSettings) -> dict[str, str]:
    """Every ConfigMap entry, sorted by key (the ConfigMap's `data`)."""
    spec = mesh.spec
    env: dict[str, str] = {
        Env.MESH_NAME: mesh.name,
        Env.NATS_URL: nats_url(mesh, settings),
        **runtime_spec_env(spec.runtime),
        Env.HOST: "0.0.0.0",  # pods listen on all interfaces; the default is loopback
        Env.ACTOR_HTTP_PORT: str(Ports.ACTOR_HTTP),
        # pydantic-settings parses list fields from JSON.
        Env.CORS_ORIGINS: json.dumps(list(spec.gateway.cors_origins)),
        **commerce_api_urls(mesh, settings),
    }
    if spec.nats.managed and spec.nats.replicas > 1:
        # Streams (and their consumers) as replicated as the cluster: R3 on three NATS pods. Left
        # out for one pod (the runtime's default), so single-NATS meshes keep their config hashes.
        env[Env.NATS_STREAM_REPLICAS] = str(spec.nats.replicas)
    if spec.actors.direct_hops:
        # Mesh-wide: every actor process must agree (its peers' NATS permissions follow the same field).
        # Left out when off (the runtime's default), so meshes without it keep their config hashes.
        env[Env.DIRECT_HOPS] = "true"
    redis = redis_url(mesh, settings)
    if redis is not None:
        env[Env.REDIS_URL] = redis
    env.update(tracing_env(mesh))
    if spec.llm is not None:
        env[Env.LITELLM_MODEL] = spec.llm.model
        env[Env.LLM_TEMPERATURE] = str(spec.llm.temperature)
        env[Env.LLM_TIMEOUT_S] = str(spec.llm.timeout_seconds)
        if spec.llm.api_base is not None:
            env[Env.LLM_API_BASE] = spec.llm.api_base
    return dict(sorted(env.items()))


def tracing_env(mesh: ActorMesh) -> dict[str, str]:
    """`spec.monitoring.tracing` as the standard OTEL_* variables; nothing when no endpoint is set, so
    a mesh without tracing keeps its config hashes."""
    tracing = mesh.spec.monitoring.tracing
    if tracing.endpoint is None:
        return {}
    return {
        Env.OTEL_EXPORTER_OTLP_ENDPOINT: tracing.endpoint,
        Env.OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
        Env.OTEL_TRACES_SAMPLER_ARG: env_value(tracing.sampler_ratio),
    }


def workload_keys(infos: Iterable[ActorInfo]) -> tuple[str, ...]:
    """The ConfigMap keys a process running these actors reads (one actor: exactly its `actor_keys`)."""
    keys: dict[str, None] = {}
    for info in infos:
        keys.update(dict.fromkeys(actor_keys(info)))
    return tuple(keys)


def actor_keys(info: ActorInfo) -> tuple[str, ...]:
    """The ConfigMap keys one actor reads."""
    keys: tuple[str, ...] = (*_COMMON, *_ACTOR_HOST, *_ONLY_BY.get(info.name, ()))
    if info.uses_llm:
        keys += _LLM
    if info.calls_commerce_apis:
        keys += _APIS
    if info.uses_redis:
        keys += (Env.REDIS_URL,)
    return keys


GATEWAY_KEYS: tuple[str, ...] = (
    *_COMMON,
    Env.CORS_ORIGINS,
    Env.REDIS_URL,
    Env.REQUEST_TIMEOUT_S,
    Env.CONVERSATION_DEADLINE_S,
    Env.MAX_MESSAGE_CHARS,
    Env.MAX_CONCURRENT_REQUESTS,
    Env.RATE_LIMIT_REQUESTS,
)
HISTORY_KEYS: tuple[str, ...] = (*_COMMON, Env.ACTOR_HTTP_PORT)
MOCKS_KEYS: tuple[str, ...] = (Env.LOG_FORMAT, Env.LOG_LEVEL, Env.HOST)


def config_hash(data: Mapping[str, str]) -> str:
    """Stable digest of configuration entries: sha256 over sorted compact JSON, 16 hex characters.

    Pinned by a unit test: changing this function restarts every pod of every mesh on upgrade.
    """
    canonical = json.dumps(dict(sorted(data.items())), separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def hash_for(mesh: ActorMesh, settings: OperatorSettings, keys: tuple[str, ...]) -> str:
    """config_hash of the subset of the runtime ConfigMap named by `keys` (absent keys count as absent)."""
    env = runtime_env(mesh, settings)
    return config_hash({k: env[k] for k in keys if k in env})


def build_runtime_configmap(mesh: ActorMesh, settings: OperatorSettings) -> Manifest:
    return manifest(
        "v1",
        "ConfigMap",
        object_meta(mesh, names.runtime_config(mesh.name), labels.RUNTIME),
        data=runtime_env(mesh, settings),
    )


def env_from_runtime_config(mesh: ActorMesh) -> list[dict[str, object]]:
    return [{"configMapRef": {"name": names.runtime_config(mesh.name)}}]

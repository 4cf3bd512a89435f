"""Pure builders: (mesh, settings) → the Kubernetes manifests of every child of an ActorMesh.

The reconcile layer calls `build_children` and applies the result in order with server-side apply,
lists `MANAGED_KINDS` by `labels.mesh_selector(mesh)` to prune children no longer desired, and checks
`referenced_secrets` before applying. Nothing here reads the environment or talks to a cluster.

Every child carries the mesh's controller ownerReference, so deleting the mesh garbage-collects it.
PVCs from volumeClaimTemplates cannot (the StatefulSet controller creates them); their fate on
deletion is `spec.persistence.reclaimPolicy` via the StatefulSets' persistentVolumeClaimRetentionPolicy
(see builders/volumes.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from actormesh_operator.api.spec import ActorMesh, EnvVar
from actormesh_operator.builders import (
    actors,
    alerts,
    autoscaling,
    disruption,
    gateway,
    history,
    mocks,
    monitoring,
    nats,
    network,
    rbac,
    redis,
    runtime_config,
)
from actormesh_operator.builders.generated import external_nats_credentials, external_nats_token
from actormesh_operator.builders.kinds import MANAGED_KINDS, PROMETHEUS_RULE, ManagedKind, SecretRef
from actormesh_operator.builders.meta import Manifest
from actormesh_operator.settings import OperatorSettings
from actormesh_runtime.catalog import ACTORS_BY_NAME

__all__ = ["MANAGED_KINDS", "ManagedKind", "Manifest", "SecretRef", "build_children", "referenced_secrets"]


def _config_and_services(mesh: ActorMesh, settings: OperatorSettings) -> list[Manifest]:
    spec = mesh.spec
    out = [rbac.build_service_account(mesh), runtime_config.build_runtime_configmap(mesh, settings)]
    if spec.nats.managed:
        out += [
            nats.build_nats_configmap(mesh, settings),
            nats.build_nats_headless_service(mesh),
            nats.build_nats_service(mesh),
        ]
    if spec.redis.managed:
        out.append(redis.build_redis_service(mesh))
    out.append(history.build_history_service(mesh))
    claim = history.build_history_backup_claim(mesh)
    if claim is not None:
        out.append(claim)
    if spec.mock_services.enabled:
        out.append(mocks.build_mocks_service(mesh))
    out.append(gateway.build_gateway_service(mesh))
    return out


def _workloads(mesh: ActorMesh, settings: OperatorSettings, *, gateway_api: bool) -> list[Manifest]:
    spec = mesh.spec
    out: list[Manifest] = []
    if spec.nats.managed:
        out.append(nats.build_nats_statefulset(mesh, settings))
    if spec.redis.managed:
        out.append(redis.build_redis_statefulset(mesh, settings))
    out.append(history.build_history_statefulset(mesh, settings))
    if spec.mock_services.enabled:
        out.append(mocks.build_mocks_deployment(mesh, settings))
    out += actors.build_actor_deployments(mesh, settings)
    out.append(gateway.build_gateway_deployment(mesh, settings))
    ingress = gateway.build_gateway_ingress(mesh)
    if ingress is not None:
        out.append(ingress)
    route = gateway.build_gateway_http_route(mesh, served=gateway_api)
    if route is not None:
        out.append(route)
    return out


def _monitoring(mesh: ActorMesh, available: frozenset[str]) -> list[Manifest]:
    out = monitoring.build_monitoring(mesh, available)
    if mesh.spec.monitoring.prometheus_rule.enabled and PROMETHEUS_RULE.plural in available:
        out.append(alerts.build_prometheus_rule(mesh))
    return out


def build_children(
    mesh: ActorMesh,
    settings: OperatorSettings,
    *,
    keda_available: bool,
    monitoring_available: frozenset[str] = frozenset(),
    gateway_api_available: bool = False,
) -> list[Manifest]:
    """Every desired child, in apply order: identity and config, Services, NetworkPolicies (before any
    pod starts), StatefulSets and Deployments (infrastructure first), Ingress and HTTPRoute (the latter
    only when the Gateway API is served: `gateway_api_available`), autoscalers, PDBs, then the
    monitoring objects whose kinds the API server serves (`monitoring_available`: plurals)."""
    scrape = monitoring.build_scrape_network_policy(mesh)
    return [
        *_config_and_services(mesh, settings),
        *network.build_network_policies(mesh, keda_available=keda_available),
        *([scrape] if scrape is not None else []),
        *_workloads(mesh, settings, gateway_api=gateway_api_available),
        *autoscaling.build_autoscalers(mesh, settings, keda_available=keda_available),
        *disruption.build_pdbs(mesh),
        *_monitoring(mesh, monitoring_available),
    ]


def referenced_secrets(mesh: ActorMesh) -> list[SecretRef]:
    """Secret keys the desired pods read (a Secret only referenced by a disabled part is left out).

    The Ingress TLS Secret is not listed: cert-manager typically creates it from the Ingress itself,
    and its absence breaks only TLS at the ingress controller, not the mesh.
    """
    spec = mesh.spec
    refs: list[SecretRef] = []
    enabled = {a.name for a in spec.actors.enabled_actors()}
    llm_in_use = any(ACTORS_BY_NAME[name].uses_llm for name in enabled)
    if spec.llm is not None and spec.llm.api_key_secret_ref is not None and llm_in_use:
        ref = spec.llm.api_key_secret_ref
        refs.append(SecretRef(name=ref.name, key=ref.key, field_path="spec.llm.apiKeySecretRef"))
    if spec.gateway.auth_secret_ref is not None:
        ref = spec.gateway.auth_secret_ref
        refs.append(SecretRef(name=ref.name, key=ref.key, field_path="spec.gateway.authSecretRef"))
    redis = spec.redis.password_ref()
    if redis is not None:
        field, ref = redis
        refs.append(SecretRef(name=ref.name, key=ref.key, field_path=field))
    tracing = spec.monitoring.tracing
    if tracing.endpoint is not None and tracing.headers_secret_ref is not None:
        ref = tracing.headers_secret_ref
        refs.append(
            SecretRef(name=ref.name, key=ref.key, field_path="spec.monitoring.tracing.headersSecretRef")
        )
    for ref in external_nats_credentials(mesh) or ():
        refs.append(
            SecretRef(name=ref.name, key=ref.key, field_path="spec.nats.external.credentialsSecretRef")
        )
    if (token := external_nats_token(mesh)) is not None:
        refs.append(SecretRef(name=token.name, key=token.key, field_path="spec.nats.external.tokenSecretRef"))
    tls = spec.nats.tls
    if spec.nats.managed and tls is not None:
        for key in (nats.TLS_CERT, nats.TLS_KEY, tls.ca_key):
            refs.append(SecretRef(name=tls.secret_name, key=key, field_path="spec.nats.tls.secretName"))
    refs += _env_secret_refs("spec.gateway.env", spec.gateway.env)
    for workload in spec.actors.workloads():
        refs += _env_secret_refs(f"{workload.process.settings_path}.env", workload.process.env)
    return refs


def _env_secret_refs(path: str, env: Iterable[EnvVar]) -> list[SecretRef]:
    """The `env` escape hatch's Secret keys, except `optional: true` ones (the pod starts without them)."""
    refs = []
    for index, var in enumerate(env):
        ref = var.value_from.secret_key_ref if var.value_from is not None else None
        if ref is not None and not ref.optional:
            field = f"{path}[{index}].valueFrom.secretKeyRef"
            refs.append(SecretRef(name=ref.name, key=ref.key, field_path=field))
    return refs

"""Read what exists: the mesh's children, the Secrets its spec references, and which optional CRDs exist.

Called by `runner.py` at the start of every reconcile. Children come from the informer cache
(`children.py`); kinds it does not cover are listed per `MANAGED_KINDS` entry with the mesh's label
selector (server-side). Secrets come from the Secret watches' cache, else one GET each. KEDA, the
Prometheus Operator kinds and the Gateway API's HTTPRoute are detected through API discovery
(`/apis/keda.sh/v1alpha1`, `/apis/monitoring.coreos.com/v1`, `/apis/gateway.networking.k8s.io/v1`),
which every authenticated client may read: the operator needs no permission on
CustomResourceDefinitions, and the namespaced install (a Role cannot grant cluster-scoped reads)
detects them the same way.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Protocol

from actormesh_operator.api.observed import (
    COMPONENT_GATEWAY,
    COMPONENT_LABEL,
    MissingSecret,
    ObservedHTTPRoute,
    ObservedIngress,
    ObservedService,
    ObservedState,
    ObservedWorkload,
    ReconcileError,
)
from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import labels
from actormesh_operator.builders.kinds import (
    HTTP_ROUTE,
    MANAGED_KINDS,
    MONITORING_KINDS,
    SCALED_OBJECT,
    ManagedKind,
    SecretRef,
)
from actormesh_operator.reconcile.apply import resource_of
from actormesh_operator.reconcile.diff import ChildKey, child_key
from actormesh_operator.reconcile.errors import action
from actormesh_operator.reconcile.kube import KubeApiError, KubeClient, Resource

SECRETS = Resource("v1", "Secret", "secrets")
KEDA_RECHECK_S = 60.0
"""KEDA may be installed after the operator starts; discovery is re-read at most once a minute."""


def selector_string(selector: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(selector.items()))


def kind_served(kind: ManagedKind, *, keda: bool, monitoring: Collection[str], gateway_api: bool) -> bool:
    """Whether `kind` is served, given what discovery found for the optional ones (`monitoring`: plurals)."""
    if kind == SCALED_OBJECT:
        return keda
    if kind == HTTP_ROUTE:
        return gateway_api
    if kind in MONITORING_KINDS:
        return kind.plural in monitoring
    return True


class ChildSource(Protocol):
    """The informer cache of children (`children.ChildCache`)."""

    def covers(self, kind: ManagedKind) -> bool: ...

    def children(self, namespace: str, instance: str) -> dict[ChildKey, dict[str, Any]]: ...


async def list_children(
    kube: KubeClient,
    mesh: ActorMesh,
    *,
    keda: bool,
    monitoring: Collection[str] = (),
    gateway_api: bool = False,
    cache: ChildSource | None = None,
) -> dict[ChildKey, dict[str, Any]]:
    """Every live object of a managed kind carrying this mesh's labels (ours or not: prune checks owners).
    Kinds the `cache` covers come from memory; the others (monitoring kinds, a CRD installed after
    start-up) are listed, optional ones only when served (`keda`; `monitoring`: served plurals;
    `gateway_api`: HTTPRoutes)."""
    selector = labels.mesh_selector(mesh.name)
    live: dict[ChildKey, dict[str, Any]] = {}
    if cache is not None:
        live.update(cache.children(mesh.namespace, selector[labels.INSTANCE]))
    for kind in MANAGED_KINDS:
        if not kind_served(kind, keda=keda, monitoring=monitoring, gateway_api=gateway_api):
            continue
        if cache is not None and cache.covers(kind):
            continue
        with action(f"list {kind.plural}"):
            try:
                items = await kube.list(
                    resource_of(kind), mesh.namespace, label_selector=selector_string(selector)
                )
            except KubeApiError as exc:
                if kind.optional and exc.status == 404:
                    continue  # the CRD went away between discovery and listing
                raise
        for item in items:
            live[child_key(item)] = item
    return live


class SecretCache(Protocol):
    """What the reconcile reads Secrets through (`secret_watch.SecretWatches`)."""

    def lookup(self, namespace: str, name: str) -> tuple[bool, dict[str, str] | None]: ...

    def remember(self, namespace: str, name: str, secret: Mapping[str, Any] | None) -> None: ...


async def read_secrets(
    kube: KubeClient, namespace: str, names: Iterable[str], cache: SecretCache | None = None
) -> dict[str, dict[str, str]]:
    """The `data` of each named Secret that exists (absent ones are left out): from `cache` when it
    knows the Secret (its watch keeps it current), else read (and then remembered).

    The values are only ever hashed (builders/secret_hash.py) and their key names compared; they are
    never logged."""
    found: dict[str, dict[str, str]] = {}
    for name in sorted(set(names)):
        known, data = cache.lookup(namespace, name) if cache is not None else (False, None)
        if not known:
            with action(f"read secret {name}"):
                secret = await kube.get(SECRETS, name, namespace)
            if cache is not None:
                cache.remember(namespace, name, secret)
            data = None if secret is None else dict(secret.get("data") or {})
        if data is not None:
            found[name] = dict(data)
    return found


def missing_secrets(refs: list[SecretRef], secrets: Mapping[str, Mapping[str, str]]) -> list[MissingSecret]:
    """Every referenced Secret (or key in it) that does not exist, with the spec field naming it."""
    missing: list[MissingSecret] = []
    for ref in refs:
        present = secrets.get(ref.name)
        if present is None or ref.key not in present:
            missing.append(
                MissingSecret(
                    name=ref.name, key=ref.key, secret_exists=present is not None, field=ref.field_path
                )
            )
    return missing


def observed_state(
    live: Mapping[ChildKey, Mapping[str, Any]],
    *,
    keda: bool,
    missing: list[MissingSecret],
    applied: bool,
    error: ReconcileError | None = None,
    monitoring: Collection[str] = (),
    gateway_api: bool = False,
) -> ObservedState:
    """Reduce the live children to what `status.compute_status` reads."""
    objects = list(live.values())

    def gateway(kind: str) -> Mapping[str, Any] | None:
        return next(
            (
                o
                for o in objects
                if o.get("kind") == kind
                and ((o.get("metadata") or {}).get("labels") or {}).get(COMPONENT_LABEL) == COMPONENT_GATEWAY
            ),
            None,
        )

    service, ingress, route = gateway("Service"), gateway("Ingress"), gateway(HTTP_ROUTE.kind)
    return ObservedState(
        workloads=[ObservedWorkload.from_object(o) for o in objects if o.get("kind") in _WORKLOAD_KINDS],
        gateway_service=ObservedService.from_object(service) if service else None,
        gateway_ingress=ObservedIngress.from_object(ingress) if ingress else None,
        gateway_route=ObservedHTTPRoute.from_object(route) if route else None,
        gateway_api_served=gateway_api,
        missing_secrets=missing,
        keda_installed=keda,
        monitoring_served=frozenset(monitoring),
        generation_applied=applied,
        error=error,
    )


_WORKLOAD_KINDS = ("StatefulSet", "Deployment")


class ServedKindsDetector:
    """Caches which of `kinds` the API server serves (discovery, no RBAC needed), so CRDs installed after
    the operator started are picked up within a minute. After the first answer (asked, or `initial` from
    start-up) only meshes that use one of the kinds ask again (`recheck`); the others use the last
    answer. Never left unasked: a mesh that switched a kind off must still list (and prune) its objects."""

    def __init__(
        self,
        kinds: Iterable[ManagedKind],
        recheck_s: float = KEDA_RECHECK_S,
        *,
        initial: Iterable[str] | None = None,
    ) -> None:
        self._kinds = tuple(kinds)
        self._recheck_s = recheck_s
        self._value: frozenset[str] = frozenset(initial or ())
        self._checked_at: float | None = None if initial is None else time.monotonic()

    async def served(self, kube: KubeClient, *, recheck: bool = True) -> frozenset[str]:
        now = time.monotonic()
        due = self._checked_at is None or now - self._checked_at >= self._recheck_s
        if due and (recheck or self._checked_at is None):
            found: set[str] = set()
            for api_version in sorted({k.api_version for k in self._kinds}):
                with action(f"discover {api_version}"):
                    plurals = await kube.served_plurals(api_version)
                found |= {k.plural for k in self._kinds if k.api_version == api_version} & plurals
            self._value = frozenset(found)
            self._checked_at = now
        return self._value


class KindDetector(ServedKindsDetector):
    """Whether one optional kind (KEDA's ScaledObject, the Gateway API's HTTPRoute) is served; `initial`
    is the answer found at start-up (None: not asked yet)."""

    def __init__(
        self, kind: ManagedKind, recheck_s: float = KEDA_RECHECK_S, *, initial: bool | None = None
    ) -> None:
        seed = None if initial is None else [kind.plural] if initial else []
        super().__init__((kind,), recheck_s, initial=seed)
        self._plural = kind.plural

    async def available(self, kube: KubeClient, *, recheck: bool = True) -> bool:
        return self._plural in await self.served(kube, recheck=recheck)

"""The Kubernetes kinds the builders can emit, and the Secrets a mesh references.

The reconcile layer lists every `MANAGED_KINDS` entry by the mesh's label selector to prune children
that are no longer desired, and checks `SecretRef`s before applying so a missing Secret becomes a
`Stalled` condition instead of pods stuck in CreateContainerConfigError.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ManagedKind(BaseModel):
    """One kind of child object (all are namespaced today; the flag keeps the contract honest)."""

    model_config = ConfigDict(frozen=True)

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True
    optional: bool = False
    """True when the kind's CRD may be absent (KEDA, Prometheus Operator, Gateway API); it is then
    neither listed nor watched, and a 404 while listing it is skipped."""

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


CONFIG_MAP = ManagedKind(api_version="v1", kind="ConfigMap", plural="configmaps")
SERVICE_ACCOUNT = ManagedKind(api_version="v1", kind="ServiceAccount", plural="serviceaccounts")
SERVICE = ManagedKind(api_version="v1", kind="Service", plural="services")
PVC = ManagedKind(api_version="v1", kind="PersistentVolumeClaim", plural="persistentvolumeclaims")
"""Only the history backups' own claim; the StatefulSets' claims come from their volumeClaimTemplates."""
STATEFUL_SET = ManagedKind(api_version="apps/v1", kind="StatefulSet", plural="statefulsets")
DEPLOYMENT = ManagedKind(api_version="apps/v1", kind="Deployment", plural="deployments")
HPA = ManagedKind(
    api_version="autoscaling/v2", kind="HorizontalPodAutoscaler", plural="horizontalpodautoscalers"
)
SCALED_OBJECT = ManagedKind(
    api_version="keda.sh/v1alpha1", kind="ScaledObject", plural="scaledobjects", optional=True
)
PDB = ManagedKind(api_version="policy/v1", kind="PodDisruptionBudget", plural="poddisruptionbudgets")
NETWORK_POLICY = ManagedKind(
    api_version="networking.k8s.io/v1", kind="NetworkPolicy", plural="networkpolicies"
)
INGRESS = ManagedKind(api_version="networking.k8s.io/v1", kind="Ingress", plural="ingresses")
SERVICE_MONITOR = ManagedKind(
    api_version="monitoring.coreos.com/v1", kind="ServiceMonitor", plural="servicemonitors", optional=True
)
POD_MONITOR = ManagedKind(
    api_version="monitoring.coreos.com/v1", kind="PodMonitor", plural="podmonitors", optional=True
)
PROMETHEUS_RULE = ManagedKind(
    api_version="monitoring.coreos.com/v1", kind="PrometheusRule", plural="prometheusrules", optional=True
)
HTTP_ROUTE = ManagedKind(
    api_version="gateway.networking.k8s.io/v1", kind="HTTPRoute", plural="httproutes", optional=True
)
"""`spec.gateway.httpRoute`: emitted only when the Gateway API CRDs are installed."""
MONITORING_KINDS: tuple[ManagedKind, ...] = (SERVICE_MONITOR, POD_MONITOR, PROMETHEUS_RULE)
"""Prometheus Operator kinds: emitted only when the spec asks and the API server serves them."""

MANAGED_KINDS: tuple[ManagedKind, ...] = (
    CONFIG_MAP,
    SERVICE_ACCOUNT,
    SERVICE,
    PVC,
    NETWORK_POLICY,
    STATEFUL_SET,
    DEPLOYMENT,
    INGRESS,
    HTTP_ROUTE,
    HPA,
    SCALED_OBJECT,
    PDB,
    *MONITORING_KINDS,
)
"""Every kind `build_children` can emit, in apply order."""


class SecretRef(BaseModel):
    """A Secret key the mesh's pods read, and the spec field that names it (for status messages)."""

    model_config = ConfigDict(frozen=True)

    name: str
    key: str
    field_path: str
    """Dotted path in the ActorMesh, e.g. `spec.llm.apiKeySecret`."""

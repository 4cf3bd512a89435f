"""What the reconcile layer saw in the cluster, reduced to what the status computation needs.

The reconcile layer's observe step fills `ObservedState` (the `from_object` constructors take live
objects as plain dicts, so it needs no parsing of its own) and passes it to `status.compute_status`.
Keeping this a plain data model is what lets every status case be a unit test.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from actormesh_operator.api.status import Reason

COMPONENT_LABEL = "app.kubernetes.io/component"
"""Children are matched to components by this label (values below; actors use their k8s_name)."""

COMPONENT_NATS = "nats"
COMPONENT_REDIS = "redis"
COMPONENT_HISTORY = "history"
COMPONENT_GATEWAY = "gateway"
COMPONENT_MOCKS = "mocks"


class _Observed(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def dig(obj: Mapping[str, Any], *path: str) -> Any:
    """`obj[path[0]][path[1]]...`, or None where a level is missing or not a mapping."""
    value: Any = obj
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


class ObservedWorkload(_Observed):
    """A live StatefulSet or Deployment, reduced to its rollout counters."""

    component: str
    """Value of the `app.kubernetes.io/component` label, e.g. `nats` or `sentiment-analyzer`."""
    kind: Literal["StatefulSet", "Deployment"]
    name: str
    desired: int = Field(ge=0)
    """spec.replicas (for an autoscaled Deployment: whatever the HPA last set)."""
    current: int = Field(0, ge=0)
    """status.replicas: pods that exist, old template and new."""
    updated: int = Field(0, ge=0)
    """status.updatedReplicas: pods with the current template."""
    ready: int = Field(0, ge=0)
    """Deployment: status.availableReplicas; StatefulSet: status.readyReplicas."""
    generation: int = 0
    observed_generation: int = 0
    progress_deadline_exceeded: bool = False
    """Deployment condition Progressing=False with reason ProgressDeadlineExceeded."""

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> ObservedWorkload:
        kind = obj.get("kind")
        if kind not in ("StatefulSet", "Deployment"):
            raise ValueError(f"not a workload: kind {kind!r}")
        status = dig(obj, "status") or {}
        replicas = dig(obj, "spec", "replicas")
        ready_field = "availableReplicas" if kind == "Deployment" else "readyReplicas"
        stuck = any(
            c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
            for c in status.get("conditions") or []
        )
        return cls(
            component=(dig(obj, "metadata", "labels") or {}).get(COMPONENT_LABEL, ""),
            kind=kind,
            name=dig(obj, "metadata", "name") or "",
            desired=1 if replicas is None else int(replicas),
            current=int(status.get("replicas") or 0),
            updated=int(status.get("updatedReplicas") or 0),
            ready=int(status.get(ready_field) or 0),
            generation=int(dig(obj, "metadata", "generation") or 0),
            observed_generation=int(status.get("observedGeneration") or 0),
            progress_deadline_exceeded=stuck,
        )


def _lb_hosts(obj: Mapping[str, Any]) -> list[str]:
    entries = dig(obj, "status", "loadBalancer", "ingress") or []
    return [e.get("hostname") or e.get("ip") for e in entries if e.get("hostname") or e.get("ip")]


class ObservedService(_Observed):
    """The live gateway Service."""

    name: str
    namespace: str
    type: str = "ClusterIP"
    port: int = 80
    load_balancer_hosts: list[str] = Field(default_factory=list)

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> ObservedService:
        ports = dig(obj, "spec", "ports") or [{}]
        return cls(
            name=dig(obj, "metadata", "name") or "",
            namespace=dig(obj, "metadata", "namespace") or "default",
            type=dig(obj, "spec", "type") or "ClusterIP",
            port=int(ports[0].get("port") or 80),
            load_balancer_hosts=_lb_hosts(obj),
        )


class ObservedIngress(_Observed):
    """The live gateway Ingress."""

    name: str
    host: str | None = None
    tls: bool = False
    load_balancer_hosts: list[str] = Field(default_factory=list)

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> ObservedIngress:
        rules = dig(obj, "spec", "rules") or [{}]
        return cls(
            name=dig(obj, "metadata", "name") or "",
            host=rules[0].get("host"),
            tls=bool(dig(obj, "spec", "tls")),
            load_balancer_hosts=_lb_hosts(obj),
        )


def route_parent(namespace: str, name: str, section_name: str | None, port: int | None) -> str:
    """How a route's parent is named in the status: the Gateway, and the listener when the parentRef
    picks one. One Gateway may be a parent twice (two listeners), each with its own verdict."""
    parent = f"{namespace}/{name}"
    if section_name:
        parent += f" listener {section_name}"
    if port:
        parent += f" port {port}"
    return parent


class ObservedRouteParent(_Observed):
    """One parent's verdict on the live HTTPRoute (`status.parents[]`, written by its controller)."""

    gateway: str
    """The parent as `route_parent` names it: `namespace/name`, plus the listener if the ref names one."""
    problems: list[str] = Field(default_factory=list)
    """Its conditions that are not True, as `Accepted=False (NotAllowedByListeners): message`."""


class ObservedHTTPRoute(_Observed):
    """The live gateway HTTPRoute and what the Gateways' controllers said about it."""

    name: str
    parents: list[ObservedRouteParent] = Field(default_factory=list)

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> ObservedHTTPRoute:
        namespace = dig(obj, "metadata", "namespace") or ""
        parents = []
        for entry in dig(obj, "status", "parents") or []:
            ref = entry.get("parentRef") or {}
            problems = [
                f"{c.get('type')}={c.get('status')} ({c.get('reason')}): {c.get('message') or ''}".rstrip(
                    ": "
                )
                for c in entry.get("conditions") or []
                if c.get("type") in ("Accepted", "ResolvedRefs") and c.get("status") != "True"
            ]
            gateway = route_parent(
                ref.get("namespace") or namespace,
                str(ref.get("name")),
                ref.get("sectionName"),
                ref.get("port"),
            )
            parents.append(ObservedRouteParent(gateway=gateway, problems=problems))
        return cls(name=dig(obj, "metadata", "name") or "", parents=parents)


class MissingSecret(_Observed):
    """A Secret referenced by the spec that is absent, or present without the referenced key."""

    name: str
    key: str
    secret_exists: bool = False
    """True: the Secret exists but lacks `key`."""
    field: str | None = None
    """The spec field that references it, e.g. `spec.llm.apiKeySecretRef` (unset: looked up from the spec)."""


class ReconcileError(_Observed):
    """The outcome of the last failed reconcile attempt, as the reconcile layer classified it."""

    message: str
    permanent: bool
    """True: retrying cannot help (→ Stalled); False: a retry with backoff is scheduled (→ Reconciling)."""
    reason: Reason = Reason.RECONCILE_FAILED
    """For permanent errors, one of `api.status.STALL_REASONS`."""


class ObservedState(_Observed):
    """Everything `compute_status` needs besides the mesh itself."""

    workloads: list[ObservedWorkload] = Field(default_factory=list)
    """Every live StatefulSet/Deployment of the mesh (matched to components by label)."""
    gateway_service: ObservedService | None = None
    gateway_ingress: ObservedIngress | None = None
    gateway_route: ObservedHTTPRoute | None = None
    gateway_api_served: bool = False
    """Whether the API server serves `httproutes.gateway.networking.k8s.io` (v1)."""
    missing_secrets: list[MissingSecret] = Field(default_factory=list)
    keda_installed: bool = False
    """Whether the `scaledobjects.keda.sh` CRD exists (only consulted when queueLag mode is requested)."""
    monitoring_served: frozenset[str] = frozenset()
    """Plurals of the monitoring.coreos.com kinds the API server serves (e.g. `servicemonitors`)."""
    generation_applied: bool = True
    """Every child of the current generation was applied; False before the first apply or after an error."""
    error: ReconcileError | None = None
    paused: bool = False
    """The mesh carries `actormesh.io/paused: "true"`: nothing was written, the children were only read."""
    drift: list[str] = Field(default_factory=list)
    """While paused: the children that differ from the spec (`deployment demo-gateway (drifted at
    .spec.replicas)`), i.e. what resuming will change."""

    def workload(self, component: str) -> ObservedWorkload | None:
        return next((w for w in self.workloads if w.component == component), None)

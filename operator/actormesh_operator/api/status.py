"""The ActorMesh status contract: condition types, every reason, phases, and the status model.

`status.py` (the pure status computation) fills it, `api/schema.py` turns `ActorMeshStatus` into the
CRD's explicit status schema, the reconcile layer uses the reasons for errors and Events, and
docs/status.md documents every constant here (tests/unit/test_status_docs.py fails if they disagree).
Conditions follow kstatus: `Ready` is the normal-true condition; `Reconciling` and `Stalled` are
abnormal-true (present and True only while something is in progress or stuck).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class ConditionType(StrEnum):
    """The condition types this operator owns; entries of any other type are other writers' and kept."""

    READY = "Ready"
    """True when every desired component of the current generation is rolled out and ready."""
    RECONCILING = "Reconciling"
    """True while the operator (or a controller below it) is still moving toward the spec."""
    STALLED = "Stalled"
    """True when progress needs a human: the reason says what to fix."""
    PAUSED = "Paused"
    """True while the `actormesh.io/paused` annotation holds the operator off: children are not written."""
    ANONYMOUS_GATEWAY = "AnonymousGateway"
    """Present (True) only while `spec.gateway.anonymous` is true: a warning, not a failure."""
    MONITORING_READY = "MonitoringReady"
    """True when the monitoring objects `spec.monitoring` asks for exist (or none are asked for). False
    never blocks the mesh: its pods run and Ready is unaffected."""
    HTTP_ROUTE_READY = "HTTPRouteReady"
    """True when the HTTPRoute `spec.gateway.httpRoute` asks for is accepted by every Gateway it names (or
    none is asked for). False never blocks the mesh: the gateway Service works and Ready is unaffected."""


class Reason(StrEnum):
    """Every reason this operator writes into its conditions (and uses for Events)."""

    # Ready
    ALL_COMPONENTS_READY = "AllComponentsReady"
    """Ready=True: every component of the current generation is rolled out and ready."""
    COMPONENTS_NOT_READY = "ComponentsNotReady"
    """Ready=False: some components are missing, rolling out or not ready; the message lists them."""
    ROLLOUT_STUCK = "RolloutStuck"
    """Ready=False: a Deployment exceeded its progress deadline (e.g. crash-looping or unschedulable pods)."""
    RECONCILE_PENDING = "ReconcilePending"
    """Ready=False: the current generation is not fully applied yet (first pass or a retry is pending)."""

    # Reconciling
    RECONCILED = "Reconciled"
    """Reconciling=False: nothing left to do."""
    NEW_GENERATION = "NewGeneration"
    """Reconciling=True: the spec changed and is being applied."""
    RETRYING = "Retrying"
    """Reconciling=True: the last attempt hit a transient error and will be retried with backoff."""
    CREATING = "Creating"
    """Reconciling=True: some child workloads do not exist yet (first creation, or being restored)."""
    ROLLING_OUT = "RollingOut"
    """Reconciling=True: a StatefulSet or Deployment is replacing pods with a new template."""
    SCALING = "Scaling"
    """Reconciling=True: a workload is adding or removing replicas."""
    WAITING_FOR_READY = "WaitingForReady"
    """Reconciling=True: all pods exist with the current template but some are not ready yet."""
    STALLED = "Stalled"
    """Reconciling=False: progress is blocked; see the Stalled condition."""
    PAUSED = "Paused"
    """Reconciling=False: the mesh is paused; see the Paused condition."""

    # Stalled
    NO_ERROR = "NoError"
    """Stalled=False: nothing blocks progress."""
    SECRET_NOT_FOUND = "SecretNotFound"
    """Stalled=True: a referenced Secret (or its key) does not exist; the message names the field."""
    KEDA_NOT_INSTALLED = "KedaNotInstalled"
    """Stalled=True: an actor asks for queueLag autoscaling but the KEDA CRDs are not installed."""
    INVALID_SPEC = "InvalidSpec"
    """Stalled=True: the spec fails the operator's validation (an object that bypassed the CRD's rules)."""
    APPLY_REJECTED = "ApplyRejected"
    """Stalled=True: the API server rejected a child object as invalid or forbidden; retrying cannot help."""
    SHARED_NAME_CLASH = "SharedNameClash"
    """Stalled=True: an older mesh of the same name in another namespace uses the same external NATS or
    Redis; the two would share the stream and keys named after the mesh, so this one is not applied."""
    RETRIES_EXHAUSTED = "RetriesExhausted"
    """Stalled=True: transient errors persisted through every retry; the message has the last one."""
    RECONCILE_FAILED = "ReconcileFailed"
    """Stalled=True: any other permanent error."""

    # Paused
    PAUSED_BY_ANNOTATION = "PausedByAnnotation"
    """Paused=True: `actormesh.io/paused: "true"`; the message lists children that differ from the spec."""
    NOT_PAUSED = "NotPaused"
    """Paused=False: the operator writes children as usual."""
    # AnonymousGateway
    ANONYMOUS_MODE_ENABLED = "AnonymousModeEnabled"
    """AnonymousGateway=True: the gateway needs no token; anyone who reaches it may act as any customer."""

    # MonitoringReady
    MONITORING_CONFIGURED = "MonitoringConfigured"
    """MonitoringReady=True: every ServiceMonitor/PodMonitor/PrometheusRule asked for is applied."""
    MONITORING_NOT_REQUESTED = "MonitoringNotRequested"
    """MonitoringReady=True: `spec.monitoring` asks for no Prometheus Operator object."""
    MONITORING_CRDS_MISSING = "MonitoringCRDsMissing"
    """MonitoringReady=False: asked-for monitoring.coreos.com kinds are not served; the message names them."""

    # HTTPRouteReady
    HTTP_ROUTE_ACCEPTED = "HTTPRouteAccepted"
    """HTTPRouteReady=True: every Gateway in `parentRefs` accepted the route and resolved its backend."""
    HTTP_ROUTE_NOT_REQUESTED = "HTTPRouteNotRequested"
    """HTTPRouteReady=True: `spec.gateway.httpRoute` is off."""
    HTTP_ROUTE_PENDING = "HTTPRoutePending"
    """HTTPRouteReady=False: applied, but a Gateway's controller has not reported on it yet (or it is not
    applied yet); the message names the Gateways still silent."""
    HTTP_ROUTE_NOT_ACCEPTED = "HTTPRouteNotAccepted"
    """HTTPRouteReady=False: a Gateway refused the route or could not resolve its backend; the message
    quotes its condition."""
    GATEWAY_API_CRDS_MISSING = "GatewayAPICRDsMissing"
    """HTTPRouteReady=False: `httproutes.gateway.networking.k8s.io` (v1) is not served; nothing is routed."""


STALL_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.SECRET_NOT_FOUND,
        Reason.KEDA_NOT_INSTALLED,
        Reason.INVALID_SPEC,
        Reason.APPLY_REJECTED,
        Reason.SHARED_NAME_CLASH,
        Reason.RETRIES_EXHAUSTED,
        Reason.RECONCILE_FAILED,
    }
)
"""Reasons a permanent error may carry (the reconcile layer picks one for `ReconcileError.reason`)."""


class Phase(StrEnum):
    """One-word summary for `kubectl get am`; derived from the conditions, never an input."""

    PROGRESSING = "Progressing"
    """Reconciling is True."""
    READY = "Ready"
    """Ready is True."""
    DEGRADED = "Degraded"
    """Neither ready nor making progress, but not stalled either (e.g. a stuck rollout)."""
    FAILED = "Failed"
    """Stalled is True."""
    PAUSED = "Paused"
    """Paused is True (whatever the other conditions say: nothing is being reconciled)."""


class _StatusModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, use_attribute_docstrings=True
    )


class Condition(_StatusModel):
    """A `metav1.Condition`."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = Field("", max_length=32768)
    last_transition_time: str
    """RFC 3339 time of the last change of `status`."""
    observed_generation: int | None = Field(None, ge=0)
    """The generation this condition was computed for."""


class ComponentStatus(_StatusModel):
    """Ready versus desired replicas of one component."""

    ready: int = Field(0, ge=0)
    desired: int = Field(0, ge=0)


class ActorsStatus(_StatusModel):
    """Per-actor counts, keyed like `spec.actors` (disabled actors are left out)."""

    sentiment_analyzer: ComponentStatus | None = None
    intent_analyzer: ComponentStatus | None = None
    context_retriever: ComponentStatus | None = None
    decision_router: ComponentStatus | None = None
    execution_coordinator: ComponentStatus | None = None
    response_generator: ComponentStatus | None = None
    guardrail_validator: ComponentStatus | None = None
    escalation_router: ComponentStatus | None = None
    response_aggregator: ComponentStatus | None = None


class ComponentsStatus(_StatusModel):
    """Counts per component; a component the spec does not deploy (external, disabled) is absent."""

    nats: ComponentStatus | None = None
    redis: ComponentStatus | None = None
    history: ComponentStatus | None = None
    gateway: ComponentStatus | None = None
    mocks: ComponentStatus | None = None
    actors: ActorsStatus = Field(default_factory=ActorsStatus)


class ActorMeshStatus(_StatusModel):
    """What the operator observed; written with the status subresource, never returned from a handler."""

    observed_generation: int | None = Field(None, ge=0)
    """The last generation the operator fully processed (applied, or found permanently broken)."""
    phase: Phase | None = None
    conditions: list[Condition] = Field(default_factory=list)
    """Ready, Reconciling and Stalled (kstatus), plus other writers' entries, left untouched."""
    components: ComponentsStatus = Field(default_factory=ComponentsStatus)
    actors_ready: str | None = Field(None, pattern=r"^[0-9]+/[0-9]+$")
    """Enabled actors with all replicas ready / enabled actors, e.g. `9/9`."""
    gateway_endpoint: str | None = None
    """Where to reach the chat API: the Ingress URL, a LoadBalancer address, or the in-cluster Service URL."""

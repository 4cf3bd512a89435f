"""The ActorMesh spec: the pydantic model the CRD schema is generated from and the builders read.

Who uses it: `api/schema.py` (→ crds/), the builders (`mesh.spec...`), `status.py`, and the reconcile
layer through `ActorMesh.from_body(body)`. Defaults live here and only here (the CRD carries none, so
CEL rules can tell "unset" from "default"): a minimal `spec: {image: ...}` is a full working mesh.
Cross-field rules are checked twice, as CEL in the CRD (api/schema.py) and by the validators below, so
a mesh that bypassed admission (or an older CRD) still fails with the same field-naming message.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from actormesh_operator.api.actors import (
    ActorAutoscaling,
    ActorAutoscalingOverride,
    ActorDefaults,
    ActorGroup,
    ActorOverride,
    ActorsSpec,
    ActorWorkload,
    CPUAutoscaling,
    EffectiveActorSpec,
)
from actormesh_operator.api.addresses import CIDR, CheckedString, url_pattern
from actormesh_operator.api.infra import (
    BackupStorage,
    HistoryBackupSpec,
    HistorySpec,
    JetStreamLimits,
    NatsExternal,
    NatsSpec,
    NatsStorage,
    NatsTLS,
    RedisExternal,
    RedisSpec,
)
from actormesh_operator.api.monitoring import MonitoringSpec, PrometheusRuleSpec, ScrapeSpec, TracingSpec
from actormesh_operator.api.routing import GatewayParentRef, HTTPRouteSpec
from actormesh_operator.api.runtime import (
    REQUEST_TIMEOUT_BELOW_DEADLINE,
    EnvList,
    EnvVar,
    EnvVarSource,
    KeyRef,
    RuntimeSpec,
    unique_env_names,
)
from actormesh_operator.api.scheduling import Scheduling, Toleration
from actormesh_operator.api.types import (
    DNS1035_LABEL,
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    SECRET_KEY,
    ApiModel,
    LabelKey,
    LabelValue,
    LocalObjectReference,
    Quantity,
    Resources,
    SecretKeyRef,
    Storage,
)
from actormesh_runtime.catalog import ACTORS

__all__ = [
    "REQUEST_TIMEOUT_BELOW_DEADLINE",
    "ActorAutoscaling",
    "ActorAutoscalingOverride",
    "ActorDefaults",
    "ActorGroup",
    "ActorMesh",
    "ActorMeshSpec",
    "ActorOverride",
    "ActorWorkload",
    "ActorsSpec",
    "BackupStorage",
    "CPUAutoscaling",
    "CommerceApisSpec",
    "EffectiveActorSpec",
    "EnvVar",
    "EnvVarSource",
    "GatewayAuthSpec",
    "GatewayParentRef",
    "GatewaySpec",
    "HTTPRouteSpec",
    "HistoryBackupSpec",
    "HistorySpec",
    "IngressSpec",
    "InvalidSpec",
    "JetStreamLimits",
    "KeyRef",
    "LLMSpec",
    "LocalObjectReference",
    "MockServicesSpec",
    "MonitoringSpec",
    "NatsExternal",
    "NatsSpec",
    "NatsStorage",
    "NatsTLS",
    "NetworkPolicySpec",
    "PersistenceSpec",
    "PodDisruptionBudgetSpec",
    "PrometheusRuleSpec",
    "Quantity",
    "RedisExternal",
    "RedisSpec",
    "Resources",
    "RuntimeSpec",
    "Scheduling",
    "ScrapeSpec",
    "SecretKeyRef",
    "ServiceSpec",
    "Storage",
    "Toleration",
    "TracingSpec",
]

HTTP_URL_PATTERN = "^" + url_pattern("https?", r"([/?#]\S*)?") + "$"
HttpUrl = Annotated[
    str,
    CheckedString(
        HTTP_URL_PATTERN,
        "must be an http:// or https:// URL: a host name or [IPv6 address], an optional port up to 65535 and"
        " path, e.g. http://orders.shop.svc:8080/v1",
        max_length=2048,
    ),
]
Cidr = Annotated[
    str,
    CheckedString(
        CIDR,
        "must be an IPv4 or IPv6 address range, address/prefix, e.g. 203.0.113.0/24 or 2001:db8::/32",
        max_length=64,
    ),
]
CORS_ORIGIN_PATTERN = r"^(\*|https?://[^\s/]+)$"
QUEUE_LAG_NEEDS_MANAGED_NATS = (
    "spec.actors.*.autoscaling.mode: queueLag needs the managed NATS (KEDA reads its monitoring"
    " endpoint), so it cannot be combined with spec.nats.external; use mode cpu"
)
ANONYMOUS_WITH_KEY = (
    "spec.gateway.anonymous cannot be true when spec.gateway.authSecretRef is set; choose one"
)
PAUSED_ANNOTATION = "actormesh.io/paused"
"""`"true"` stops the operator from writing the mesh's children (hand work during an incident)."""
MAX_NAME_LENGTH = 40
"""Longest mesh name: keeps `<mesh>-execution-coordinator` and StatefulSet names readable (no hash)."""


def is_paused(annotations: Mapping[str, Any]) -> bool:
    """Whether metadata.annotations pause the mesh (`"true"`, any case; anything else does not)."""
    return str(annotations.get(PAUSED_ANNOTATION, "")).strip().lower() == "true"


class InvalidSpec(ValueError):
    """The ActorMesh body does not validate; the message names every offending field (`spec.x.y: ...`)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


# --- llm ------------------------------------------------------------------------------------------


class LLMSpec(ApiModel):
    """LLM used by the intent analyzer and the response generator (absent: rules only)."""

    model: str = Field(min_length=1, max_length=256)
    """litellm model name, e.g. `gpt-4o-mini` or `ollama/llama3`."""
    api_base: HttpUrl | None = None
    """Any OpenAI-compatible endpoint (unset: the provider's default)."""
    api_key_secret_ref: SecretKeyRef | None = None
    """Secret key holding the API key (unset: no key, e.g. a local model)."""
    temperature: float = Field(0.3, ge=0, le=2)
    """Sampling temperature."""
    timeout_seconds: int = Field(10, ge=1, le=600)
    """Per-call timeout; after it the actor falls back to rules and templates."""


# --- gateway ----------------------------------------------------------------------------------------


class ServiceSpec(ApiModel):
    """The gateway's Service."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    port: int = Field(80, ge=1, le=65535)
    """Service port (the container listens on 8000)."""


class IngressSpec(ApiModel):
    """An optional Ingress in front of the gateway Service."""

    enabled: bool = False
    host: str | None = Field(None, max_length=253, pattern=DNS1123_SUBDOMAIN)
    """Required when enabled."""
    class_name: str | None = Field(None, max_length=253)
    """IngressClass (unset: the cluster default)."""
    tls_secret_name: str | None = Field(None, max_length=253, pattern=DNS1123_SUBDOMAIN)
    """TLS certificate Secret (unset: plain HTTP)."""
    annotations: dict[LabelKey, str] = Field(default_factory=dict, max_length=64)
    """Extra annotations for the Ingress, e.g. for cert-manager."""

    @model_validator(mode="after")
    def _host_when_enabled(self) -> IngressSpec:
        if self.enabled and not self.host:
            raise ValueError(
                "spec.gateway.ingress.host is required when spec.gateway.ingress.enabled is true"
            )
        return self


class GatewayAuthSpec(ApiModel):
    """Optional claims every customer token must carry (checked by the gateway)."""

    issuer: str | None = Field(None, min_length=1, max_length=1024)
    """Required `iss` claim (JWT_ISSUER), e.g. your storefront's URL."""
    audience: str | None = Field(None, min_length=1, max_length=1024)
    """Required `aud` claim (JWT_AUDIENCE), e.g. `actormesh`."""
    previous_key: str | None = Field(None, min_length=1, max_length=253, pattern=SECRET_KEY)
    """Key, in the same Secret as the signing key, holding the key being rotated out (JWT_PREVIOUS_SECRET):
    tokens it signed stay valid while it is set. Optional in the Secret: absent means no rotation."""


class GatewaySpec(ApiModel):
    """The HTTP/WebSocket gateway: chat API, history API and the web page."""

    replicas: int = Field(1, ge=0, le=100)
    """Replicas when autoscaling is off."""
    service: ServiceSpec = Field(default_factory=ServiceSpec)
    ingress: IngressSpec = Field(default_factory=IngressSpec)
    http_route: HTTPRouteSpec = Field(default_factory=HTTPRouteSpec)
    """An HTTPRoute (Gateway API) to the gateway Service; needs the Gateway API CRDs."""
    auth_secret_ref: SecretKeyRef | None = None
    """Secret key holding the JWT signing key, at least 32 bytes (unset: the operator generates one into
    the Secret `<mesh>-gateway-auth`, key `jwt-secret`, unless `anonymous` is true)."""
    anonymous: bool = False
    """Demo only: no token needed, anyone who reaches the gateway may act as any customer. The mesh
    carries a warning condition and Event while this is true."""
    auth: GatewayAuthSpec = Field(default_factory=GatewayAuthSpec)
    cors_origins: list[Annotated[str, Field(pattern=CORS_ORIGIN_PATTERN)]] = Field(
        default_factory=list, max_length=64
    )
    """Browser origins allowed to call the API."""
    autoscaling: CPUAutoscaling = Field(default_factory=CPUAutoscaling)
    resources: Resources = Field(
        default_factory=lambda: Resources(
            requests={"cpu": "100m", "memory": "128Mi"}, limits={"memory": "256Mi"}
        )
    )
    env: EnvList
    """Extra environment variables of the gateway container (an escape hatch; they win over the
    operator's own of the same name)."""

    @model_validator(mode="after")
    def _unique_env(self) -> GatewaySpec:
        unique_env_names(self.env, "spec.gateway.env")
        return self

    @model_validator(mode="after")
    def _min_le_max(self) -> GatewaySpec:
        a = self.autoscaling
        if a.min_replicas > a.max_replicas:
            raise ValueError(
                "spec.gateway.autoscaling.minReplicas must be less than or equal to"
                " spec.gateway.autoscaling.maxReplicas"
            )
        return self

    @model_validator(mode="after")
    def _anonymous_or_key(self) -> GatewaySpec:
        if self.anonymous and self.auth_secret_ref is not None:
            raise ValueError(ANONYMOUS_WITH_KEY)
        return self


# --- small switches ---------------------------------------------------------------------------------


class MockServicesSpec(ApiModel):
    """The demo customer, orders and tracking APIs (on by default so a minimal mesh answers questions)."""

    enabled: bool = True


class CommerceApisSpec(ApiModel):
    """Real commerce APIs; each URL set here replaces the mock service's for that API."""

    customer_url: HttpUrl | None = None
    orders_url: HttpUrl | None = None
    tracking_url: HttpUrl | None = None


DEFAULT_EGRESS_EXCEPT = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "127.0.0.0/8",
    "0.0.0.0/8",
    "198.18.0.0/15",
    "fc00::/7",
    "fe80::/10",
)
"""Private (RFC 1918), carrier-grade NAT, link-local (cloud metadata at 169.254.169.254), loopback and the
benchmarking range some clusters use for pods and Services: wherever a cluster's own addresses live."""

EVERY_ADDRESS = (
    "spec.networkPolicy.egressExcept must not contain 0.0.0.0/0 or ::/0: the internet-facing egress allows"
    " 0.0.0.0/0 and ::/0 minus these ranges, and Kubernetes refuses an exception equal to the range"
)


class NetworkPolicySpec(ApiModel):
    """Default-deny NetworkPolicies plus only the flows the mesh needs (secure by default)."""

    enabled: bool = True
    egress_except: list[Cidr] = Field(default_factory=lambda: list(DEFAULT_EGRESS_EXCEPT), max_length=64)
    """Address ranges the internet-facing egress (the LLM actors; a trace collector outside the cluster)
    never reaches. The default covers private, link-local and loopback ranges; list your cluster's pod
    and Service CIDRs too if they are public addresses. Replaces the default when set; a range is read as
    its network (`10.1.2.3/8` is 10.0.0.0/8), and `0.0.0.0/0` or `::/0` is refused. External NATS,
    Redis and commerce API URLs are allowed on their ports to any pod or address (they may live inside
    the cluster or on private addresses) except the cloud metadata ranges (link-local and the like)."""
    keda_namespace: str = Field("keda", max_length=63, pattern=DNS1123_LABEL)
    """Namespace of KEDA's operator: the only one allowed to read the NATS monitoring port."""

    @field_validator("egress_except")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        """Each range as its network, the way Kubernetes reads an ipBlock (`10.1.2.3/8` → 10.0.0.0/8)."""
        networks = []
        for cidr in value:
            try:
                network = ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:  # the pattern already refuses these; a safety net for its gaps
                raise ValueError(
                    f"spec.networkPolicy.egressExcept: {cidr!r} is not a network ({exc})"
                ) from None
            if network.prefixlen == 0:
                raise ValueError(EVERY_ADDRESS)
            networks.append(str(network))
        return networks


class PodDisruptionBudgetSpec(ApiModel):
    """PodDisruptionBudgets for NATS, the gateway and every actor with more than one replica."""

    enabled: bool = True


class PersistenceSpec(ApiModel):
    """What happens to the PersistentVolumeClaims (NATS, Redis, history) when the mesh is deleted."""

    reclaim_policy: Literal["Retain", "Delete"] = "Retain"
    """Retain: PVCs outlive the mesh (safe default); Delete: they go with it."""


# --- the whole spec ---------------------------------------------------------------------------------


class ActorMeshSpec(ApiModel):
    """Desired state of one support-agent mesh. Only `image` is required."""

    image: str = Field(min_length=1, max_length=1024)
    """Runtime image (`actormesh`), used by actors, gateway, history and mocks."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list,
        # As in a Pod: one entry per name (server-side apply refuses a pod template repeating one).
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    llm: LLMSpec | None = None
    """LLM settings (absent: rules and templates only)."""
    gateway: GatewaySpec = Field(default_factory=GatewaySpec)
    actors: ActorsSpec = Field(default_factory=ActorsSpec)
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)
    """Runtime settings of every pod (log level, timeouts, cache TTL, gateway limits)."""
    nats: NatsSpec = Field(default_factory=NatsSpec)
    redis: RedisSpec = Field(default_factory=RedisSpec)
    history: HistorySpec = Field(default_factory=HistorySpec)
    mock_services: MockServicesSpec = Field(default_factory=MockServicesSpec)
    commerce_apis: CommerceApisSpec = Field(default_factory=CommerceApisSpec)
    network_policy: NetworkPolicySpec = Field(default_factory=NetworkPolicySpec)
    pod_disruption_budget: PodDisruptionBudgetSpec = Field(default_factory=PodDisruptionBudgetSpec)
    persistence: PersistenceSpec = Field(default_factory=PersistenceSpec)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    scheduling: Scheduling = Field(default_factory=Scheduling)
    extra_labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=64)
    """Labels added to every child object and pod (`app.kubernetes.io/*` is reserved)."""
    extra_annotations: dict[LabelKey, str] = Field(default_factory=dict, max_length=64)
    """Annotations added to every child object and pod."""

    @model_validator(mode="after")
    def _queue_lag_needs_managed_nats(self) -> ActorMeshSpec:
        actors = self.actors
        overrides = [actors.override(a.name).autoscaling for a in ACTORS]
        overrides += [g.autoscaling for g in actors.groups]
        modes = [actors.defaults.autoscaling.mode, *(o.mode for o in overrides if o is not None)]
        if self.nats.external is not None and "queueLag" in modes:
            raise ValueError(QUEUE_LAG_NEEDS_MANAGED_NATS)
        return self

    @field_validator("image_pull_secrets")
    @classmethod
    def _unique_pull_secrets(cls, value: list[LocalObjectReference]) -> list[LocalObjectReference]:
        names = [s.name for s in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"spec.imagePullSecrets: duplicate name {', '.join(repeated)}")
        return value

    @model_validator(mode="after")
    def _reserved_labels(self) -> ActorMeshSpec:
        reserved = sorted(k for k in self.extra_labels if k.startswith("app.kubernetes.io/"))
        if reserved:
            raise ValueError(f"spec.extraLabels must not set app.kubernetes.io/ keys: {', '.join(reserved)}")
        return self

    def secret_refs(self) -> dict[str, SecretKeyRef]:
        """Every Secret key the mesh's pods read, by field path; the reconcile layer checks they exist."""
        refs = {
            "spec.llm.apiKeySecretRef": self.llm.api_key_secret_ref if self.llm else None,
            "spec.gateway.authSecretRef": self.gateway.auth_secret_ref,
        }
        redis = self.redis.password_ref()
        if redis is not None:
            refs[redis[0]] = redis[1]
        return {path: ref for path, ref in refs.items() if ref is not None}

    def queue_lag_actors(self) -> list[EffectiveActorSpec]:
        """Enabled actors asking for KEDA queue-lag autoscaling (needs the KEDA CRDs)."""
        return [
            a
            for a in self.actors.enabled_actors()
            if a.autoscaling.enabled and a.autoscaling.mode == "queueLag"
        ]


class ActorMesh(BaseModel):
    """One ActorMesh object: the metadata the builders need plus the validated spec."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=DNS1035_LABEL, max_length=MAX_NAME_LENGTH)
    """Every child Service is `<name>-...`, and a Service name must start with a letter."""
    namespace: str
    uid: str = ""
    generation: int = 0
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    spec: ActorMeshSpec

    @property
    def paused(self) -> bool:
        return is_paused(self.annotations)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ActorMesh:
        """Build from a kopf body or a plain dict. Raises InvalidSpec naming the fields (`spec.x.y`)."""
        meta = body.get("metadata") or {}
        try:
            return cls(
                name=meta.get("name", ""),
                namespace=meta.get("namespace") or "default",
                uid=meta.get("uid") or "",
                generation=meta.get("generation") or 0,
                labels=dict(meta.get("labels") or {}),
                annotations=dict(meta.get("annotations") or {}),
                spec=ActorMeshSpec.model_validate(dict(body.get("spec") or {})),
            )
        except ValidationError as exc:
            if exc.title != ActorMeshSpec.__name__:
                raise InvalidSpec(
                    [f"metadata.{_describe(e).removeprefix('spec.')}" for e in exc.errors()]
                ) from exc
            raise InvalidSpec([_describe(e) for e in exc.errors()]) from exc


def _describe(error: Any) -> str:
    where = ".".join(["spec", *(str(p) for p in error["loc"])])
    message = str(error["msg"]).removeprefix("Value error, ")
    # Our own validators already name the field; pydantic's generic ones get the path prefixed.
    if message.startswith("spec."):
        return message
    return f"{where}: {message}"

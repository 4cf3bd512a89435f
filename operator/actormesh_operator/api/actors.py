"""`spec.actors`: shared defaults, one override per actor, and the merge the builders read.

Part of the spec model (re-exported by `api/spec.py`); `ActorsSpec.effective(name)` is what the actor,
autoscaling and disruption builders call instead of reading defaults and overrides themselves.
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from actormesh_operator.api.runtime import EnvList, EnvVar, LogLevel, unique_env_names
from actormesh_operator.api.types import DNS1123_LABEL, ApiModel, Resources
from actormesh_runtime.catalog import ACTORS, ACTORS_BY_NAME, ActorInfo, ActorName


class CPUAutoscaling(ApiModel):
    """A HorizontalPodAutoscaler on CPU. When enabled, the HPA owns `replicas` (the operator omits it)."""

    enabled: bool = False
    min_replicas: int = Field(1, ge=1, le=1000)
    max_replicas: int = Field(5, ge=1, le=1000)
    target_cpu_utilization_percentage: int = Field(80, ge=1, le=100, alias="targetCPUUtilizationPercentage")
    """Average CPU utilization (of requests) the HPA aims for."""


class ActorAutoscaling(CPUAutoscaling):
    """Autoscaling of one actor: on CPU (HPA) or on its queue lag (KEDA ScaledObject, needs the KEDA CRDs)."""

    mode: Literal["cpu", "queueLag"] = "cpu"
    """`cpu`: a HorizontalPodAutoscaler; `queueLag`: a KEDA ScaledObject on the actor's JetStream consumer."""
    lag_threshold: int = Field(10, ge=1, le=1_000_000)
    """queueLag mode: pending messages per replica that trigger a scale-up."""


class ActorAutoscalingOverride(ApiModel):
    """One actor's autoscaling changes; every field left out comes from `spec.actors.defaults.autoscaling`."""

    enabled: bool | None = None
    min_replicas: int | None = Field(None, ge=1, le=1000)
    max_replicas: int | None = Field(None, ge=1, le=1000)
    target_cpu_utilization_percentage: int | None = Field(
        None, ge=1, le=100, alias="targetCPUUtilizationPercentage"
    )
    mode: Literal["cpu", "queueLag"] | None = None
    lag_threshold: int | None = Field(None, ge=1, le=1_000_000)


def _default_actor_resources() -> Resources:
    return Resources(requests={"cpu": "50m", "memory": "128Mi"}, limits={"memory": "256Mi"})


def _default_llm_actor_resources() -> Resources:
    # litellm alone adds ~150 MiB: an LLM actor measured 190-197 MiB in the runtime image, too close
    # to the plain actors' 256Mi limit. Used only when neither the defaults nor the actor set resources.
    return Resources(requests={"cpu": "100m", "memory": "256Mi"}, limits={"memory": "512Mi"})


class ActorDefaults(ApiModel):
    """Settings every actor gets unless its own entry overrides them."""

    enabled: bool = True
    replicas: int = Field(1, ge=0, le=100)
    """Replicas when autoscaling is off."""
    resources: Resources = Field(default_factory=_default_actor_resources)
    """Left unset, actors that may call an LLM get more memory (256Mi request, 512Mi limit)."""
    concurrency: int = Field(8, ge=1, le=1024)
    """In-flight messages per replica."""
    autoscaling: ActorAutoscaling = Field(default_factory=ActorAutoscaling)

    @model_validator(mode="after")
    def _min_le_max(self) -> ActorDefaults:
        if self.autoscaling.min_replicas > self.autoscaling.max_replicas:
            raise ValueError(
                "spec.actors.defaults.autoscaling.minReplicas must be less than or equal to"
                " spec.actors.defaults.autoscaling.maxReplicas"
            )
        return self


class ProcessSettings(ApiModel):
    """Settings of one actor process and its Deployment; every field left out is taken from
    `spec.actors.defaults`. `autoscaling` merges field by field onto the defaults; `resources` replaces
    them whole. Shared by a single actor's entry (`ActorOverride`) and a group (`ActorGroup`)."""

    replicas: int | None = Field(None, ge=0, le=100)
    resources: Resources | None = None
    concurrency: int | None = Field(None, ge=1, le=1024)
    autoscaling: ActorAutoscalingOverride | None = None
    log_level: LogLevel | None = None
    """The process's log level (unset: `spec.runtime.logLevel`)."""
    processing_timeout_seconds: float | None = Field(None, gt=0, le=600)
    """Budget for one message (unset: `spec.runtime.processingTimeoutSeconds`)."""
    env: EnvList
    """Extra environment variables of the container (an escape hatch; they win over the operator's
    own of the same name). `valueFrom.secretKeyRef` Secrets are checked and hashed like any other
    referenced Secret."""


PROCESS_FIELDS: tuple[str, ...] = tuple((f.alias or n) for n, f in ProcessSettings.model_fields.items())
"""camelCase names of the per-process settings: set on a group, never on one of its members."""


class ActorOverride(ProcessSettings):
    """Per-actor settings; every field left out is taken from `spec.actors.defaults`. An actor listed
    in `spec.actors.groups` takes its process settings from its group: only `enabled` may be set here.
    """

    enabled: bool | None = None


MAX_GROUP_NAME = 30
"""Keeps `<mesh>-<group>` readable; the name is also the pods' `app.kubernetes.io/component`."""
SPEC_KEYS: tuple[str, ...] = tuple(a.spec_key for a in ACTORS)
RESERVED_COMPONENTS: tuple[str, ...] = (
    "nats", "redis", "history", "gateway", "mocks", "runtime", "network", "monitoring", "metrics",
)  # fmt: skip
"""Component label values of the operator's other children (builders/labels.py; a unit test checks)."""
RESERVED_GROUP_NAMES: tuple[str, ...] = (*(a.k8s_name for a in ACTORS), *RESERVED_COMPONENTS)
"""A group named like an actor or a component would share its Deployment name or pod selector."""
ActorKey = Annotated[str, Field(json_schema_extra={"enum": list(SPEC_KEYS)})]


class ActorGroup(ProcessSettings):
    """Actors co-located in one Deployment: one process runs `actormesh actor A,B,...` and hands an
    envelope from one member to the next in memory (hop fusion, docs/bus.md) instead of through NATS.
    Cheaper (fewer hops, less CPU) but the members scale, fail and roll out together (docs/operator.md).
    """

    name: str = Field(min_length=1, max_length=MAX_GROUP_NAME, pattern=DNS1123_LABEL)
    """DNS label naming the Deployment (`<mesh>-<name>`) and its pods' component label; not an actor's
    name (`sentiment-analyzer`) nor one of the operator's components (`gateway`, `nats`, ...)."""
    actors: list[ActorKey] = Field(
        min_length=2, max_length=len(ACTORS), json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    """Members, by their key under `spec.actors` (e.g. `decisionRouter`); an actor is in at most one
    group. A member's own entry may set only `enabled` (a disabled member is left out of the process)."""

    @field_validator("actors")
    @classmethod
    def _known_and_unique(cls, value: list[str]) -> list[str]:
        unknown = [k for k in value if k not in SPEC_KEYS]
        if unknown:
            raise ValueError(f"unknown actor {unknown[0]!r} (one of: {', '.join(SPEC_KEYS)})")
        if len(set(value)) != len(value):
            raise ValueError("an actor is listed twice")
        return value

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_GROUP_NAMES:
            raise ValueError(GROUP_NAME_RESERVED)
        return value


GROUP_NAME_RESERVED = (
    "spec.actors.groups[].name must not be an actor's name (e.g. decision-router) or one of the"
    f" operator's components ({', '.join(RESERVED_COMPONENTS)})"
)
ACTOR_IN_TWO_GROUPS = "spec.actors.groups: an actor may belong to at most one group"
GROUP_NAMES_UNIQUE = "spec.actors.groups: group names must be unique"


def member_settings_message(spec_key: str) -> str:
    return (
        f"spec.actors.{spec_key}: an actor in spec.actors.groups takes {', '.join(PROCESS_FIELDS)}"
        " from its group; set them on the group (only enabled may be set here)"
    )


class EffectiveActorSpec(BaseModel):
    """One actor's settings after merging its override (or its group's settings) onto the defaults;
    what the builders read."""

    model_config = ConfigDict(frozen=True)

    info: ActorInfo
    enabled: bool
    replicas: int
    resources: Resources
    concurrency: int
    autoscaling: ActorAutoscaling
    log_level: LogLevel | None = None
    """Only the actor's (or group's) own value; the mesh-wide value is `spec.runtime.logLevel`."""
    processing_timeout_seconds: float | None = None
    """Only the actor's (or group's) own value; the mesh-wide one is
    `spec.runtime.processingTimeoutSeconds`."""
    env: tuple[EnvVar, ...] = ()
    group: str | None = None
    """The group whose process runs this actor (None: its own Deployment)."""
    settings_path: str = ""
    """Where its process settings are set: `spec.actors.<key>` or `spec.actors.groups[<i>]`."""

    @property
    def name(self) -> ActorName:
        return self.info.name


class ActorWorkload(BaseModel):
    """One actor Deployment: a single actor, or a group's enabled members in one process."""

    model_config = ConfigDict(frozen=True)

    component: str
    """The Deployment's name suffix and `app.kubernetes.io/component`: the actor's k8s_name or the group's."""
    members: tuple[EffectiveActorSpec, ...]
    """Enabled actors the process runs, in catalog order; all share the process settings below."""

    @property
    def group(self) -> str | None:
        return self.members[0].group

    @property
    def process(self) -> EffectiveActorSpec:
        """The process and Deployment settings (identical for every member)."""
        return self.members[0]

    @property
    def infos(self) -> tuple[ActorInfo, ...]:
        return tuple(m.info for m in self.members)

    def any_member(self, attribute: str) -> bool:
        """Whether a member `uses_llm`, `uses_redis` or `calls_commerce_apis` (the process needs it)."""
        return any(getattr(m.info, attribute) for m in self.members)


class ActorsSpec(ApiModel):
    """The nine actors: shared defaults, an optional override per actor (camelCase actor name), and
    optional groups of actors co-located in one Deployment."""

    defaults: ActorDefaults = Field(default_factory=ActorDefaults)
    sentiment_analyzer: ActorOverride = Field(default_factory=ActorOverride)
    intent_analyzer: ActorOverride = Field(default_factory=ActorOverride)
    context_retriever: ActorOverride = Field(default_factory=ActorOverride)
    decision_router: ActorOverride = Field(default_factory=ActorOverride)
    execution_coordinator: ActorOverride = Field(default_factory=ActorOverride)
    response_generator: ActorOverride = Field(default_factory=ActorOverride)
    guardrail_validator: ActorOverride = Field(default_factory=ActorOverride)
    escalation_router: ActorOverride = Field(default_factory=ActorOverride)
    response_aggregator: ActorOverride = Field(default_factory=ActorOverride)
    groups: list[ActorGroup] = Field(
        default_factory=list,
        max_length=len(ACTORS) // 2,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """Actors co-located in one Deployment each (unset: one Deployment per actor, the default). See
    docs/operator.md ("Actor groups") for the trade-off."""
    direct_hops: bool = False
    """Hand the envelope from one actor process to the next over core NATS instead of through the
    stream (`DIRECT_HOPS`, docs/bus.md "Direct hops"); every actor process of the mesh gets the same
    setting. Only the chain's first JetStream delivery is acked, once, when the chain ends (by its
    own actor, asked with a sealed settle: docs/security.md): fewer JetStream messages per
    conversation and 1.1-1.5x the throughput with one process per actor (docs/benchmarks.md), but no
    per-hop durability: a crashed process restarts the chain from its first step (idempotency keys
    still hold; a failed step is retried in its own process).
    Adds every actor's direct subject to the actors' NATS permissions. Changing it rolls the NATS
    servers and every actor Deployment (docs/operator.md "Direct hops")."""

    def override(self, name: ActorName | str) -> ActorOverride:
        # Field names are the actors' snake_case names; the camelCase alias is catalog.spec_key.
        value: ActorOverride = getattr(self, ActorName(name).value)
        return value

    def group_of(self, name: ActorName | str) -> tuple[int, ActorGroup] | None:
        """(index, group) of the group running this actor, or None."""
        key = ACTORS_BY_NAME[ActorName(name)].spec_key
        return next(((i, g) for i, g in enumerate(self.groups) if key in g.actors), None)

    def effective(self, name: ActorName | str) -> EffectiveActorSpec:
        """Defaults with this actor's override (or its group's settings) applied. Raises ValueError if
        min > max after merging."""
        info = ACTORS_BY_NAME[ActorName(name)]
        d, o = self.defaults, self.override(name)
        found = self.group_of(info.name)
        source: ProcessSettings = o if found is None else found[1]
        where = f"spec.actors.{info.spec_key}" if found is None else f"spec.actors.groups[{found[0]}]"
        autoscaling = d.autoscaling
        if source.autoscaling is not None:
            changes = source.autoscaling.model_dump(exclude_none=True)
            autoscaling = ActorAutoscaling.model_validate({**d.autoscaling.model_dump(), **changes})
        if autoscaling.min_replicas > autoscaling.max_replicas:
            raise ValueError(
                f"{where}.autoscaling.minReplicas ({autoscaling.min_replicas})"
                f" must be less than or equal to maxReplicas ({autoscaling.max_replicas})"
                " (after merging spec.actors.defaults.autoscaling)"
            )
        members = [info] if found is None else [i for i in ACTORS if i.spec_key in found[1].actors]
        return EffectiveActorSpec(
            info=info,
            enabled=d.enabled if o.enabled is None else o.enabled,
            replicas=d.replicas if source.replicas is None else source.replicas,
            resources=self._resources(any(m.uses_llm for m in members), d, source),
            concurrency=d.concurrency if source.concurrency is None else source.concurrency,
            autoscaling=autoscaling,
            log_level=source.log_level,
            processing_timeout_seconds=source.processing_timeout_seconds,
            env=tuple(source.env),
            group=None if found is None else found[1].name,
            settings_path=where,
        )

    @staticmethod
    def _resources(uses_llm: bool, d: ActorDefaults, source: ProcessSettings) -> Resources:
        if source.resources is not None:
            return source.resources
        if uses_llm and "resources" not in d.model_fields_set:
            return _default_llm_actor_resources()
        return d.resources

    def all_effective(self) -> list[EffectiveActorSpec]:
        """Every actor in catalog order, enabled or not (builders delete the disabled ones)."""
        return list(self._all_effective)

    @cached_property
    def _all_effective(self) -> tuple[EffectiveActorSpec, ...]:
        # The builders and the status ask about eight times per reconcile; the spec is frozen, and the
        # cached value is neither a field nor compared (pydantic ignores cached properties).
        return tuple(self.effective(a.name) for a in ACTORS)

    def enabled_actors(self) -> list[EffectiveActorSpec]:
        return [a for a in self.all_effective() if a.enabled]

    def workloads(self) -> list[ActorWorkload]:
        """The actor Deployments: one per enabled ungrouped actor (catalog order), then one per group
        with an enabled member (spec order). A group whose members are all disabled has none."""
        enabled = self.enabled_actors()
        out = [ActorWorkload(component=a.info.k8s_name, members=(a,)) for a in enabled if a.group is None]
        for group in self.groups:
            members = tuple(a for a in enabled if a.group == group.name)
            if members:
                out.append(ActorWorkload(component=group.name, members=members))
        return out

    @model_validator(mode="after")
    def _groups_valid(self) -> ActorsSpec:
        if len({g.name for g in self.groups}) != len(self.groups):
            raise ValueError(GROUP_NAMES_UNIQUE)
        grouped = [key for g in self.groups for key in g.actors]
        if len(set(grouped)) != len(grouped):
            raise ValueError(ACTOR_IN_TWO_GROUPS)
        for info in ACTORS:
            own = self.override(info.name).model_dump(exclude_none=True, exclude_defaults=True)
            if info.spec_key in grouped and set(own) - {"enabled"}:
                raise ValueError(member_settings_message(info.spec_key))
        return self

    @model_validator(mode="after")
    def _merged_autoscaling_valid(self) -> ActorsSpec:
        self.all_effective()
        return self

    @model_validator(mode="after")
    def _unique_env(self) -> ActorsSpec:
        for info in ACTORS:
            unique_env_names(self.override(info.name).env, f"spec.actors.{info.spec_key}.env")
        for index, group in enumerate(self.groups):
            unique_env_names(group.env, f"spec.actors.groups[{index}].env")
        return self

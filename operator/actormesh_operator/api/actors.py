"""`spec.actors`: shared defaults, one override per actor, and the merge the builders read.

Part of the spec model (re-exported by `api/spec.py`); `ActorsSpec.effective(name)` is what the actor,
autoscaling and disruption builders call instead of reading defaults and overrides themselves.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from actormesh_operator.api.runtime import EnvList, EnvVar, LogLevel, unique_env_names
from actormesh_operator.api.types import ApiModel, Resources
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


class ActorOverride(ApiModel):
    """Per-actor settings; every field left out is taken from `spec.actors.defaults`.

    `autoscaling` merges field by field onto the defaults; `resources` replaces them whole.
    """

    enabled: bool | None = None
    replicas: int | None = Field(None, ge=0, le=100)
    resources: Resources | None = None
    concurrency: int | None = Field(None, ge=1, le=1024)
    autoscaling: ActorAutoscalingOverride | None = None
    log_level: LogLevel | None = None
    """This actor's log level (unset: `spec.runtime.logLevel`)."""
    processing_timeout_seconds: float | None = Field(None, gt=0, le=600)
    """This actor's budget for one message (unset: `spec.runtime.processingTimeoutSeconds`)."""
    env: EnvList
    """Extra environment variables of this actor's container (an escape hatch; they win over the
    operator's own of the same name). `valueFrom.secretKeyRef` Secrets are checked and hashed like any
    other referenced Secret."""


class EffectiveActorSpec(BaseModel):
    """One actor's settings after merging its override onto the defaults; what the builders read."""

    model_config = ConfigDict(frozen=True)

    info: ActorInfo
    enabled: bool
    replicas: int
    resources: Resources
    concurrency: int
    autoscaling: ActorAutoscaling
    log_level: LogLevel | None = None
    """Only the actor's own override; the mesh-wide value is `spec.runtime.logLevel`."""
    processing_timeout_seconds: float | None = None
    """Only the actor's own override; the mesh-wide value is `spec.runtime.processingTimeoutSeconds`."""
    env: tuple[EnvVar, ...] = ()

    @property
    def name(self) -> ActorName:
        return self.info.name


class ActorsSpec(ApiModel):
    """The nine actors: shared defaults plus an optional override per actor (camelCase actor name)."""

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

    def override(self, name: ActorName | str) -> ActorOverride:
        # Field names are the actors' snake_case names; the camelCase alias is catalog.spec_key.
        value: ActorOverride = getattr(self, ActorName(name).value)
        return value

    def effective(self, name: ActorName | str) -> EffectiveActorSpec:
        """Defaults with this actor's override applied. Raises ValueError if min > max after merging."""
        info = ACTORS_BY_NAME[ActorName(name)]
        d, o = self.defaults, self.override(name)
        autoscaling = d.autoscaling
        if o.autoscaling is not None:
            changes = o.autoscaling.model_dump(exclude_none=True)
            autoscaling = ActorAutoscaling.model_validate({**d.autoscaling.model_dump(), **changes})
        if autoscaling.min_replicas > autoscaling.max_replicas:
            raise ValueError(
                f"spec.actors.{info.spec_key}.autoscaling.minReplicas ({autoscaling.min_replicas})"
                f" must be less than or equal to maxReplicas ({autoscaling.max_replicas})"
                " (after merging spec.actors.defaults.autoscaling)"
            )
        return EffectiveActorSpec(
            info=info,
            enabled=d.enabled if o.enabled is None else o.enabled,
            replicas=d.replicas if o.replicas is None else o.replicas,
            resources=self._resources(info, d, o),
            concurrency=d.concurrency if o.concurrency is None else o.concurrency,
            autoscaling=autoscaling,
            log_level=o.log_level,
            processing_timeout_seconds=o.processing_timeout_seconds,
            env=tuple(o.env),
        )

    @staticmethod
    def _resources(info: ActorInfo, d: ActorDefaults, o: ActorOverride) -> Resources:
        if o.resources is not None:
            return o.resources
        if info.uses_llm and "resources" not in d.model_fields_set:
            return _default_llm_actor_resources()
        return d.resources

    def all_effective(self) -> list[EffectiveActorSpec]:
        """Every actor in catalog order, enabled or not (builders delete the disabled ones)."""
        return [self.effective(a.name) for a in ACTORS]

    def enabled_actors(self) -> list[EffectiveActorSpec]:
        return [a for a in self.all_effective() if a.enabled]

    @model_validator(mode="after")
    def _merged_autoscaling_valid(self) -> ActorsSpec:
        self.all_effective()
        return self

    @model_validator(mode="after")
    def _unique_env(self) -> ActorsSpec:
        for info in ACTORS:
            unique_env_names(self.override(info.name).env, f"spec.actors.{info.spec_key}.env")
        return self

"""`spec.runtime` and the `env` escape hatch: the runtime's own settings, set from the ActorMesh.

Part of the spec model (re-exported by `api/spec.py`). Every `RuntimeSpec` field is one field of the
runtime's `RuntimeSettings` (runtime/actormesh_runtime/settings.py), which owns the names, types and
defaults; `RUNTIME_FIELDS` says which, and tests/unit/test_api_runtime.py fails when a default, a type
or a bound here disagrees with the runtime (the operator may import only the runtime's catalog, so the
check is a test, not an import). The builders render a field into the runtime ConfigMap only when it
differs from the runtime's default, so adding a field never restarts a pod whose settings did not change.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from actormesh_operator.api.types import DNS1123_SUBDOMAIN, ApiModel
from actormesh_runtime.catalog import Env

C_IDENTIFIER = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
"""Kubernetes' rule for env var names (any printable name without `=` since 1.34; we keep the old one)."""

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
REQUEST_TIMEOUT_BELOW_DEADLINE = (
    "spec.runtime.requestTimeoutSeconds must be less than spec.runtime.conversationDeadlineSeconds"
    " (a conversation must be able to finish, and be stored, after its caller gave up)"
)

ONE_SOURCE = "valueFrom must set exactly one of secretKeyRef, configMapKeyRef, fieldRef"
VALUE_OR_SOURCE = "set value or valueFrom, not both"

RESERVED_ENV: tuple[str, ...] = (
    Env.GATEWAY_ANONYMOUS,
    Env.JWT_SECRET,
    Env.JWT_PREVIOUS_SECRET,
    Env.NATS_USER,
    Env.NATS_PASSWORD,
    Env.NATS_TOKEN,
    Env.DIRECT_HOPS,
)
"""Names `env` may not set: they decide who may talk to the mesh, so they come only from fields the
operator reports on (`spec.gateway.anonymous` puts a warning on the mesh; an `env` entry would not) and
from the per-component NATS users it generates (another component's user would carry its permissions),
or for an external NATS from `spec.nats.external.credentialsSecretRef` or `tokenSecretRef` (one place, in
every NATS client).
`DIRECT_HOPS` must be the same in every actor process and needs NATS permissions the operator grants
only for `spec.actors.directHops`: a process switched on alone would publish where its user may not."""
RESERVED_ENV_MESSAGE = (
    f"{', '.join(RESERVED_ENV)} are set by the operator: the gateway's auth from spec.gateway.anonymous"
    " and spec.gateway.authSecretRef, each component's NATS user from the users it generates (an"
    " external NATS's from spec.nats.external.credentialsSecretRef or tokenSecretRef), DIRECT_HOPS from"
    " spec.actors.directHops"
)


class RuntimeSpec(ApiModel):
    """Settings of every runtime pod (actors, gateway, history, mocks); each is one runtime env var."""

    log_level: LogLevel = "INFO"
    """Log level of every runtime process (`LOG_LEVEL`); per actor: `spec.actors.<name>.logLevel`."""
    log_format: Literal["json", "text"] = "json"
    """`json` for log collectors, `text` for reading with kubectl logs (`LOG_FORMAT`)."""
    cache_ttl_seconds: float = Field(300.0, gt=0, le=86400)
    """How long customer context stays cached (`CACHE_TTL`)."""
    api_timeout_seconds: float = Field(5.0, gt=0, le=300)
    """Per-call timeout to the commerce APIs (`API_TIMEOUT_S`)."""
    request_timeout_seconds: float = Field(30.0, gt=0, le=600)
    """Longest an HTTP or WebSocket caller waits for a reply (`REQUEST_TIMEOUT_S`); the gateway's
    termination grace period grows with it so a rollout lets waiting chats finish."""
    conversation_deadline_seconds: float = Field(120.0, gt=0, le=3600)
    """Deadline of one conversation through the actors (`CONVERSATION_DEADLINE_S`)."""
    processing_timeout_seconds: float = Field(20.0, gt=0, le=600)
    """One actor's budget for one message (`PROCESSING_TIMEOUT_S`); per actor:
    `spec.actors.<name>.processingTimeoutSeconds`."""
    max_message_chars: int = Field(4000, ge=1, le=100_000)
    """Longer chat messages get 413 (`MAX_MESSAGE_CHARS`)."""
    escalation_confidence_threshold: float = Field(0.45, ge=0, le=1)
    """Intent confidence below which decision_router hands over to a human
    (`ESCALATION_CONFIDENCE_THRESHOLD`)."""
    max_concurrent_requests: int = Field(100, ge=0, le=1_000_000)
    """HTTP requests one gateway replica serves at once, more get 503; 0 = no limit
    (`MAX_CONCURRENT_REQUESTS`)."""
    rate_limit_requests: int = Field(120, ge=0, le=1_000_000)
    """Requests per minute per principal (JWT subject, else client address) across all gateway
    replicas, more get 429; 0 = no limit (`RATE_LIMIT_REQUESTS`)."""

    @model_validator(mode="after")
    def _request_timeout_below_deadline(self) -> RuntimeSpec:
        if self.request_timeout_seconds >= self.conversation_deadline_seconds:
            raise ValueError(REQUEST_TIMEOUT_BELOW_DEADLINE)
        return self

    def env(self) -> dict[str, str]:
        """Every field as its runtime env var and value (the builders drop the runtime's defaults)."""
        return {RUNTIME_FIELDS[name]: env_value(getattr(self, name)) for name in RUNTIME_FIELDS}


RUNTIME_FIELDS: dict[str, str] = {
    "log_level": Env.LOG_LEVEL,
    "log_format": Env.LOG_FORMAT,
    "cache_ttl_seconds": Env.CACHE_TTL,
    "api_timeout_seconds": Env.API_TIMEOUT_S,
    "request_timeout_seconds": Env.REQUEST_TIMEOUT_S,
    "conversation_deadline_seconds": Env.CONVERSATION_DEADLINE_S,
    "processing_timeout_seconds": Env.PROCESSING_TIMEOUT_S,
    "max_message_chars": Env.MAX_MESSAGE_CHARS,
    "escalation_confidence_threshold": Env.ESCALATION_CONFIDENCE_THRESHOLD,
    "max_concurrent_requests": Env.MAX_CONCURRENT_REQUESTS,
    "rate_limit_requests": Env.RATE_LIMIT_REQUESTS,
}
"""`RuntimeSpec` field → the runtime env var (= `RuntimeSettings` field name, upper-cased) it sets."""

POD_DEFAULTS: dict[str, str] = {Env.LOG_FORMAT: "json"}
"""Where the pods deliberately differ from the runtime's defaults (which suit a terminal): JSON logs."""


def env_value(value: object) -> str:
    """A setting as the env var string the runtime parses."""
    # 300.0 → "300": the same spelling whether the user wrote 300 or 300.0, so no spurious roll.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- env: the escape hatch ------------------------------------------------------------------------


class KeyRef(ApiModel):
    """A key in a Secret or ConfigMap of the mesh's namespace (as in `core/v1.EnvVarSource`)."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    optional: bool | None = None
    """True: the pod starts without it (and the operator does not wait for it)."""


class FieldRef(ApiModel):
    """A field of the pod, e.g. `metadata.name` or `status.podIP`."""

    field_path: str = Field(min_length=1, max_length=256)
    api_version: str | None = None


class EnvVarSource(ApiModel):
    """Exactly one source."""

    secret_key_ref: KeyRef | None = None
    config_map_key_ref: KeyRef | None = None
    field_ref: FieldRef | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> EnvVarSource:
        if len(self.model_dump(exclude_none=True)) != 1:
            raise ValueError(ONE_SOURCE)
        return self


class EnvVar(ApiModel):
    """An extra environment variable (a `core/v1.EnvVar`); it wins over the operator's own of that name."""

    name: str = Field(min_length=1, max_length=256, pattern=C_IDENTIFIER)
    value: str | None = Field(None, max_length=32768)
    value_from: EnvVarSource | None = None

    @model_validator(mode="after")
    def _value_or_source(self) -> EnvVar:
        if self.value is not None and self.value_from is not None:
            raise ValueError(f"env {self.name}: {VALUE_OR_SOURCE}")
        if self.name in RESERVED_ENV:
            raise ValueError(f"env {self.name}: {RESERVED_ENV_MESSAGE}")
        return self


EnvList = Annotated[
    list[EnvVar],
    Field(
        default_factory=list,
        max_length=128,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    ),
]
"""An `env` list; names are unique (the CRD declares it a list-map keyed by name)."""


def unique_env_names(env: list[EnvVar], where: str) -> None:
    seen: set[str] = set()
    for var in env:
        if var.name in seen:
            raise ValueError(f"{where}: duplicate name {var.name!r}")
        seen.add(var.name)

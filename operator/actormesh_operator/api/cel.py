"""CEL validation rules of the ActorMesh CRD: the cross-field constraints the API server enforces.

`api/schema.py` attaches each rule at its path. Every message names the field so `kubectl apply`
tells the user what to fix. The same constraints are checked by the pydantic validators in
api/spec.py (for objects that never went through admission); tests/integration/test_crd_validation.py
checks these on a real API server. Defaults are not stored in the CRD, so every rule guards with
`has()` and falls back to the model's default.
"""

from __future__ import annotations

from dataclasses import dataclass

from actormesh_operator.api.actors import (
    ACTOR_IN_TWO_GROUPS,
    GROUP_NAME_RESERVED,
    PROCESS_FIELDS,
    RESERVED_GROUP_NAMES,
    ActorAutoscaling,
    member_settings_message,
)
from actormesh_operator.api.addresses import cel_string
from actormesh_operator.api.infra import (
    BACKUP_CLAIM_OR_STORAGE,
    MAX_FILE_STORE_TOO_BIG,
    NATS_PASSWORD_IN_URL,
    NATS_TWO_CREDENTIALS,
    NATS_URL_WITH_PASSWORD,
    REDIS_PASSWORD_IN_URL,
    REDIS_URL_WITH_PASSWORD,
    HistorySpec,
    NatsSpec,
    RedisSpec,
)
from actormesh_operator.api.monitoring import BOTH_MONITORS, HEADERS_NEED_ENDPOINT
from actormesh_operator.api.routing import ROUTE_NEEDS_PARENT
from actormesh_operator.api.runtime import (
    ONE_SOURCE,
    REQUEST_TIMEOUT_BELOW_DEADLINE,
    RESERVED_ENV,
    RESERVED_ENV_MESSAGE,
    VALUE_OR_SOURCE,
    RuntimeSpec,
)
from actormesh_operator.api.spec import (
    ANONYMOUS_WITH_KEY,
    EVERY_ADDRESS,
    MAX_NAME_LENGTH,
    QUEUE_LAG_NEEDS_MANAGED_NATS,
)
from actormesh_operator.api.types import (
    DNS1035_LABEL,
    DNS1123_SUBDOMAIN,
    LABEL_KEY,
    LABEL_KEY_PREFIX_MAX,
    POSITIVE_QUANTITY,
)
from actormesh_runtime.catalog import ACTORS


@dataclass(frozen=True)
class Rule:
    path: tuple[str, ...]
    """Where the rule sits, as property names below the schema it is attached to (`[]`: list items)."""
    rule: str
    message: str
    field_path: str | None = None
    """JSONPath (relative to `path`) the API server reports the error at."""
    optional_old_self: bool = False
    """Also run on create, with `oldSelf` an optional that has no value there (`oldSelf.hasValue()`)."""


def _opt(base: str, parts: list[str], fallback: str) -> str:
    """`base.a.b.c` if every step is set, else `fallback` (CEL errors on a missing key)."""
    guards = " && ".join(f"has({base}.{'.'.join(parts[: i + 1])})" for i in range(len(parts)))
    return f"({guards} ? {base}.{'.'.join(parts)} : {fallback})"


_MIN = str(ActorAutoscaling.model_fields["min_replicas"].default)
_MAX = str(ActorAutoscaling.model_fields["max_replicas"].default)


def _min_le_max(path: tuple[str, ...], field: str) -> Rule:
    return Rule(
        path,
        f"{_opt('self', ['minReplicas'], _MIN)} <= {_opt('self', ['maxReplicas'], _MAX)}",
        f"{field}.minReplicas must be less than or equal to {field}.maxReplicas",
        ".minReplicas",
    )


def _merged_min_le_max(key: str) -> Rule:
    """An actor's override merged onto the defaults must still have min <= max."""
    lo = _opt(
        "self",
        [key, "autoscaling", "minReplicas"],
        _opt("self", ["defaults", "autoscaling", "minReplicas"], _MIN),
    )
    hi = _opt(
        "self",
        [key, "autoscaling", "maxReplicas"],
        _opt("self", ["defaults", "autoscaling", "maxReplicas"], _MAX),
    )
    return Rule(
        ("actors",),
        f"!has(self.{key}) || !has(self.{key}.autoscaling) || {lo} <= {hi}",
        f"spec.actors.{key}.autoscaling.minReplicas must be less than or equal to maxReplicas"
        " (after merging spec.actors.defaults.autoscaling)",
        f".{key}.autoscaling",
    )


_STORAGE_DEFAULTS = {
    "nats": NatsSpec.model_fields["storage"].get_default(call_default_factory=True),
    "redis": RedisSpec.model_fields["storage"].get_default(call_default_factory=True),
    "history": HistorySpec.model_fields["storage"].get_default(call_default_factory=True),
}
_UNMANAGED = {
    "nats": "(has({x}.nats) && has({x}.nats.external))",
    "redis": "(has({x}.redis) && (has({x}.redis.external)"
    " || (has({x}.redis.enabled) && !{x}.redis.enabled)))",
}
"""When the component has no StatefulSet (and no claims) of ours: external or disabled."""


def _storage_value(x: str, component: str, field: str) -> str:
    """The effective value as a string: the field if set (a quantity may be an integer), else the default."""
    default = _STORAGE_DEFAULTS[component].model_dump(by_alias=True)[field] or ""
    guards = f"has({x}.{component}) && has({x}.{component}.storage) && has({x}.{component}.storage.{field})"
    value = f"{x}.{component}.storage.{field}"
    if field == "size":  # int-or-string
        value = f"string({value})"
    return f"({guards} ? {value} : '{default}')"


_VALID_STORAGE = {"size": POSITIVE_QUANTITY, "storageClassName": DNS1123_SUBDOMAIN}
"""What Kubernetes accepts in a claim; the schema refuses anything else since these rules were added."""


def _stored_invalid(component: str, field: str) -> str:
    """The old value is one Kubernetes refuses in a claim (stored before the schema refused it): no claim
    was ever made from it, so it may be corrected."""
    value = f"oldSelf.{component}.storage.{field}"
    guards = f"has(oldSelf.{component}) && has(oldSelf.{component}.storage) && has({value})"
    if field == "size":  # int-or-string; string() on the class would lose its maxLength (the cost bound)
        value = f"string({value})"
    return f"({guards} && !{value}.matches({cel_string(_VALID_STORAGE[field])}))"


def _immutable(component: str, field: str) -> Rule:
    """The effective value may not change while the component stays managed. A rule on the field itself
    (`self == oldSelf`) would miss removing or adding the field, which changes the effective value just
    the same, and the StatefulSet's claim templates cannot follow either way. A value Kubernetes refuses
    in a claim may still be corrected (`_stored_invalid`)."""
    same = f"{_storage_value('self', component, field)} == {_storage_value('oldSelf', component, field)}"
    same = f"{_stored_invalid(component, field)} || {same}"
    unmanaged = _UNMANAGED.get(component)
    rule = (
        same
        if unmanaged is None
        else f"{unmanaged.format(x='self')} || {unmanaged.format(x='oldSelf')} || {same}"
    )
    return Rule((), rule, f"spec.{component}.storage.{field} is immutable", f".{component}.storage.{field}")


def _backup_class_immutable() -> Rule:
    """The snapshots' own claim (backups on, no `existingClaim`) keeps its storage class: Kubernetes
    refuses to change a claim's, and the apply of every pass would be rejected. Its size may change:
    the operator asks for more (an expansion) and never for less (`reconcile.diff.claim_never_shrinks`)."""

    def own_claim(x: str) -> str:
        return f"(has({x}.enabled) && {x}.enabled && !has({x}.existingClaim))"

    def storage_class(x: str) -> str:
        return f"(has({x}.storage) && has({x}.storage.storageClassName) ? {x}.storage.storageClassName : '')"

    return Rule(
        ("history", "backup"),
        f"!({own_claim('self')} && {own_claim('oldSelf')})"
        f" || {storage_class('self')} == {storage_class('oldSelf')}",
        "spec.history.backup.storage.storageClassName is immutable while the operator's snapshot claim"
        " exists (Kubernetes cannot change a claim's class); to move the snapshots to another class,"
        " create a claim of it and set spec.history.backup.existingClaim",
        ".storage.storageClassName",
    )


STORAGES: list[tuple[str, ...]] = [("nats",), ("redis",), ("history",), ("history", "backup")]
"""The sections holding a `storage` (a PVC request)."""


def _positive_size(section: tuple[str, ...]) -> Rule:
    """On the size itself, so an object stored before the rule keeps updating while its size is unchanged
    (CRD validation ratcheting). `string()` because the size may be an integer."""
    field = "spec." + ".".join((*section, "storage", "size"))
    return Rule(
        (*section, "storage", "size"),
        f"string(self).matches({cel_string(POSITIVE_QUANTITY)})",
        f"{field} must be greater than zero",
    )


LABEL_MAPS: list[tuple[str, ...]] = [
    ("extraLabels",),
    ("extraAnnotations",),
    ("gateway", "ingress", "annotations"),
    ("monitoring", "serviceMonitor", "labels"),
    ("monitoring", "podMonitor", "labels"),
    ("scheduling", "nodeSelector"),
]
"""Maps keyed by a label or annotation key (`LabelKey` in the model)."""


def _label_keys(path: tuple[str, ...]) -> Rule:
    """A schema cannot constrain map keys, a rule can: the same test as `LabelKey`'s."""
    return Rule(
        path,
        f"self.all(k, k.matches({cel_string(LABEL_KEY)})"
        f" && (!k.contains('/') || k.indexOf('/') <= {LABEL_KEY_PREFIX_MAX}))",
        f"spec.{'.'.join(path)}: every key must be a qualified name (an optional DNS-subdomain prefix of at"
        f" most {LABEL_KEY_PREFIX_MAX} characters and `/`, then at most 63 alphanumerics, `-`, `_`, `.`)",
    )


def _excludes(component: str, managed: list[str]) -> Rule:
    unset = " && ".join(f"!has(self.{name})" for name in managed)
    return Rule(
        (component,),
        f"!has(self.external) || ({unset})",
        f"spec.{component}.external cannot be combined with the managed settings "
        f"spec.{component}.{{{', '.join(managed)}}}",
        ".external",
    )


def _group_min_le_max() -> Rule:
    """A group's autoscaling merged onto the defaults must still have min <= max."""
    lo = _opt(
        "g", ["autoscaling", "minReplicas"], _opt("self", ["defaults", "autoscaling", "minReplicas"], _MIN)
    )
    hi = _opt(
        "g", ["autoscaling", "maxReplicas"], _opt("self", ["defaults", "autoscaling", "maxReplicas"], _MAX)
    )
    return Rule(
        ("actors",),
        f"!has(self.groups) || self.groups.all(g, !has(g.autoscaling) || {lo} <= {hi})",
        "spec.actors.groups[].autoscaling.minReplicas must be less than or equal to maxReplicas"
        " (after merging spec.actors.defaults.autoscaling)",
        ".groups",
    )


def _grouped_member_settings(key: str) -> Rule:
    """An actor in a group takes its process settings from the group: its own entry may set only
    `enabled` (two places for one setting would leave one of them silently ignored)."""
    own = " || ".join(f"has(self.{key}.{field})" for field in PROCESS_FIELDS)
    return Rule(
        ("actors",),
        f"!has(self.groups) || !has(self.{key}) || !self.groups.exists(g, '{key}' in g.actors) || !({own})",
        member_settings_message(key),
        f".{key}",
    )


GROUP_RULES: list[Rule] = [
    Rule(
        ("actors", "groups"),
        "self.all(g, g.actors.all(a, self.filter(h, a in h.actors).size() == 1))",
        ACTOR_IN_TWO_GROUPS,
    ),
    Rule(
        ("actors", "groups", "[]"),
        f"!(self.name in {list(RESERVED_GROUP_NAMES)!r})",
        GROUP_NAME_RESERVED,
        ".name",
    ),
    _group_min_le_max(),
    *(_grouped_member_settings(a.spec_key) for a in ACTORS),
]
"""The `spec.actors.groups` rules; unknown actors (enum), fewer than two members (minItems), an actor
listed twice in one group (list-type set) and two groups of one name (list-type map) are schema errors."""


def _queue_lag_with_external_nats() -> Rule:
    """Any queueLag mode (defaults, an actor's or a group's) while NATS is external: KEDA has no endpoint
    to read."""
    asks = " || ".join(
        f"{_opt('self', ['actors', key, 'autoscaling', 'mode'], repr(''))} == 'queueLag'"
        for key in ["defaults", *(a.spec_key for a in ACTORS)]
    )
    asks += (
        " || (has(self.actors) && has(self.actors.groups) && self.actors.groups.exists(g,"
        f" {_opt('g', ['autoscaling', 'mode'], repr(''))} == 'queueLag'))"
    )
    rule = f"!(has(self.nats) && has(self.nats.external)) || !({asks})"
    return Rule((), rule, QUEUE_LAG_NEEDS_MANAGED_NATS, ".nats.external")


_NATS_SIZE = (
    "has(self.storage) && has(self.storage.size) ? string(self.storage.size) : "
    f"'{_STORAGE_DEFAULTS['nats'].size}'"
)
"""spec.nats.storage.size (or its default), seen from spec.nats."""


def _env_rules(path: tuple[str, ...]) -> list[Rule]:
    """Each entry of an `env` list: not a reserved name, a value or a source, and a source names exactly
    one thing."""
    field = "spec." + ".".join(path).replace(".[]", "[]")
    reserved = ", ".join(f"'{name}'" for name in RESERVED_ENV)
    return [
        Rule((*path, "[]"), f"!(self.name in [{reserved}])", f"{field}: {RESERVED_ENV_MESSAGE}", ".name"),
        Rule((*path, "[]"), "!(has(self.value) && has(self.valueFrom))", f"{field}: {VALUE_OR_SOURCE}"),
        Rule(
            (*path, "[]", "valueFrom"),
            "[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef)]"
            ".filter(x, x).size() == 1",
            f"{field}: {ONE_SOURCE}",
        ),
    ]


ENV_LISTS: list[tuple[str, ...]] = [
    ("gateway", "env"),
    *(("actors", a.spec_key, "env") for a in ACTORS),
    ("actors", "groups", "[]", "env"),
]


def _runtime_value(key: str, field: str) -> str:
    """`spec.runtime.<key>` seen from spec.runtime, or the model's default."""
    return _opt("self", [key], repr(RuntimeSpec.model_fields[field].default))


SPEC_RULES: list[Rule] = [
    _min_le_max(("gateway", "autoscaling"), "spec.gateway.autoscaling"),
    _min_le_max(("actors", "defaults", "autoscaling"), "spec.actors.defaults.autoscaling"),
    *(_merged_min_le_max(a.spec_key) for a in ACTORS),
    *GROUP_RULES,
    Rule(
        ("gateway", "ingress"),
        "!(has(self.enabled) && self.enabled) || has(self.host)",
        "spec.gateway.ingress.host is required when spec.gateway.ingress.enabled is true",
        ".host",
    ),
    Rule(
        ("gateway", "httpRoute"),
        "!(has(self.enabled) && self.enabled) || (has(self.parentRefs) && size(self.parentRefs) > 0)",
        ROUTE_NEEDS_PARENT,
        ".parentRefs",
    ),
    Rule(
        ("nats", "external"),
        f"!self.url.matches('{NATS_URL_WITH_PASSWORD}')",
        NATS_PASSWORD_IN_URL,
        ".url",
    ),
    Rule(
        ("nats", "external"),
        "!(has(self.credentialsSecretRef) && has(self.tokenSecretRef))",
        NATS_TWO_CREDENTIALS,
        ".tokenSecretRef",
    ),
    Rule(
        ("redis", "external"),
        f"!self.url.matches('{REDIS_URL_WITH_PASSWORD}')",
        REDIS_PASSWORD_IN_URL,
        ".url",
    ),
    Rule(
        ("gateway",),
        "!(has(self.anonymous) && self.anonymous) || !has(self.authSecretRef)",
        ANONYMOUS_WITH_KEY,
        ".anonymous",
    ),
    _excludes("nats", ["replicas", "storage", "jetstream", "image", "resources", "tls"]),
    _excludes("redis", ["storage", "image", "resources", "passwordSecretRef"]),
    Rule(
        ("redis",),
        "!has(self.external) || !has(self.enabled) || self.enabled",
        "spec.redis.external requires spec.redis.enabled to be true",
        ".enabled",
    ),
    *(_immutable(c, f) for c in ("nats", "redis", "history") for f in ("size", "storageClassName")),
    *(_positive_size(section) for section in STORAGES),
    Rule(("networkPolicy", "egressExcept", "[]"), "!self.endsWith('/0')", EVERY_ADDRESS),
    *(_label_keys(path) for path in LABEL_MAPS),
    _queue_lag_with_external_nats(),
    Rule(
        ("nats",),
        "!has(self.jetstream) || !has(self.jetstream.maxFileStore) || "
        f"quantity(string(self.jetstream.maxFileStore)).compareTo(quantity({_NATS_SIZE})) <= 0",
        MAX_FILE_STORE_TOO_BIG,
        ".jetstream.maxFileStore",
    ),
    *(rule for path in ENV_LISTS for rule in _env_rules(path)),
    Rule(
        ("runtime",),
        f"double({_runtime_value('requestTimeoutSeconds', 'request_timeout_seconds')})"
        f" < double({_runtime_value('conversationDeadlineSeconds', 'conversation_deadline_seconds')})",
        REQUEST_TIMEOUT_BELOW_DEADLINE,
        ".requestTimeoutSeconds",
    ),
    Rule(
        ("monitoring",),
        f"!({_opt('self', ['serviceMonitor', 'enabled'], 'false')}"
        f" && {_opt('self', ['podMonitor', 'enabled'], 'false')})",
        BOTH_MONITORS,
        ".podMonitor.enabled",
    ),
    Rule(
        ("monitoring", "tracing"),
        "!has(self.headersSecretRef) || has(self.endpoint)",
        HEADERS_NEED_ENDPOINT,
        ".headersSecretRef",
    ),
    Rule(
        ("history", "backup"),
        "!has(self.existingClaim) || !has(self.storage)",
        BACKUP_CLAIM_OR_STORAGE,
        ".existingClaim",
    ),
    _backup_class_immutable(),
    Rule(
        ("extraLabels",),
        "self.all(k, !k.startsWith('app.kubernetes.io/'))",
        "spec.extraLabels must not set app.kubernetes.io/ labels (the operator owns them)",
    ),
]
"""Rules attached inside `spec` (paths relative to `spec`)."""

ROOT_RULES: list[Rule] = [
    Rule(
        (),
        f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
        f"metadata.name must be at most {MAX_NAME_LENGTH} characters (child names append suffixes)",
    ),
    Rule(
        (),
        f"oldSelf.hasValue() || self.metadata.name.matches({cel_string(DNS1035_LABEL)})",
        "metadata.name must be a DNS-1035 label: lowercase letters, digits and '-', starting with a letter"
        " (every child Service is named `<mesh>-...`)",
        optional_old_self=True,
    ),
]
"""Rules on the object root (only `metadata.name` and `generateName` are visible to CEL there). The name
rule runs on create only: a name cannot change, and an object stored before it must still be updatable
(its finalizer removed)."""

"""CEL validation rules of the ActorMesh CRD: the cross-field constraints the API server enforces.

`api/schema.py` attaches each rule at its path. Every message names the field so `kubectl apply`
tells the user what to fix. The same constraints are checked by the pydantic validators in
api/spec.py (for objects that never went through admission); tests/integration/test_crd_validation.py
checks these on a real API server. Defaults are not stored in the CRD, so every rule guards with
`has()` and falls back to the model's default.
"""

from __future__ import annotations

from dataclasses import dataclass

from actormesh_operator.api.actors import ActorAutoscaling
from actormesh_operator.api.spec import MAX_NAME_LENGTH
from actormesh_runtime.catalog import ACTORS


@dataclass(frozen=True)
class Rule:
    path: tuple[str, ...]
    """Where the rule sits, as property names below the schema it is attached to."""
    rule: str
    message: str
    field_path: str | None = None
    """JSONPath (relative to `path`) the API server reports the error at."""


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


def _immutable(component: str, field: str) -> Rule:
    return Rule(
        (component, "storage", field), "self == oldSelf", f"spec.{component}.storage.{field} is immutable"
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


SPEC_RULES: list[Rule] = [
    _min_le_max(("gateway", "autoscaling"), "spec.gateway.autoscaling"),
    _min_le_max(("actors", "defaults", "autoscaling"), "spec.actors.defaults.autoscaling"),
    *(_merged_min_le_max(a.spec_key) for a in ACTORS),
    Rule(
        ("gateway", "ingress"),
        "!(has(self.enabled) && self.enabled) || has(self.host)",
        "spec.gateway.ingress.host is required when spec.gateway.ingress.enabled is true",
        ".host",
    ),
    _excludes("nats", ["replicas", "storage", "jetstream", "image", "resources"]),
    _excludes("redis", ["storage", "image", "resources"]),
    Rule(
        ("redis",),
        "!has(self.external) || !has(self.enabled) || self.enabled",
        "spec.redis.external requires spec.redis.enabled to be true",
        ".enabled",
    ),
    *(_immutable(c, f) for c in ("nats", "redis", "history") for f in ("size", "storageClassName")),
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
]
"""Rules on the object root (only `metadata.name` and `generateName` are visible to CEL there)."""

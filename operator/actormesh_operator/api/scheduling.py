"""`spec.scheduling`: node selector, tolerations, affinity and priority class of every pod.

The affinity is the `core/v1.Affinity` shape, typed field by field rather than passed through as a
free-form object, so that a misspelt field (`nodeAfinity`, `topologykey`) is refused when the mesh is
applied, with a message naming it, instead of being dropped without a word by the API server when the
operator applies the pod templates (which it does with `fieldValidation=Ignore`, `reconcile/kube.py`).
The structure and the enumerations are checked here; the values (label syntax, an empty term list)
are the API server's to judge on the pod templates, where a rejection stalls the mesh naming the
child (`ApplyRejected`).
Fields match Kubernetes 1.34; a field added upstream later needs adding here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from actormesh_operator.api.types import DNS1123_SUBDOMAIN, ApiModel, LabelKey, LabelValue


class NodeSelectorRequirement(ApiModel):
    """A node label (or field) compared with `values`."""

    key: str
    """The node label key (or field name, in `matchFields`)."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    """How `key`'s value is compared with `values`."""
    values: list[str] | None = None
    """The values compared with (empty for Exists/DoesNotExist; one integer for Gt/Lt)."""


class NodeSelectorTerm(ApiModel):
    """Requirements that all hold on a matching node."""

    match_expressions: list[NodeSelectorRequirement] | None = None
    """Requirements on node labels."""
    match_fields: list[NodeSelectorRequirement] | None = None
    """Requirements on node fields (`metadata.name`)."""


class NodeSelector(ApiModel):
    """Terms of which at least one holds on a matching node."""

    node_selector_terms: list[NodeSelectorTerm]
    """The terms, ORed."""


class PreferredSchedulingTerm(ApiModel):
    """A node preference with its weight."""

    weight: int = Field(ge=1, le=100)
    """Added to a node's score when `preference` matches it (1 to 100)."""
    preference: NodeSelectorTerm
    """The nodes preferred."""


class NodeAffinity(ApiModel):
    """Which nodes the pods may, or prefer to, run on."""

    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    """Nodes outside these terms are never chosen."""
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] | None = None
    """Nodes matching these terms are preferred, by weight."""


class LabelSelectorRequirement(ApiModel):
    """A label compared with `values`."""

    key: str
    """The label key."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the label's value is compared with `values`."""
    values: list[str] | None = None
    """The values compared with (empty for Exists/DoesNotExist)."""


class LabelSelector(ApiModel):
    """Objects whose labels match (`matchLabels` and `matchExpressions` ANDed)."""

    match_labels: dict[str, str] | None = None
    """Labels that must equal these values."""
    match_expressions: list[LabelSelectorRequirement] | None = None
    """Requirements on labels."""


class PodAffinityTerm(ApiModel):
    """Pods (matched by labels, in some namespaces) that share a topology domain with this pod."""

    label_selector: LabelSelector | None = None
    """The pods this term is about."""
    namespace_selector: LabelSelector | None = None
    """The namespaces those pods may be in (with `namespaces`; neither: this pod's own)."""
    namespaces: list[str] | None = None
    """Namespaces by name."""
    topology_key: str
    """The node label whose value defines a domain, e.g. `kubernetes.io/hostname`."""
    match_label_keys: list[str] | None = None
    """Label keys whose values this pod's must equal in the matched pods."""
    mismatch_label_keys: list[str] | None = None
    """Label keys whose values this pod's must differ from in the matched pods."""


class WeightedPodAffinityTerm(ApiModel):
    """A pod (anti-)affinity preference with its weight."""

    weight: int = Field(ge=1, le=100)
    """Added to a node's score when `podAffinityTerm` holds there (1 to 100)."""
    pod_affinity_term: PodAffinityTerm
    """The term."""


class PodAffinity(ApiModel):
    """Pods this pod must, or prefers to, run near (`podAffinity`) or away from (`podAntiAffinity`)."""

    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] | None = None
    """Terms that must all hold."""
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] | None = None
    """Terms preferred, by weight."""


class Affinity(ApiModel):
    """A `core/v1.Affinity`, copied onto every pod the operator creates."""

    node_affinity: NodeAffinity | None = None
    """Rules on nodes."""
    pod_affinity: PodAffinity | None = None
    """Pods to run near."""
    pod_anti_affinity: PodAffinity | None = None
    """Pods to run away from."""


class Toleration(ApiModel):
    """A Pod toleration (same fields as `core/v1.Toleration`)."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class Scheduling(ApiModel):
    """Where the mesh's pods may run; copied onto every pod the operator creates."""

    node_selector: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=64)
    """Node labels every pod requires."""
    tolerations: list[Toleration] = Field(default_factory=list)
    """Taints the pods tolerate."""
    affinity: Affinity | None = None
    """A `core/v1.Affinity`; a misspelt field is refused."""
    priority_class_name: str | None = Field(None, max_length=253, pattern=DNS1123_SUBDOMAIN)
    """PriorityClass of every pod (unset: the cluster default)."""

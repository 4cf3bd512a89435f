"""Labels on every child: the `app.kubernetes.io/*` set, selectors, and the per-mesh watch selector.

Called by every builder (through `meta.object_meta`) and by the reconcile layer (`mesh_selector`,
`MANAGED_BY_SELECTOR`) to list and watch children. The parent's own labels are never copied: they
belong to whoever wrote the ActorMesh (often Argo CD, whose tracking label on a child would make Argo
think it owns that child). Only `spec.extraLabels` is added, and never over our keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import names

NAME = "app.kubernetes.io/name"
INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"
PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = "app.kubernetes.io/managed-by"
VERSION = "app.kubernetes.io/version"

APP = "actormesh"
OPERATOR = "actormesh-operator"

MANAGED_BY_SELECTOR: dict[str, str] = {MANAGED_BY: OPERATOR}
"""Selects the children of every mesh (the reconcile layer's watch)."""

# Component values: each names one pod template (actors use their k8s_name, e.g. `sentiment-analyzer`).
NATS = "nats"
REDIS = "redis"
HISTORY = "history"
GATEWAY = "gateway"
MOCKS = "mocks"
RUNTIME = "runtime"
"""Objects shared by the runtime pods (ConfigMap, ServiceAccount)."""
NETWORK = "network"
"""NetworkPolicies."""
MONITORING = "monitoring"
"""ServiceMonitor, PodMonitor, PrometheusRule."""
METRICS = "metrics"
"""The headless Service over every runtime pod's /metrics port (for a ServiceMonitor)."""

ACTOR_LABEL_PREFIX = "actors.actormesh.io/"
"""On a group's Deployment and pods, one `actors.actormesh.io/<actor k8s_name>: "true"` per member, so
`kubectl get pods -l actors.actormesh.io/decision-router` finds the pods running that actor. A lone
actor's pods are found by `app.kubernetes.io/component=<actor>` (they do not carry it, so an operator
upgrade did not change their pod template)."""

_APP_BY_COMPONENT = {NATS: "nats", REDIS: "redis"}
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]")


def app_name(component: str) -> str:
    """The application a component runs: `nats`, `redis`, or `actormesh` for the runtime."""
    return _APP_BY_COMPONENT.get(component, APP)


def selector_labels(mesh: str, component: str) -> dict[str, str]:
    """Immutable selector of one component's pods (Deployment/StatefulSet selector, Service selector)."""
    return {NAME: app_name(component), INSTANCE: names.instance_label(mesh), COMPONENT: component}


def mesh_selector(mesh: str) -> dict[str, str]:
    """Selects every child (and pod) of one mesh; what the reconcile layer lists and watches with."""
    return {INSTANCE: names.instance_label(mesh), MANAGED_BY: OPERATOR}


def member_labels(actors: Iterable[str]) -> dict[str, str]:
    """The member labels of a group (`actors`: k8s names), see ACTOR_LABEL_PREFIX."""
    return {f"{ACTOR_LABEL_PREFIX}{name}": "true" for name in actors}


def version_label(image: str) -> str | None:
    """The image tag as a label value (`nats:2.10-alpine` → `2.10-alpine`), None when untagged/digest."""
    reference = image.split("@", 1)[0]
    last = reference.rsplit("/", 1)[-1]
    if ":" not in last:
        return None
    tag = _LABEL_VALUE.sub("-", last.rsplit(":", 1)[1])[:63].strip("-_.")
    return tag or None


def labels(mesh: ActorMesh, component: str, *, image: str | None = None) -> dict[str, str]:
    """Full label set of a child object or pod template: extra labels first, ours win."""
    ours = {
        **selector_labels(mesh.name, component),
        PART_OF: APP,
        MANAGED_BY: OPERATOR,
    }
    version = version_label(image) if image else None
    if version:
        ours[VERSION] = version
    return {**mesh.spec.extra_labels, **ours}

"""Builders of meshes and observed states for the status tests (tests/unit/test_status*.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from actormesh_operator.api.observed import ObservedState, ObservedWorkload
from actormesh_operator.api.spec import ActorMesh
from actormesh_runtime.catalog import ACTORS

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2026, 1, 1, 12, 5, tzinfo=UTC)
GENERATION = 3


def mesh(spec: dict[str, Any] | None = None, generation: int = GENERATION) -> ActorMesh:
    return ActorMesh.from_body(
        {
            "metadata": {"name": "demo", "namespace": "ns", "generation": generation},
            "spec": {"image": "i", **(spec or {})},
        }
    )


def ready(component: str, replicas: int = 1, kind: str = "Deployment", **changes: Any) -> ObservedWorkload:
    """A workload whose rollout is complete; `changes` override single counters."""
    fields: dict[str, Any] = {
        "component": component,
        "kind": kind,
        "name": f"demo-{component}",
        "desired": replicas,
        "current": replicas,
        "updated": replicas,
        "ready": replicas,
        "generation": 2,
        "observed_generation": 2,
    }
    return ObservedWorkload(**{**fields, **changes})


def all_ready(*, skip: tuple[str, ...] = (), **replaced: ObservedWorkload) -> list[ObservedWorkload]:
    """Every workload of a minimal mesh, ready; `replaced[component]` swaps one (underscores for dashes)."""
    workloads = [
        ready("nats", kind="StatefulSet"),
        ready("redis", kind="StatefulSet"),
        ready("history", kind="StatefulSet"),
        ready("gateway"),
        ready("mocks"),
        *(ready(a.k8s_name) for a in ACTORS),
    ]
    out = []
    for w in workloads:
        key = w.component.replace("-", "_")
        if w.component in skip:
            continue
        out.append(replaced.get(key, w))
    return out


def observed(**fields: Any) -> ObservedState:
    fields.setdefault("workloads", all_ready())
    return ObservedState(**fields)


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in status["conditions"] if c["type"] == kind)
    return found

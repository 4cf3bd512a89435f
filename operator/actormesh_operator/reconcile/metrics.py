"""Prometheus metrics of the operator, served on `OperatorSettings.metrics_port` by `main.py`.

Updated by `runner.py` (reconciles, errors, duration), `handlers.py` (meshes by phase) and `apply.py`
(child writes). Names follow Prometheus conventions: `_total` counters, `_seconds` histograms.
"""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter(
    "actormesh_operator_reconciles_total",
    "Reconciles run, by what triggered them and how they ended.",
    ["trigger", "result"],
)
ERRORS = Counter(
    "actormesh_operator_reconcile_errors_total",
    "Failed reconciles, by cause (Conflict, ApiUnreachable, SecretNotFound, ...).",
    ["kind"],
)
DURATION = Histogram(
    "actormesh_operator_reconcile_duration_seconds",
    "Wall time of one reconcile (observe, apply, prune, status).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
MESHES = Gauge("actormesh_operator_meshes", "ActorMesh objects by status phase.", ["phase"])
CHILD_WRITES = Counter(
    "actormesh_operator_child_writes_total",
    "Server-side applies and deletes of child objects (zero while nothing changes).",
    ["kind", "action"],
)

MESH_READY = Gauge(
    "actormesh_operator_mesh_ready",
    "1 while a mesh's phase is Ready, else 0; per mesh, for the ActorMeshNotReady alert.",
    ["mesh_namespace", "mesh"],
)

_phases: dict[tuple[str, str], str] = {}
_seen_phases: set[str] = set()


def set_phase(namespace: str, name: str, phase: str | None) -> None:
    """Record a mesh's phase (None: deleted) and refresh the per-phase gauge."""
    key = (namespace, name)
    if phase is None:
        _phases.pop(key, None)
        with contextlib.suppress(KeyError):
            MESH_READY.remove(namespace, name)
    else:
        _phases[key] = phase
        MESH_READY.labels(mesh_namespace=namespace, mesh=name).set(1 if phase == "Ready" else 0)
    counts: dict[str, int] = {}
    for value in _phases.values():
        counts[value] = counts.get(value, 0) + 1
    _seen_phases.update(counts)
    # A phase nobody is in any more reads 0, not its last value.
    for label in _seen_phases:
        MESHES.labels(phase=label).set(counts.get(label, 0))


def serve(port: int, address: str = "0.0.0.0") -> Any:
    """Start the /metrics HTTP server in a daemon thread (0 disables it); all interfaces by default, as
    Prometheus scrapes the pod IP. Returns the server (`.shutdown()` stops it), or None."""
    if not port:
        return None
    server, _thread = start_http_server(port, addr=address)
    return server

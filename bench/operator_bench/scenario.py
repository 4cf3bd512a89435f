"""The bench's phases against a running operator: bursts of meshes, status-only child events, idle.

Times come from the bench's own watches (admin credentials, not counted): a child counts as applied
when its first watch event arrives, a mesh as done when its status reaches its generation. API requests
come from the audit log (`audit.py`), CPU and RSS from /proc (`procstat.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from actormesh_operator.builders.kinds import MANAGED_KINDS
from actormesh_operator.builders.labels import INSTANCE
from actormesh_operator.reconcile.kube import KubeApiError, KubeClient, Resource
from actormesh_operator.reconcile.runner import MESHES
from actormesh_operator.render import meshes_in, rendered_children
from actormesh_operator.settings import OperatorSettings

from . import audit, procstat
from .stats import core_percent, per_event_cpu_ms, per_mesh_durations, spread

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "config" / "samples" / "minimal.yaml"
NAMESPACES = Resource("v1", "Namespace", "namespaces", namespaced=False)
DEPLOYMENTS = Resource("apps/v1", "Deployment", "deployments")
STATEFULSETS = Resource("apps/v1", "StatefulSet", "statefulsets")


def sample_mesh(name: str, namespace: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    body["metadata"] = {"name": name, "namespace": namespace}
    return body


def expected_children(namespace: str) -> int:
    """How many children the operator applies for the sample (the pure builders say)."""
    mesh = meshes_in([sample_mesh("probe", namespace)], namespace)[0]
    return len(rendered_children(mesh, OperatorSettings(), keda=False))


@dataclass
class Tracker:
    """First time each mesh had all its children, and first time its status reached its generation."""

    expected: int
    meshes: int
    done: asyncio.Event = field(default_factory=asyncio.Event)
    seen: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    children_at: dict[str, float] = field(default_factory=dict)
    observed_at: dict[str, float] = field(default_factory=dict)

    def child(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        mesh = (meta.get("labels") or {}).get(INSTANCE)
        if not mesh:
            return
        names = self.seen.setdefault(mesh, set())
        names.add((str(obj.get("kind")), str(meta.get("name"))))
        if len(names) >= self.expected and mesh not in self.children_at:
            self.children_at[mesh] = time.time()
            self._check()

    def mesh(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        status = obj.get("status") or {}
        name = str(meta.get("name"))
        if (status.get("observedGeneration") or 0) >= (meta.get("generation") or 1):
            self.observed_at.setdefault(name, time.time())
            self._check()

    def _check(self) -> None:
        if len(self.children_at) >= self.meshes and len(self.observed_at) >= self.meshes:
            self.done.set()


async def _watch(
    kube: KubeClient, resource: Resource, namespace: str, on: Callable[[dict[str, Any]], None]
) -> None:
    version: str | None = None
    while True:
        try:
            async for event in kube.watch(resource, namespace, resource_version=version, timeout_s=300):
                obj = event.get("object") or {}
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if event.get("type") in ("ADDED", "MODIFIED"):
                    on(obj)
        except KubeApiError as exc:
            if exc.status == 410:
                version = None
            else:
                raise


def interleaved(objects: list[dict[str, Any]]) -> list[str]:
    """Object names ordered round-robin across meshes, so consecutive events hit different meshes
    (events for one mesh within the operator's debounce window would be coalesced into one)."""
    by_mesh: dict[str, list[str]] = {}
    for obj in objects:
        meta = obj.get("metadata") or {}
        by_mesh.setdefault((meta.get("labels") or {}).get(INSTANCE, ""), []).append(str(meta.get("name")))
    queues = [sorted(names) for _, names in sorted(by_mesh.items())]
    out: list[str] = []
    for depth in range(max((len(q) for q in queues), default=0)):
        out += [q[depth] for q in queues if depth < len(q)]
    return out


def rollout_settled(workload: dict[str, Any]) -> bool:
    """Its controller has seen the current spec and made every pod of it (without a kubelet they stay
    Pending, so readiness is never waited for)."""
    meta, spec, status = (
        workload.get("metadata") or {},
        workload.get("spec") or {},
        workload.get("status") or {},
    )
    replicas = int(spec.get("replicas", 1))
    seen = int(status.get("observedGeneration", 0)) >= int(meta.get("generation", 1))
    return seen and int(status.get("replicas", 0)) == replicas == int(status.get("updatedReplicas", 0))


class Phases:
    def __init__(
        self, kube: KubeClient, pid: int, audit_log: Path, control_plane: dict[str, int] | None = None
    ) -> None:
        self.kube = kube
        self.pid = pid
        self.audit_log = audit_log
        self.control_plane = control_plane or {}
        """pid per control-plane process (etcd, kube-apiserver, ...): their CPU per burst is reported too,
        since on a small machine they, not the operator, may set the wall time."""

    def _control_cpu(self) -> dict[str, float]:
        return {name: procstat.sample(pid).cpu_s for name, pid in self.control_plane.items()}

    def calls(self, start: float, end: float) -> list[audit.ApiCall]:
        from .cluster import OPERATOR_USER

        with self.audit_log.open() as f:
            return audit.between(audit.parse_lines(f, OPERATOR_USER), start, end)

    async def namespace(self, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        with contextlib.suppress(KubeApiError):
            await self.kube.request("POST", NAMESPACES.path(), body=body)

    async def burst(self, count: int, namespace: str, *, settle_s: float, timeout_s: float) -> dict[str, Any]:
        """Create `count` meshes at once; wait for every child and every observedGeneration."""
        await self.namespace(namespace)
        tracker = Tracker(expected=expected_children(namespace), meshes=count)
        kinds = [k for k in MANAGED_KINDS if not k.optional]
        watches = [
            asyncio.create_task(
                _watch(self.kube, Resource(k.api_version, k.kind, k.plural), namespace, tracker.child)
            )
            for k in kinds
        ]
        watches.append(asyncio.create_task(_watch(self.kube, MESHES, namespace, tracker.mesh)))
        await asyncio.sleep(1.0)  # the watches are open before the first create
        before = procstat.sample(self.pid)
        control_before = self._control_cpu()
        start = time.time()
        started: dict[str, float] = {}

        async def create(name: str) -> None:
            started[name] = time.time()
            await self.kube.request("POST", MESHES.path(namespace), body=sample_mesh(name, namespace))

        await asyncio.gather(*(create(f"m{i:03d}") for i in range(count)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tracker.done.wait(), timeout_s)
        done = time.time()
        busy = procstat.sample(self.pid)
        control_busy = self._control_cpu()
        await asyncio.sleep(settle_s)  # the children's status updates that follow every create
        end = time.time()
        after = procstat.sample(self.pid)
        for task in watches:
            task.cancel()
        await asyncio.gather(*watches, return_exceptions=True)
        calls = self.calls(start, end)
        return {
            "meshes": count,
            "namespace": namespace,
            "children_per_mesh": tracker.expected,
            "completed_children": len(tracker.children_at),
            "completed_observed": len(tracker.observed_at),
            "children": spread(per_mesh_durations(started, tracker.children_at)),
            "observed": spread(per_mesh_durations(started, tracker.observed_at)),
            "wall_s": round(done - start, 3),
            "cpu_s": round(busy.cpu_s - before.cpu_s, 3),
            "settle_s": settle_s,
            "settle_cpu_s": round(after.cpu_s - busy.cpu_s, 3),
            "control_plane_cpu_s": {
                name: round(control_busy[name] - control_before[name], 3) for name in control_before
            },
            "requests": len(calls),
            "requests_per_create": round(len(calls) / count, 2),
            "requests_by_label": audit.by_label(calls),
            "rss_bytes": after.rss_bytes,
        }

    async def quiet(self, quiet_s: float, timeout_s: float) -> float:
        """Wait until the children's rollouts are over: every Deployment and StatefulSet is as far as its
        controller can take it here (`rollout_settled`) and the operator made no request for `quiet_s`
        (silence alone is no proof: a status refresh that changes nothing writes nothing, and the
        controller manager, throttled to its client's QPS, takes minutes for 100 meshes). At most
        `timeout_s`; returns how long it waited."""
        start = time.time()
        while time.time() - start < timeout_s:
            now = time.time()
            if not self.calls(now - quiet_s, now) and await self._rollouts_settled():
                break
            await asyncio.sleep(1.0)
        return round(time.time() - start, 1)

    async def _rollouts_settled(self) -> bool:
        for resource in (DEPLOYMENTS, STATEFULSETS):
            if not all(rollout_settled(w) for w in await self.kube.list(resource)):
                return False
        return True

    async def idle(self, seconds: float, meshes: int) -> dict[str, Any]:
        before, start = procstat.sample(self.pid), time.time()
        await asyncio.sleep(seconds)
        after, end = procstat.sample(self.pid), time.time()
        calls = self.calls(start, end)
        cpu = after.cpu_s - before.cpu_s
        return {
            "seconds": round(end - start, 1),
            "meshes": meshes,
            "cpu_s": round(cpu, 3),
            "core_pct": core_percent(cpu, end - start),
            "requests": len(calls),
            "requests_by_label": audit.by_label(calls),
            "rss_bytes": after.rss_bytes,
        }

    async def sample_deployment(self, namespace: str) -> dict[str, Any] | None:
        """One live Deployment as the API server holds it (for the in-process no-op measurement)."""
        items = await self.kube.list(DEPLOYMENTS, namespace)
        return items[0] if items else None

    async def noop_events(
        self, namespace: str, events: int, *, interval_s: float, idle_rate: float, settle_s: float
    ) -> dict[str, Any]:
        """Status-only updates of the meshes' Deployments, as the controller manager makes them all the
        time: a condition type nobody reads, so nothing the operator computes can change."""
        names = interleaved(await self.kube.list(DEPLOYMENTS, namespace))
        if not names:
            return {"events": 0, "skipped": f"no Deployment in {namespace} (the burst did not finish)"}
        before, start = procstat.sample(self.pid), time.time()
        for i in range(events):
            name = names[i % len(names)]
            condition = {
                "type": "BenchTouched",
                "status": "True",
                "reason": "Bench",
                "message": f"touch {i}",
                "lastUpdateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            status = {"status": {"conditions": [condition]}}
            # A strategic merge patch keeps the other conditions (merge key `type`).
            await self.kube.request(
                "PATCH",
                DEPLOYMENTS.path(namespace, name, "status"),
                body=status,
                content_type="application/strategic-merge-patch+json",
            )
            await asyncio.sleep(interval_s)
        await asyncio.sleep(settle_s)
        after, end = procstat.sample(self.pid), time.time()
        calls = self.calls(start, end)
        cpu = after.cpu_s - before.cpu_s
        return {
            "events": events,
            "seconds": round(end - start, 1),
            "cpu_s": round(cpu, 3),
            "cpu_ms_per_event": per_event_cpu_ms(cpu, end - start, idle_rate, events),
            "raw_cpu_ms_per_event": per_event_cpu_ms(cpu, end - start, 0.0, events),
            "requests": len(calls),
            "requests_per_event": round(len(calls) / max(events, 1), 3),
            "requests_by_label": audit.by_label(calls),
        }

"""The ActorMesh status as a pure function of the mesh and what the reconcile layer observed.

Called by the reconcile layer after every attempt (successful or not): `compute_status` returns the
full status, including the full conditions list (a merge patch replaces lists whole), and
`status_patch` turns it into the merge patch to send, or None when nothing changed, so an unchanged
mesh causes no write and no new event. No I/O here: every case is a unit test (tests/unit/test_status.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from actormesh_operator.api.observed import (
    COMPONENT_GATEWAY,
    COMPONENT_HISTORY,
    COMPONENT_MOCKS,
    COMPONENT_NATS,
    COMPONENT_REDIS,
    ObservedState,
    ObservedWorkload,
    route_parent,
)
from actormesh_operator.api.spec import PAUSED_ANNOTATION, ActorMesh, ActorMeshSpec
from actormesh_operator.api.status import ActorMeshStatus, Condition, ConditionType, Phase, Reason

__all__ = ["ComponentState", "compute_status", "status_patch"]

OWNED_STATUS_KEYS = frozenset(f.alias or n for n, f in ActorMeshStatus.model_fields.items())
"""Top-level status keys this operator writes; any other key belongs to someone else and is left alone."""


class ComponentState(StrEnum):
    """Where one component stands, worst first (the order decides the Reconciling reason)."""

    STUCK = "stuck"
    SCALED_TO_ZERO = "scaled to 0 outside the spec"
    """The live Deployment asks for no pods while the spec asks for some: scaled by hand (`kubectl scale
    --replicas=0`). Under an HPA nothing brings it back (an HPA does not act on a target at 0 replicas),
    so it is not progress, and the spec's floor is what the component is measured against."""
    MISSING = "missing"
    ROLLING_OUT = "rolling out"
    SCALING = "scaling"
    STARTING = "waiting for ready"
    READY = "ready"


_PROGRESS_REASON = {
    ComponentState.MISSING: Reason.CREATING,
    ComponentState.ROLLING_OUT: Reason.ROLLING_OUT,
    ComponentState.SCALING: Reason.SCALING,
    ComponentState.STARTING: Reason.WAITING_FOR_READY,
}


@dataclass(frozen=True)
class _Component:
    status_key: str
    """Key under status.components (actors: under status.components.actors), e.g. `sentimentAnalyzer`."""
    label: str
    """Value of app.kubernetes.io/component on the workload."""
    is_actor: bool
    desired_from_spec: int
    workload: ObservedWorkload | None

    @property
    def desired(self) -> int:
        if self.workload is None or self._scaled_to_zero:
            return self.desired_from_spec
        return self.workload.desired

    @property
    def _scaled_to_zero(self) -> bool:
        return self.workload is not None and self.workload.desired == 0 and self.desired_from_spec > 0

    @property
    def ready(self) -> int:
        return self.workload.ready if self.workload else 0

    @property
    def state(self) -> ComponentState:
        w = self.workload
        if w is None:
            return ComponentState.MISSING
        if self._scaled_to_zero:  # else "0/0 ready": a mesh reported Ready with an actor that has no pod
            return ComponentState.SCALED_TO_ZERO
        if w.progress_deadline_exceeded and w.ready < w.desired:
            return ComponentState.STUCK
        if w.generation == 1 and w.ready < w.desired:
            # Its spec never changed since it was created: one template, one replica count, so nothing
            # is being replaced or rescaled — its first pods are starting, however far the controller
            # has got creating them. (Saying "rolling out" until the controller has looked, then
            # "waiting for ready", cost two status writes per new mesh and told a user nothing.)
            return ComponentState.STARTING
        if w.observed_generation < w.generation or w.updated < max(w.desired, w.current):
            # Pods of the old template still running (a surged rollout's tail: `replicas` counts both
            # templates, `updatedReplicas` the new one) are a rollout, as for `kubectl rollout status`;
            # compared with `desired` alone, every template change — an operator upgrade rolling the
            # workloads, say — read "scaling" until the last old pod was gone.
            return ComponentState.ROLLING_OUT
        if w.current != w.desired:
            return ComponentState.SCALING
        if w.ready < w.desired:
            return ComponentState.STARTING
        return ComponentState.READY

    def describe(self) -> str:
        return f"{self.status_key} {self.ready}/{self.desired}"


def _replicas(replicas: int, autoscaling_enabled: bool, min_replicas: int) -> int:
    return min_replicas if autoscaling_enabled else replicas


def _components(spec: ActorMeshSpec, observed: ObservedState) -> list[_Component]:
    """Every workload the spec asks for, paired with its live counterpart (None when absent)."""
    gw = spec.gateway
    wanted: list[tuple[str, str, bool, int]] = []
    if spec.nats.managed:
        wanted.append(("nats", COMPONENT_NATS, False, spec.nats.replicas))
    if spec.redis.managed:
        wanted.append(("redis", COMPONENT_REDIS, False, 1))
    wanted.append(("history", COMPONENT_HISTORY, False, 1))
    wanted.append(
        (
            "gateway",
            COMPONENT_GATEWAY,
            False,
            _replicas(gw.replicas, gw.autoscaling.enabled, gw.autoscaling.min_replicas),
        )
    )
    if spec.mock_services.enabled:
        wanted.append(("mocks", COMPONENT_MOCKS, False, 1))
    for workload in spec.actors.workloads():
        # A grouped actor is exactly as ready as its group's Deployment: one entry per member, each
        # matched to the group's workload (its component label), so `actorsReady` still counts actors.
        a = workload.process.autoscaling
        wanted += [
            (
                actor.info.spec_key,
                workload.component,
                True,
                _replicas(workload.process.replicas, a.enabled, a.min_replicas),
            )
            for actor in workload.members
        ]
    return [
        _Component(key, label, is_actor, n, observed.workload(label)) for key, label, is_actor, n in wanted
    ]


def _stall(mesh: ActorMesh, observed: ObservedState) -> tuple[Reason, str] | None:
    """The reason progress needs a human, if any: a permanent error, a missing Secret, no KEDA."""
    if observed.error is not None and observed.error.permanent:
        return observed.error.reason, observed.error.message
    if observed.missing_secrets:
        fields = {(ref.name, ref.key): path for path, ref in mesh.spec.secret_refs().items()}
        problems = []
        for m in observed.missing_secrets:
            where = m.field or fields.get((m.name, m.key), "spec")
            what = f"has no key {m.key!r}" if m.secret_exists else "not found"
            problems.append(f"{where}: Secret {mesh.namespace}/{m.name} {what}")
        return Reason.SECRET_NOT_FOUND, "; ".join(problems)
    lagging = mesh.spec.queue_lag_actors()
    if lagging and not observed.keda_installed:
        where = ", ".join(dict.fromkeys(f"{a.settings_path}.autoscaling.mode" for a in lagging))
        return Reason.KEDA_NOT_INSTALLED, (
            f"{where}: queueLag needs KEDA (CRD scaledobjects.keda.sh not found); install KEDA or use cpu"
        )
    return None


def _progress(observed: ObservedState, components: Sequence[_Component]) -> tuple[Reason, str] | None:
    """Why Reconciling is True, if it is: a retry, an unapplied generation, or a workload in motion."""
    if observed.error is not None:
        return Reason.RETRYING, observed.error.message
    if not observed.generation_applied:
        return Reason.NEW_GENERATION, "applying the current generation"
    moving = [c for c in components if c.state in _PROGRESS_REASON]
    if not moving:
        return None
    worst = min((c.state for c in moving), key=list(ComponentState).index)
    return _PROGRESS_REASON[worst], _listing(moving)


def _listing(components: Sequence[_Component]) -> str:
    by_state: dict[ComponentState, list[str]] = {}
    for c in components:
        by_state.setdefault(c.state, []).append(c.describe())
    return "; ".join(
        f"{state.value}: {', '.join(items)}"
        for state, items in sorted(by_state.items(), key=lambda kv: list(ComponentState).index(kv[0]))
    )


def _ready(
    stall: tuple[Reason, str] | None, observed: ObservedState, components: Sequence[_Component]
) -> tuple[bool, Reason, str]:
    if stall is not None:
        return False, stall[0], stall[1]
    if observed.error is not None or not observed.generation_applied:
        return False, Reason.RECONCILE_PENDING, "the current generation is not fully applied yet"
    not_ready = [c for c in components if c.state is not ComponentState.READY]
    if not not_ready:
        return True, Reason.ALL_COMPONENTS_READY, f"{len(components)} components ready"
    if any(c.state is ComponentState.STUCK for c in not_ready):
        return False, Reason.ROLLOUT_STUCK, _listing(not_ready)
    return False, Reason.COMPONENTS_NOT_READY, _listing(not_ready)


def _timestamp(now: datetime) -> str:
    return now.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


ANONYMOUS_WARNING = (
    "spec.gateway.anonymous is true: the gateway accepts requests without a token, so anyone who can"
    " reach it may act as any customer (read orders, cancel them). Use it for a demo only; set it to"
    " false and the operator generates a signing key (Secret <mesh>-gateway-auth)"
)


def _warnings(mesh: ActorMesh, generation: int) -> tuple[list[Condition], frozenset[str]]:
    """Warning conditions present only while their cause is: (to set, to remove)."""
    kind = ConditionType.ANONYMOUS_GATEWAY
    if mesh.spec.gateway.anonymous:
        return [
            _condition(kind, True, Reason.ANONYMOUS_MODE_ENABLED, ANONYMOUS_WARNING, generation)
        ], frozenset()
    return [], frozenset({kind.value})


def _merge_conditions(
    previous: Sequence[Mapping[str, Any]],
    ours: Sequence[Condition],
    now: datetime,
    remove: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Previous list with our types replaced in place (others' untouched), new types appended and the
    types in `remove` (ours, no longer applicable) dropped.

    `lastTransitionTime` moves only when a condition's status flips (NACK's updateReadyCondition).
    """
    before = {str(c.get("type")): c for c in previous}
    fresh: dict[str, dict[str, Any]] = {}
    for cond in ours:
        old = before.get(cond.type)
        since = old.get("lastTransitionTime") if old and old.get("status") == cond.status else None
        entry = cond.model_copy(update={"last_transition_time": since or _timestamp(now)})
        fresh[cond.type] = entry.model_dump(by_alias=True, exclude_none=True)
    merged = [fresh.pop(str(c.get("type")), dict(c)) for c in previous if str(c.get("type")) not in remove]
    return merged + list(fresh.values())


def _endpoint(mesh: ActorMesh, observed: ObservedState) -> str | None:
    ingress = observed.gateway_ingress
    if mesh.spec.gateway.ingress.enabled and ingress is not None and ingress.host:
        return f"{'https' if ingress.tls else 'http'}://{ingress.host}"
    svc = observed.gateway_service
    if svc is None:
        return None
    port = "" if svc.port == 80 else f":{svc.port}"
    if svc.type == "LoadBalancer" and svc.load_balancer_hosts:
        return f"http://{svc.load_balancer_hosts[0]}{port}"
    return f"http://{svc.name}.{svc.namespace}.svc{port}"


def _counts(components: Sequence[_Component]) -> dict[str, Any]:
    out: dict[str, Any] = {"actors": {}}
    for c in components:
        (out["actors"] if c.is_actor else out)[c.status_key] = {"ready": c.ready, "desired": c.desired}
    return out


def _monitoring_condition(mesh: ActorMesh, observed: ObservedState, generation: int) -> Condition:
    """MonitoringReady: which asked-for Prometheus Operator kinds the API server does not serve."""
    requested = mesh.spec.monitoring.requested_kinds()
    missing = [plural for plural in requested if plural not in observed.monitoring_served]
    kind = ConditionType.MONITORING_READY
    if missing:
        crds = ", ".join(f"{plural}.monitoring.coreos.com" for plural in missing)
        message = (
            f"spec.monitoring asks for {', '.join(missing)} but the CRDs are not installed ({crds});"
            " install the Prometheus Operator CRDs or turn these off. The mesh itself is unaffected."
        )
        return _condition(kind, False, Reason.MONITORING_CRDS_MISSING, message, generation)
    if requested:
        return _condition(kind, True, Reason.MONITORING_CONFIGURED, ", ".join(requested), generation)
    return _condition(kind, True, Reason.MONITORING_NOT_REQUESTED, "", generation)


def _http_route_condition(mesh: ActorMesh, observed: ObservedState, generation: int) -> Condition:
    """HTTPRouteReady: the route's CRD, then each named Gateway's verdict (from the route's status)."""
    route = mesh.spec.gateway.http_route
    kind = ConditionType.HTTP_ROUTE_READY
    if not route.enabled:
        return _condition(kind, True, Reason.HTTP_ROUTE_NOT_REQUESTED, "", generation)
    if not observed.gateway_api_served:
        message = (
            "spec.gateway.httpRoute is enabled but the Gateway API CRDs are not installed"
            " (httproutes.gateway.networking.k8s.io, v1); install them or turn it off."
            " The gateway Service (and any Ingress) works as before."
        )
        return _condition(kind, False, Reason.GATEWAY_API_CRDS_MISSING, message, generation)
    live = observed.gateway_route
    if live is None:
        return _condition(
            kind, False, Reason.HTTP_ROUTE_PENDING, "the HTTPRoute is not applied yet", generation
        )
    verdicts = {p.gateway: p for p in live.parents}
    wanted = [
        route_parent(ref.namespace or mesh.namespace, ref.name, ref.section_name, ref.port)
        for ref in route.parent_refs
    ]
    refused = [
        f"{g}: {'; '.join(verdicts[g].problems)}" for g in wanted if g in verdicts and verdicts[g].problems
    ]
    if refused:
        return _condition(kind, False, Reason.HTTP_ROUTE_NOT_ACCEPTED, " | ".join(refused), generation)
    silent = [g for g in wanted if g not in verdicts]
    if silent:
        message = f"HTTPRoute {live.name} applied; waiting for the controller of Gateway {', '.join(silent)}"
        return _condition(kind, False, Reason.HTTP_ROUTE_PENDING, message, generation)
    return _condition(kind, True, Reason.HTTP_ROUTE_ACCEPTED, f"accepted by {', '.join(wanted)}", generation)


def _condition(kind: ConditionType, value: bool, reason: Reason, message: str, generation: int) -> Condition:
    return Condition(
        type=kind.value,
        status="True" if value else "False",
        reason=reason.value,
        message=message,
        last_transition_time="",
        observed_generation=generation,
    )


PAUSED_DRIFT_SHOWN = 20
"""Children named in the Paused message; the rest are counted (a condition message should stay short)."""


def _paused_condition(observed: ObservedState, generation: int) -> Condition:
    if not observed.paused:
        return _condition(ConditionType.PAUSED, False, Reason.NOT_PAUSED, "", generation)
    message = f"{PAUSED_ANNOTATION} is true: the operator does not write children; remove it to resume."
    drift = observed.drift
    if drift:
        shown = ", ".join(drift[:PAUSED_DRIFT_SHOWN])
        more = f" and {len(drift) - PAUSED_DRIFT_SHOWN} more" if len(drift) > PAUSED_DRIFT_SHOWN else ""
        message += f" Resuming will change {len(drift)}: {shown}{more}."
    else:
        message += " The children match the spec."
    return _condition(ConditionType.PAUSED, True, Reason.PAUSED_BY_ANNOTATION, message, generation)


def compute_status(
    mesh: ActorMesh, observed: ObservedState, previous: Mapping[str, Any] | None, now: datetime
) -> dict[str, Any]:
    """The full status to store for `mesh` given what was observed; `previous` is the current `.status`."""
    previous = previous or {}
    components = _components(mesh.spec, observed)
    stall = _stall(mesh, observed)
    progress = None if stall or observed.paused else _progress(observed, components)
    ready, ready_reason, ready_message = _ready(stall, observed, components)
    if observed.paused and observed.drift and ready:
        ready, ready_reason = False, Reason.RECONCILE_PENDING
        ready_message = "paused: the children differ from the spec (see the Paused condition)"
    gen = mesh.generation
    idle_reason, idle_message = (
        (Reason.STALLED, "see the Stalled condition")
        if stall
        else (Reason.PAUSED, "see the Paused condition")
        if observed.paused
        else (Reason.RECONCILED, "")
    )
    ours = [
        _condition(ConditionType.READY, ready, ready_reason, ready_message, gen),
        _condition(
            ConditionType.RECONCILING,
            progress is not None,
            progress[0] if progress else idle_reason,
            progress[1] if progress else idle_message,
            gen,
        ),
        _condition(
            ConditionType.STALLED,
            stall is not None,
            stall[0] if stall else Reason.NO_ERROR,
            stall[1] if stall else "",
            gen,
        ),
        _paused_condition(observed, gen),
    ]
    ours.append(_monitoring_condition(mesh, observed, gen))
    ours.append(_http_route_condition(mesh, observed, gen))
    warnings, remove = _warnings(mesh, gen)
    ours += warnings
    phase = (
        Phase.PAUSED
        if observed.paused
        else Phase.FAILED
        if stall
        else Phase.READY
        if ready
        else Phase.PROGRESSING
        if progress
        else Phase.DEGRADED
    )
    processed = stall is not None or (observed.generation_applied and observed.error is None)
    actors = [c for c in components if c.is_actor]
    status: dict[str, Any] = {
        "observedGeneration": gen if processed else previous.get("observedGeneration"),
        "phase": phase.value,
        "conditions": _merge_conditions(previous.get("conditions") or [], ours, now, remove),
        "components": _counts(components),
        "actorsReady": f"{sum(c.state is ComponentState.READY for c in actors)}/{len(actors)}",
        "gatewayEndpoint": _endpoint(mesh, observed),
    }
    return {k: v for k, v in status.items() if v is not None}


def invalid_spec_status(
    previous: Mapping[str, Any] | None, generation: int, message: str, now: datetime
) -> dict[str, Any]:
    """The status for a spec the model rejects (there is no ActorMesh to compute from): Failed, with
    Stalled/InvalidSpec; the other owned keys stay as they were, other writers' conditions are kept."""
    previous = previous or {}
    ours = [
        _condition(ConditionType.READY, False, Reason.INVALID_SPEC, message, generation),
        _condition(ConditionType.RECONCILING, False, Reason.STALLED, "see the Stalled condition", generation),
        _condition(ConditionType.STALLED, True, Reason.INVALID_SPEC, message, generation),
    ]
    return {
        **previous,
        "observedGeneration": generation,
        "phase": Phase.FAILED.value,
        "conditions": _merge_conditions(previous.get("conditions") or [], ours, now),
    }


def status_patch(previous: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch turning `previous` into `new` for the keys we own; None when nothing changes.

    Keys we own that `new` no longer has (a component switched to external, the endpoint gone) are
    sent as null so the merge patch removes them; keys we do not own are never touched.
    """
    patch = _diff(previous or {}, new, OWNED_STATUS_KEYS)
    return patch or None


def _diff(old: Mapping[str, Any], new: Mapping[str, Any], owned: frozenset[str] | None) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key in set(old) | set(new):
        if owned is not None and key not in owned:
            continue
        if key not in new:
            patch[key] = None
        elif isinstance(old.get(key), Mapping) and isinstance(new[key], Mapping):
            sub = _diff(old[key], new[key], None)
            if sub:
                patch[key] = sub
        elif old.get(key) != new[key]:
            patch[key] = new[key]
    return patch

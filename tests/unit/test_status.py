"""compute_status: every combination of child states → conditions, phase, counts (kstatus semantics)."""

from __future__ import annotations

from typing import Any

import pytest

from actormesh_operator.api.observed import MissingSecret, ObservedState, ReconcileError
from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.api.status import ActorMeshStatus, Reason
from actormesh_operator.status import compute_status, invalid_spec_status, status_patch
from tests.unit.status_helpers import GENERATION, T0, T1, all_ready, condition, mesh, observed, ready

LLM_KEY = {"llm": {"model": "m", "apiKeySecretRef": {"name": "llm-key", "key": "api-key"}}}
QUEUE_LAG = {"actors": {"intentAnalyzer": {"autoscaling": {"enabled": True, "mode": "queueLag"}}}}

Expect = tuple[str, str]
READY: Expect = ("True", Reason.ALL_COMPONENTS_READY)
NOT_READY: Expect = ("False", Reason.COMPONENTS_NOT_READY)
PENDING: Expect = ("False", Reason.RECONCILE_PENDING)
DONE: Expect = ("False", Reason.RECONCILED)
STOPPED: Expect = ("False", Reason.STALLED)
CLEAR: Expect = ("False", Reason.NO_ERROR)


def busy(reason: Reason) -> Expect:
    return ("True", reason)


def failed(reason: Reason) -> tuple[Expect, Expect, Expect]:
    """Ready, Reconciling and Stalled of a stalled mesh."""
    return ("False", reason), STOPPED, ("True", reason)


def perm(message: str, reason: Reason) -> ReconcileError:
    return ReconcileError(message=message, permanent=True, reason=reason)


NO_KEY = MissingSecret(name="llm-key", key="api-key")
EXTERNAL = {"nats": {"external": {"url": "nats://n:4222"}}, "redis": {"external": {"url": "redis://r"}}}
STUCK_GW = ready("gateway", 2, ready=0, progress_deadline_exceeded=True)

# spec, observed, (Ready, Reconciling, Stalled) as (status, reason), phase, a message fragment
CASES = [
    pytest.param({}, observed(), (READY, DONE, CLEAR), "Ready", "14 components", id="all-ready"),
    pytest.param(
        {}, observed(workloads=[]), (NOT_READY, busy(Reason.CREATING), CLEAR), "Progressing",
        "missing: nats 0/1",
        id="nothing-created-yet",
    ),
    pytest.param(
        {}, observed(generation_applied=False), (PENDING, busy(Reason.NEW_GENERATION), CLEAR),
        "Progressing", "",
        id="generation-not-applied",
    ),
    pytest.param(
        {}, observed(error=ReconcileError(message="apply nats statefulset: 503", permanent=False)),
        (PENDING, busy(Reason.RETRYING), CLEAR), "Progressing", "503", id="transient-error",
    ),
    pytest.param(
        {}, observed(error=perm("apply gateway: 422", Reason.APPLY_REJECTED)),
        failed(Reason.APPLY_REJECTED), "Failed", "422", id="permanent-error",
    ),
    pytest.param(
        {}, observed(error=perm("gave up", Reason.RETRIES_EXHAUSTED)),
        failed(Reason.RETRIES_EXHAUSTED), "Failed", "gave up", id="retries-exhausted",
    ),
    pytest.param(
        LLM_KEY, observed(missing_secrets=[NO_KEY]), failed(Reason.SECRET_NOT_FOUND), "Failed",
        "spec.llm.apiKeySecretRef: Secret ns/llm-key not found", id="secret-missing",
    ),
    pytest.param(
        LLM_KEY, observed(missing_secrets=[NO_KEY.model_copy(update={"secret_exists": True})]),
        failed(Reason.SECRET_NOT_FOUND), "Failed", "Secret ns/llm-key has no key 'api-key'",
        id="secret-key-missing",
    ),
    pytest.param(
        {}, observed(missing_secrets=[MissingSecret(name="x", key="k", field="spec.gateway.authSecretRef")]),
        failed(Reason.SECRET_NOT_FOUND), "Failed", "spec.gateway.authSecretRef: Secret ns/x not found",
        id="secret-missing-field-given",
    ),
    pytest.param(
        LLM_KEY, observed(error=perm("bad", Reason.INVALID_SPEC), missing_secrets=[NO_KEY]),
        failed(Reason.INVALID_SPEC), "Failed", "bad", id="permanent-error-beats-secret",
    ),
    pytest.param(
        QUEUE_LAG, observed(keda_installed=False), failed(Reason.KEDA_NOT_INSTALLED), "Failed",
        "spec.actors.intentAnalyzer.autoscaling.mode: queueLag needs KEDA", id="queue-lag-without-keda",
    ),
    pytest.param(
        QUEUE_LAG, observed(keda_installed=True), (READY, DONE, CLEAR), "Ready", "", id="queue-lag-with-keda"
    ),
    pytest.param(
        {}, observed(workloads=all_ready(nats=ready("nats", 3, "StatefulSet", updated=1))),
        (NOT_READY, busy(Reason.ROLLING_OUT), CLEAR), "Progressing", "rolling out: nats 3/3",
        id="statefulset-rolling",
    ),
    pytest.param(
        {}, observed(workloads=all_ready(gateway=ready("gateway", generation=5, observed_generation=4))),
        (NOT_READY, busy(Reason.ROLLING_OUT), CLEAR), "Progressing", "gateway",
        id="generation-not-observed-by-controller",
    ),
    pytest.param(
        {}, observed(workloads=all_ready(decision_router=ready("decision-router", 3, current=1, ready=1))),
        (NOT_READY, busy(Reason.SCALING), CLEAR), "Progressing", "scaling: decisionRouter 1/3",
        id="scaling-up",
    ),
    pytest.param(
        {}, observed(workloads=all_ready(history=ready("history", kind="StatefulSet", ready=0))),
        (NOT_READY, busy(Reason.WAITING_FOR_READY), CLEAR), "Progressing", "waiting for ready: history 0/1",
        id="pods-not-ready",
    ),
    pytest.param(
        {}, observed(workloads=all_ready(skip=("nats",), history=ready("history", ready=0))),
        (NOT_READY, busy(Reason.CREATING), CLEAR), "Progressing",
        "missing: nats 0/1; waiting for ready: history 0/1",
        id="worst-state-names-the-reason",
    ),
    pytest.param(
        {}, observed(workloads=all_ready(gateway=STUCK_GW)),
        (("False", Reason.ROLLOUT_STUCK), DONE, CLEAR), "Degraded", "stuck: gateway 0/2", id="rollout-stuck",
    ),
    pytest.param(
        # `kubectl scale --replicas=0` under an HPA: nothing brings it back, and it was "0/0 ready".
        {"actors": {"sentimentAnalyzer": {"autoscaling": {"enabled": True, "minReplicas": 2}}}},
        observed(workloads=all_ready(sentiment_analyzer=ready("sentiment-analyzer", 0))),
        (NOT_READY, DONE, CLEAR), "Degraded", "scaled to 0 outside the spec: sentimentAnalyzer 0/2",
        id="scaled-to-zero-by-hand",
    ),
    pytest.param(
        {"actors": {"sentimentAnalyzer": {"replicas": 0}}},
        observed(workloads=all_ready(sentiment_analyzer=ready("sentiment-analyzer", 0))),
        (READY, DONE, CLEAR), "Ready", "14 components", id="zero-replicas-asked-for",
    ),
    pytest.param(
        {}, observed(workloads=all_ready(gateway=STUCK_GW, nats=ready("nats", updated=0))),
        (("False", Reason.ROLLOUT_STUCK), busy(Reason.ROLLING_OUT), CLEAR), "Progressing",
        "stuck: gateway 0/2",
        id="stuck-while-another-rolls",
    ),
    pytest.param(
        {}, observed(workloads=all_ready(gateway=ready("gateway", progress_deadline_exceeded=True))),
        (READY, DONE, CLEAR), "Ready", "", id="stale-deadline-flag-once-ready",
    ),
    pytest.param(
        EXTERNAL, observed(workloads=all_ready(skip=("nats", "redis"))), (READY, DONE, CLEAR), "Ready",
        "12 components", id="external-nats-and-redis",
    ),
    pytest.param(
        {"redis": {"enabled": False}}, observed(), (READY, DONE, CLEAR), "Ready", "13 components",
        id="redis-disabled-leftover-ignored",
    ),
    pytest.param(
        {"mockServices": {"enabled": False}}, observed(workloads=all_ready(skip=("mocks",))),
        (READY, DONE, CLEAR), "Ready", "13 components", id="mocks-disabled",
    ),
    pytest.param(
        {"actors": {"escalationRouter": {"enabled": False}}},
        observed(workloads=all_ready(skip=("escalation-router",))),
        (READY, DONE, CLEAR), "Ready", "13 components", id="actor-disabled",
    ),
    pytest.param(
        {"actors": {"intentAnalyzer": {"replicas": 0}}},
        observed(workloads=all_ready(intent_analyzer=ready("intent-analyzer", 0))),
        (READY, DONE, CLEAR), "Ready", "", id="scaled-to-zero-is-ready",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "state", "expected", "phase", "fragment"), CASES)
def test_conditions_and_phase(
    spec: dict[str, Any],
    state: ObservedState,
    expected: tuple[Expect, Expect, Expect],
    phase: str,
    fragment: str,
) -> None:
    status = compute_status(mesh(spec), state, None, T0)
    got = {kind: condition(status, kind) for kind in ("Ready", "Reconciling", "Stalled")}
    assert tuple((c["status"], c["reason"]) for c in got.values()) == expected
    assert status["phase"] == phase
    assert fragment in " | ".join(c["message"] for c in got.values())
    assert all(c["observedGeneration"] == GENERATION for c in got.values())
    ActorMeshStatus.model_validate(status)  # what we write fits the CRD's status schema


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param(observed(), GENERATION, id="applied"),
        pytest.param(observed(generation_applied=False), 2, id="not-applied-keeps-previous"),
        pytest.param(
            observed(error=ReconcileError(message="x", permanent=False)), 2, id="retrying-keeps-previous"
        ),
        pytest.param(
            observed(error=ReconcileError(message="x", permanent=True)), GENERATION, id="stalled-is-processed"
        ),
    ],
)
def test_observed_generation(state: ObservedState, expected: int) -> None:
    assert compute_status(mesh(), state, {"observedGeneration": 2}, T0)["observedGeneration"] == expected


def test_observed_generation_absent_before_the_first_apply() -> None:
    assert "observedGeneration" not in compute_status(mesh(), observed(generation_applied=False), None, T0)


def test_component_counts() -> None:
    state = observed(workloads=all_ready(gateway=ready("gateway", 4, ready=3, current=4, updated=4)))
    status = compute_status(mesh({"redis": {"enabled": False}}), state, None, T0)
    components = status["components"]
    assert components["gateway"] == {"ready": 3, "desired": 4}
    assert components["nats"] == {"ready": 1, "desired": 1}
    assert "redis" not in components
    assert set(components["actors"]) == {
        "sentimentAnalyzer", "intentAnalyzer", "contextRetriever", "decisionRouter", "executionCoordinator",
        "responseGenerator", "guardrailValidator", "escalationRouter", "responseAggregator",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "workloads", "expected"),
    [
        pytest.param({}, all_ready(), "9/9", id="all"),
        pytest.param({}, all_ready(skip=("intent-analyzer",)), "8/9", id="one-missing"),
        pytest.param(
            {}, all_ready(intent_analyzer=ready("intent-analyzer", 2, ready=1)), "8/9", id="one-partial"
        ),
        pytest.param({"actors": {"defaults": {"enabled": False}}}, all_ready(), "0/0", id="none-enabled"),
        pytest.param({}, [], "0/9", id="none-yet"),
    ],
)
def test_actors_ready_column(spec: dict[str, Any], workloads: list[Any], expected: str) -> None:
    assert compute_status(mesh(spec), observed(workloads=workloads), None, T0)["actorsReady"] == expected


def test_desired_comes_from_the_spec_until_the_workload_exists() -> None:
    spec = {
        "gateway": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 4}},
        "nats": {"replicas": 3},
    }
    status = compute_status(mesh(spec), observed(workloads=[]), None, T0)
    assert status["components"]["gateway"] == {"ready": 0, "desired": 2}
    assert status["components"]["nats"] == {"ready": 0, "desired": 3}


def test_desired_follows_the_autoscaler_once_the_workload_exists() -> None:
    spec = {"gateway": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 9}}}
    state = observed(workloads=all_ready(gateway=ready("gateway", 7)))
    status = compute_status(mesh(spec), state, None, T0)
    assert status["components"]["gateway"] == {"ready": 7, "desired": 7}
    assert condition(status, "Ready")["status"] == "True"


def test_status_of_an_unready_mesh_validates() -> None:
    status = compute_status(mesh(), observed(workloads=[]), None, T0)
    ActorMeshStatus.model_validate(status)


def test_mesh_from_body_round_trip_has_generation() -> None:
    assert isinstance(mesh(), ActorMesh)
    assert mesh().generation == GENERATION


def test_invalid_spec_status_keeps_order_transition_times_and_other_writers() -> None:
    foreign = {
        "type": "example.com/Audited",
        "status": "True",
        "reason": "Checked",
        "lastTransitionTime": "t",
    }
    first = invalid_spec_status({"conditions": [foreign]}, GENERATION, "spec.image: bad", T0)
    ActorMeshStatus.model_validate(first)
    assert [c["type"] for c in first["conditions"]] == [foreign["type"], "Ready", "Reconciling", "Stalled"]
    stall = condition(first, "Stalled")
    assert (stall["status"], stall["reason"], stall["message"]) == (
        "True",
        Reason.INVALID_SPEC,
        "spec.image: bad",
    )
    assert first["phase"] == "Failed"
    assert first["observedGeneration"] == GENERATION

    again = invalid_spec_status(first, GENERATION, "spec.image: bad", T1)
    assert status_patch(first, again) is None  # same message later: nothing to write, times kept


def _first_created(component: str, replicas: int = 1, kind: str = "Deployment", **counters: Any) -> Any:
    """A workload just created (generation 1): by default as our apply's response returns it, before
    its controller has written any status."""
    fields = {"current": 0, "updated": 0, "ready": 0, "generation": 1, "observed_generation": 0}
    return ready(component, replicas, kind, **{**fields, **counters})


def _all_first_created(**counters: Any) -> list[Any]:
    return [_first_created(w.component, w.desired, w.kind, **counters) for w in all_ready()]


def test_a_new_mesh_is_waiting_for_ready_whatever_the_controllers_reported_yet() -> None:
    """One status for a first creation until pods become ready: the controllers' first reports
    (generation observed, pods created) change nothing a user reads, so they cost no write."""
    new = mesh(generation=1)
    just_applied = compute_status(new, observed(workloads=_all_first_created()), None, T0)
    assert condition(just_applied, "Reconciling")["reason"] == Reason.WAITING_FOR_READY
    assert condition(just_applied, "Ready")["message"].startswith("waiting for ready: nats 0/1, redis 0/1")
    for counters in (
        {"observed_generation": 1},  # the controller has looked, no pod yet
        {"observed_generation": 1, "current": 1, "updated": 1},  # its pods exist, not ready
    ):
        later = compute_status(new, observed(workloads=_all_first_created(**counters)), just_applied, T1)
        assert status_patch(just_applied, later) is None, counters
    one_ready = _all_first_created(observed_generation=1, current=1, updated=1)
    one_ready[0] = ready("nats", kind="StatefulSet", generation=1, observed_generation=1)
    assert status_patch(just_applied, compute_status(new, observed(workloads=one_ready), just_applied, T1))


@pytest.mark.parametrize(
    ("workload", "reason"),
    [
        pytest.param(
            _first_created("nats", 3, "StatefulSet", observed_generation=1, current=1, updated=1),
            Reason.WAITING_FOR_READY, id="first-pods-of-a-new-statefulset",
        ),
        pytest.param(
            ready("nats", 3, "StatefulSet", generation=2, observed_generation=2, current=1, ready=1),
            Reason.SCALING, id="scaled-after-creation",
        ),
        pytest.param(
            ready("gateway", generation=2, observed_generation=1, ready=0), Reason.ROLLING_OUT,
            id="changed-after-creation",
        ),
        pytest.param(
            ready("gateway", generation=2, current=2, updated=1, ready=1), Reason.ROLLING_OUT,
            id="surged-new-pod-beside-the-old-one",
        ),
        pytest.param(
            ready("gateway", 3, current=5, updated=3, ready=3), Reason.ROLLING_OUT,
            id="old-pods-pending-termination",
        ),
        pytest.param(
            ready("gateway", 1, current=3, updated=3, ready=3), Reason.SCALING,
            id="scaled-down-no-template-change",
        ),
        pytest.param(
            _first_created("gateway", 2, progress_deadline_exceeded=True), Reason.ROLLOUT_STUCK,
            id="new-and-stuck-is-stuck",
        ),
    ],
)  # fmt: skip
def test_only_a_changed_workload_is_rolling_out_or_scaling(workload: Any, reason: Reason) -> None:
    key = workload.component.replace("-", "_")
    status = compute_status(mesh(), observed(workloads=all_ready(**{key: workload})), None, T0)
    said = {condition(status, "Reconciling")["reason"], condition(status, "Ready")["reason"]}
    assert reason in said

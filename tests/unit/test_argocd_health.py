"""The Argo CD health check (config/argocd/health.lua) on a table of ActorMesh statuses, run in Lua 5.1
(the dialect of Argo CD's gopher-lua) through lupa; and statuses produced by compute_status."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

from actormesh_operator.api.observed import MissingSecret, ReconcileError
from actormesh_operator.status import compute_status
from tests.unit.status_helpers import GENERATION, T0, all_ready, mesh, observed, ready

ARGOCD = Path(__file__).resolve().parents[2] / "config" / "argocd"
SCRIPT = (ARGOCD / "health.lua").read_text()
HealthCheck = Callable[[dict[str, Any]], tuple[str, str]]


def _to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value])
    return value


@pytest.fixture(scope="module")
def health() -> HealthCheck:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    check = runtime.eval(f"function(obj)\n{SCRIPT}\nend")

    def run(obj: dict[str, Any]) -> tuple[str, str]:
        result = check(_to_lua(runtime, obj))
        return str(result["status"]), str(result["message"])

    return run


def _cond(
    kind: str, status: str, reason: str, message: str = "", generation: int | None = 2
) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": kind, "status": status, "reason": reason, "message": message}
    if generation is not None:
        entry["observedGeneration"] = generation
    return entry


def _obj(status: dict[str, Any] | None, generation: int | None = 2) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "demo"}
    if generation is not None:
        meta["generation"] = generation
    return {"metadata": meta, **({"status": status} if status is not None else {})}


READY = _cond("Ready", "True", "AllComponentsReady", "14 components ready")
NOT_READY = _cond("Ready", "False", "ComponentsNotReady", "missing: nats 0/1")
IDLE = _cond("Reconciling", "False", "Reconciled")
BUSY = _cond("Reconciling", "True", "RollingOut", "rolling out: gateway 1/2")
CLEAR = _cond("Stalled", "False", "NoError")
STUCK = _cond("Stalled", "True", "SecretNotFound", "spec.llm.apiKeySecretRef: Secret ns/k not found")

CASES = [
    pytest.param(_obj(None), "Progressing", "report status", id="no-status-yet"),
    pytest.param(
        _obj({"conditions": [READY, IDLE, CLEAR]}), "Progressing", "generation 2", id="no-observed-generation"
    ),
    pytest.param(
        _obj({"observedGeneration": 1, "conditions": [READY, IDLE, CLEAR]}),
        "Progressing",
        "generation 2",
        id="old-generation",
    ),
    pytest.param(
        _obj({"observedGeneration": 2, "conditions": [READY, IDLE, CLEAR]}),
        "Healthy",
        "14 components",
        id="ready",
    ),
    pytest.param(
        _obj({"observedGeneration": 2, "conditions": [NOT_READY, BUSY, CLEAR]}),
        "Progressing",
        "RollingOut: rolling out",
        id="rolling",
    ),
    pytest.param(
        _obj({"observedGeneration": 2, "conditions": [NOT_READY, IDLE, STUCK]}),
        "Degraded",
        "SecretNotFound: spec.llm",
        id="stalled",
    ),
    pytest.param(
        _obj({"observedGeneration": 2, "conditions": [READY, IDLE, STUCK]}),
        "Degraded",
        "SecretNotFound",
        id="stalled-wins-over-ready",
    ),
    pytest.param(
        _obj(
            {
                "observedGeneration": 2,
                "conditions": [_cond("Ready", "False", "RolloutStuck", "stuck: gateway 0/2"), IDLE, CLEAR],
            }
        ),
        "Degraded",
        "RolloutStuck: stuck",
        id="rollout-stuck",
    ),
    pytest.param(
        _obj({"observedGeneration": 2, "conditions": []}),
        "Progressing",
        "Ready condition",
        id="no-conditions",
    ),
    pytest.param(_obj({"observedGeneration": 2}), "Progressing", "Ready condition", id="conditions-absent"),
    pytest.param(
        _obj(
            {
                "observedGeneration": 2,
                "conditions": [_cond("Ready", "True", "AllComponentsReady", generation=1)],
            }
        ),
        "Progressing",
        "Ready condition",
        id="stale-ready-condition",
    ),
    pytest.param(
        _obj(
            {
                "observedGeneration": 2,
                "conditions": [_cond("Ready", "True", "AllComponentsReady", generation=None)],
            }
        ),
        "Healthy",
        "AllComponentsReady",
        id="condition-without-generation",
    ),
    pytest.param(
        _obj({"observedGeneration": 5, "conditions": [READY]}, generation=None),
        "Healthy",
        "",
        id="object-without-generation",
    ),
    pytest.param(
        _obj({"observedGeneration": 2, "conditions": [_cond("example.com/Other", "False", "X"), READY]}),
        "Healthy",
        "",
        id="foreign-condition-ignored",
    ),
    pytest.param(
        _obj(
            {
                "observedGeneration": 2,
                "conditions": [
                    READY,
                    IDLE,
                    CLEAR,
                    _cond(
                        "AnonymousGateway", "True", "AnonymousModeEnabled", "spec.gateway.anonymous is true"
                    ),
                ],
            }
        ),
        "Healthy",
        "WARNING anonymous gateway",
        id="anonymous-warning",
    ),
]


@pytest.mark.parametrize(("obj", "expected", "fragment"), CASES)
def test_health_table(health: HealthCheck, obj: dict[str, Any], expected: str, fragment: str) -> None:
    status, message = health(obj)
    assert status == expected
    assert fragment in message


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param(observed(), "Healthy", id="all-ready"),
        pytest.param(observed(workloads=[]), "Progressing", id="creating"),
        pytest.param(
            observed(error=ReconcileError(message="503", permanent=False)), "Progressing", id="retrying"
        ),
        pytest.param(observed(missing_secrets=[MissingSecret(name="s", key="k")]), "Degraded", id="stalled"),
        pytest.param(observed(paused=True), "Suspended", id="paused"),
        pytest.param(
            observed(paused=True, drift=["deployment demo-gateway (drifted at .spec.replicas)"]),
            "Suspended",
            id="paused-with-hand-changes",
        ),
        pytest.param(
            observed(workloads=all_ready(gateway=ready("gateway", ready=0, progress_deadline_exceeded=True))),
            "Degraded",
            id="rollout-stuck",
        ),
    ],
)
def test_health_of_computed_statuses(health: HealthCheck, state: Any, expected: str) -> None:
    status = compute_status(mesh(), state, {"observedGeneration": GENERATION - 1}, T0)
    assert health({"metadata": {"generation": GENERATION}, "status": status})[0] == expected


def test_configmap_patch_embeds_the_script_verbatim() -> None:
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    assert patch["metadata"] == {"name": "argocd-cm", "namespace": "argocd"}
    assert patch["data"] == {"resource.customizations.health.actormesh.io_ActorMesh": SCRIPT}

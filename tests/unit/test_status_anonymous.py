"""The AnonymousGateway warning: present exactly while `spec.gateway.anonymous` is true."""

from __future__ import annotations

from actormesh_operator.status import compute_status
from tests.unit.status_helpers import T0, T1, all_ready, condition, mesh, observed

FOREIGN = {
    "type": "Audited",
    "status": "True",
    "reason": "Checked",
    "lastTransitionTime": "2026-01-01T00:00:00Z",
}


def _types(status: dict) -> list[str]:
    return [c["type"] for c in status["conditions"]]


def test_anonymous_mesh_carries_a_warning_that_names_the_field() -> None:
    status = compute_status(mesh({"gateway": {"anonymous": True}}), observed(workloads=all_ready()), None, T0)
    warning = condition(status, "AnonymousGateway")
    assert warning["status"] == "True"
    assert warning["reason"] == "AnonymousModeEnabled"
    assert "spec.gateway.anonymous" in warning["message"]
    assert "any customer" in warning["message"]
    assert status["phase"] == "Ready"  # a warning, not a failure


def test_the_warning_goes_away_when_auth_is_switched_on_and_others_conditions_stay() -> None:
    first = compute_status(mesh({"gateway": {"anonymous": True}}), observed(workloads=all_ready()), None, T0)
    first["conditions"].insert(0, FOREIGN)
    second = compute_status(mesh({}), observed(workloads=all_ready()), first, T1)
    assert _types(second) == [
        "Audited",
        "Ready",
        "Reconciling",
        "Stalled",
        "Paused",
        "MonitoringReady",
        "HTTPRouteReady",
    ]


def test_authenticated_mesh_has_no_warning() -> None:
    status = compute_status(mesh({}), observed(workloads=all_ready()), None, T0)
    assert "AnonymousGateway" not in _types(status)

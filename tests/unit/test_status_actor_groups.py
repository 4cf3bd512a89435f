"""Status with `spec.actors.groups`: a grouped actor is exactly as ready as its group's Deployment, and
`actorsReady` (the `kubectl get am` column) still counts actors, not Deployments."""

from __future__ import annotations

from typing import Any

from actormesh_operator.status import compute_status
from tests.unit.status_helpers import T0, all_ready, condition, mesh, observed, ready

GROUP = {
    "actors": {
        "groups": [{"name": "routers", "actors": ["decisionRouter", "escalationRouter"], "replicas": 2}]
    }
}
MEMBERS = ("decision-router", "escalation-router")


def _status(workloads: list[Any]) -> dict[str, Any]:
    return compute_status(mesh(GROUP), observed(workloads=workloads), None, T0)


def test_grouped_actors_are_ready_when_their_group_is() -> None:
    status = _status([*all_ready(skip=MEMBERS), ready("routers", 2)])
    assert status["actorsReady"] == "9/9"
    assert status["components"]["actors"]["decisionRouter"] == {"ready": 2, "desired": 2}
    assert status["components"]["actors"]["escalationRouter"] == {"ready": 2, "desired": 2}
    assert condition(status, "Ready")["status"] == "True"


def test_grouped_actors_are_not_ready_while_their_group_is_not() -> None:
    status = _status([*all_ready(skip=MEMBERS), ready("routers", 2, ready=1)])
    assert status["actorsReady"] == "7/9"
    assert status["components"]["actors"]["decisionRouter"] == {"ready": 1, "desired": 2}
    assert condition(status, "Ready")["status"] == "False"


def test_members_own_old_deployments_do_not_make_them_ready() -> None:
    # Just after grouping: the per-actor Deployments are still there (until pruned), the group's is not.
    status = _status(all_ready())
    assert status["actorsReady"] == "7/9"
    assert status["components"]["actors"]["escalationRouter"] == {"ready": 0, "desired": 2}
    assert "escalationRouter" in condition(status, "Reconciling")["message"]

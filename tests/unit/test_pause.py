"""Pause: the status a paused mesh reports, the words for what resuming would change, and the trigger."""

from __future__ import annotations

from typing import Any

import pytest

from actormesh_operator.api.observed import ReconcileError
from actormesh_operator.api.spec import is_paused
from actormesh_operator.reconcile.diff import pending_changes, with_hash
from actormesh_operator.reconcile.state import pause_changed
from actormesh_operator.status import compute_status
from tests.unit.status_helpers import T0, all_ready, condition, mesh, observed

MANAGER = "actormesh-operator"


def _status(**fields: Any) -> dict[str, Any]:
    return compute_status(mesh(), observed(**fields), None, T0)


def test_a_paused_mesh_says_so_and_is_not_reconciling() -> None:
    status = _status(paused=True, generation_applied=False)
    paused, reconciling = condition(status, "Paused"), condition(status, "Reconciling")
    assert (paused["status"], paused["reason"]) == ("True", "PausedByAnnotation")
    assert "actormesh.io/paused" in paused["message"]
    assert "match the spec" in paused["message"]
    assert (reconciling["status"], reconciling["reason"]) == ("False", "Paused")
    assert status["phase"] == "Paused"


def test_a_paused_mesh_lists_what_resuming_would_change_and_is_not_ready() -> None:
    drift = [f"deployment demo-a{i} (drifted at .spec.replicas)" for i in range(25)]
    status = _status(paused=True, drift=drift)
    message = condition(status, "Paused")["message"]
    assert "Resuming will change 25: deployment demo-a0 (drifted at .spec.replicas)" in message
    assert message.endswith("and 5 more.")
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ReconcilePending")


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"error": ReconcileError(message="gave up", permanent=True)}, id="stalled"),
        pytest.param({"error": ReconcileError(message="503", permanent=False)}, id="retrying"),
        pytest.param({"workloads": all_ready(skip=("gateway",))}, id="not-ready"),
    ],
)
def test_the_phase_is_paused_whatever_the_other_conditions_say(fields: dict[str, Any]) -> None:
    status = _status(paused=True, **fields)
    assert status["phase"] == "Paused"
    assert condition(status, "Paused")["status"] == "True"


def test_an_active_mesh_reports_paused_false() -> None:
    status = _status()
    assert (condition(status, "Paused")["status"], condition(status, "Paused")["reason"]) == (
        "False",
        "NotPaused",
    )
    assert status["phase"] == "Ready"


def test_only_true_pauses() -> None:
    assert is_paused({"actormesh.io/paused": "true"})
    assert is_paused({"actormesh.io/paused": " True "})
    assert not is_paused({"actormesh.io/paused": "false"})
    assert not is_paused({})


def _deployment(name: str, replicas: int, manager: str = MANAGER) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "ns", "ownerReferences": [{"uid": "u", "controller": True}]},
        "spec": {"replicas": replicas},
    }


def _live(manifest: dict[str, Any], **spec: Any) -> dict[str, Any]:
    body = with_hash(manifest)
    body["metadata"]["managedFields"] = [{"manager": MANAGER, "operation": "Apply"}]
    body["spec"] = {**body["spec"], **spec}
    return body


def test_pending_changes_name_drift_missing_and_pruned_children() -> None:
    gateway, actor, gone = _deployment("gw", 2), _deployment("actor", 1), _deployment("old", 1)
    live = {
        ("apps", "Deployment", "ns", "gw"): _live(gateway, replicas=0),  # scaled by hand
        ("apps", "Deployment", "ns", "old"): _live(gone),
    }
    changes = pending_changes([gateway, actor], live, MANAGER, "u")
    assert changes == [
        "deployment gw (drifted at .spec.replicas)",
        "deployment actor (missing)",
        "delete deployment old",
    ]
    live[("apps", "Deployment", "ns", "gw")] = _live(gateway)
    assert (
        pending_changes(
            [gateway],
            {("apps", "Deployment", "ns", "gw"): live[("apps", "Deployment", "ns", "gw")]},
            MANAGER,
            "u",
        )
        == []
    )


def _body(annotation: str | None, reported: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "m"}
    if annotation is not None:
        meta["annotations"] = {"actormesh.io/paused": annotation}
    status = {"conditions": [{"type": "Paused", "status": reported}]} if reported else {}
    return {"metadata": meta, "status": status}


def test_a_pause_or_resume_not_yet_reported_wakes_the_mesh() -> None:
    assert pause_changed(_body("true", None))
    assert pause_changed(_body("true", "False"))
    assert pause_changed(_body(None, "True"))
    assert not pause_changed(_body("true", "True"))
    assert not pause_changed(_body(None, "False"))
    assert not pause_changed(_body(None, None))

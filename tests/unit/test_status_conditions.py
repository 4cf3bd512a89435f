"""Condition bookkeeping, the gateway endpoint, the status patch and the observed-object parsers."""

from __future__ import annotations

from typing import Any

import pytest

from actormesh_operator.api import observed as obs
from actormesh_operator.api.observed import ObservedIngress, ObservedService, ObservedWorkload
from actormesh_operator.builders import labels
from actormesh_operator.status import compute_status, status_patch
from tests.unit.status_helpers import T0, T1, all_ready, condition, mesh, observed, ready

FOREIGN = {
    "type": "example.com/Audited",
    "status": "True",
    "reason": "Checked",
    "message": "by someone else",
    "lastTransitionTime": "2025-12-31T00:00:00Z",
}


def test_last_transition_time_is_kept_while_the_status_holds() -> None:
    first = compute_status(mesh(), observed(generation_applied=False), None, T0)
    # Still not ready, for another reason: Ready stays False, so its time does not move.
    second = compute_status(mesh(), observed(workloads=all_ready(nats=ready("nats", ready=0))), first, T1)
    assert condition(second, "Ready")["reason"] != condition(first, "Ready")["reason"]
    assert condition(second, "Ready")["lastTransitionTime"] == "2026-01-01T12:00:00Z"


def test_last_transition_time_moves_when_the_status_flips() -> None:
    first = compute_status(mesh(), observed(workloads=[]), None, T0)
    second = compute_status(mesh(), observed(), first, T1)
    assert condition(second, "Ready")["lastTransitionTime"] == "2026-01-01T12:05:00Z"
    assert condition(second, "Reconciling")["lastTransitionTime"] == "2026-01-01T12:05:00Z"
    assert condition(second, "Stalled")["lastTransitionTime"] == "2026-01-01T12:00:00Z"


def test_other_writers_conditions_are_kept_in_place_and_untouched() -> None:
    previous = {
        "conditions": [
            FOREIGN,
            {"type": "Ready", "status": "False", "reason": "Old", "message": "", "lastTransitionTime": "x"},
        ]
    }
    status = compute_status(mesh(), observed(), previous, T0)
    assert status["conditions"][0] == FOREIGN
    assert [c["type"] for c in status["conditions"]] == [
        "example.com/Audited",
        "Ready",
        "Reconciling",
        "Stalled",
        "Paused",
        "MonitoringReady",
        "HTTPRouteReady",
    ]


def test_the_full_conditions_list_is_returned() -> None:
    status = compute_status(mesh(), observed(), {"conditions": [FOREIGN]}, T0)
    assert len(status["conditions"]) == 7


def test_unchanged_status_needs_no_patch() -> None:
    first = compute_status(mesh(), observed(), None, T0)
    again = compute_status(mesh(), observed(), first, T1)
    assert again == first
    assert status_patch(first, again) is None


def test_patch_carries_only_changes_and_nulls_removed_components() -> None:
    before = compute_status(mesh(), observed(), None, T0)
    after = compute_status(mesh({"redis": {"enabled": False}}), observed(), before, T0)
    patch = status_patch({**before, "foreign": {"kept": True}}, after)
    assert patch is not None
    assert patch["components"] == {"redis": None}
    assert "foreign" not in patch


def test_patch_replaces_the_conditions_list_whole() -> None:
    before = compute_status(mesh(), observed(workloads=[]), None, T0)
    after = compute_status(mesh(), observed(), before, T1)
    patch = status_patch(before, after)
    assert patch is not None
    assert patch["conditions"] == after["conditions"]
    assert patch["phase"] == "Ready"


def test_first_patch_is_the_whole_status() -> None:
    status = compute_status(mesh(), observed(), None, T0)
    assert status_patch(None, status) == status


INGRESS_MESH = {"gateway": {"ingress": {"enabled": True, "host": "chat.example.com"}}}
SERVICE = ObservedService(name="demo-gateway", namespace="ns")


@pytest.mark.parametrize(
    ("spec", "fields", "expected"),
    [
        pytest.param({}, {}, None, id="nothing-yet"),
        pytest.param({}, {"gateway_service": SERVICE}, "http://demo-gateway.ns.svc", id="cluster-ip"),
        pytest.param(
            {},
            {"gateway_service": SERVICE.model_copy(update={"port": 8000})},
            "http://demo-gateway.ns.svc:8000",
            id="cluster-ip-other-port",
        ),
        pytest.param(
            {},
            {
                "gateway_service": SERVICE.model_copy(
                    update={"type": "LoadBalancer", "load_balancer_hosts": ["1.2.3.4"]}
                )
            },
            "http://1.2.3.4",
            id="load-balancer",
        ),
        pytest.param(
            {},
            {"gateway_service": SERVICE.model_copy(update={"type": "LoadBalancer"})},
            "http://demo-gateway.ns.svc",
            id="load-balancer-pending",
        ),
        pytest.param(
            INGRESS_MESH,
            {
                "gateway_service": SERVICE,
                "gateway_ingress": ObservedIngress(name="g", host="chat.example.com", tls=True),
            },
            "https://chat.example.com",
            id="ingress-tls",
        ),
        pytest.param(
            INGRESS_MESH,
            {"gateway_ingress": ObservedIngress(name="g", host="chat.example.com")},
            "http://chat.example.com",
            id="ingress-plain",
        ),
        pytest.param(
            {},
            {
                "gateway_service": SERVICE,
                "gateway_ingress": ObservedIngress(name="g", host="old.example.com"),
            },
            "http://demo-gateway.ns.svc",
            id="leftover-ingress-ignored",
        ),
    ],
)
def test_gateway_endpoint(spec: dict[str, Any], fields: dict[str, Any], expected: str | None) -> None:
    status = compute_status(mesh(spec), observed(**fields), None, T0)
    assert status.get("gatewayEndpoint") == expected


DEPLOYMENT = {
    "kind": "Deployment",
    "metadata": {
        "name": "demo-gateway",
        "generation": 4,
        "labels": {"app.kubernetes.io/component": "gateway"},
    },
    "spec": {"replicas": 3},
    "status": {
        "observedGeneration": 4,
        "replicas": 3,
        "updatedReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 2,
        "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}],
    },
}


def test_deployment_from_object_counts_available_replicas() -> None:
    w = ObservedWorkload.from_object(DEPLOYMENT)
    assert (w.component, w.kind, w.desired, w.current, w.updated, w.ready) == (
        "gateway",
        "Deployment",
        3,
        3,
        3,
        2,
    )
    assert (w.generation, w.observed_generation, w.progress_deadline_exceeded) == (4, 4, True)


def test_statefulset_from_object_counts_ready_replicas_and_tolerates_no_status() -> None:
    sts = {
        "kind": "StatefulSet",
        "metadata": {"name": "demo-nats"},
        "spec": {},
        "status": {"readyReplicas": 1},
    }
    w = ObservedWorkload.from_object(sts)
    assert (w.desired, w.ready, w.current, w.component) == (1, 1, 0, "")
    fresh = ObservedWorkload.from_object(
        {"kind": "StatefulSet", "metadata": {"name": "n"}, "spec": {"replicas": 3}}
    )
    assert (fresh.desired, fresh.ready) == (3, 0)


def test_from_object_refuses_other_kinds() -> None:
    with pytest.raises(ValueError, match="not a workload"):
        ObservedWorkload.from_object({"kind": "Service"})


def test_service_and_ingress_from_object() -> None:
    svc = ObservedService.from_object(
        {
            "metadata": {"name": "g", "namespace": "x"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 8080}]},
            "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}},
        }
    )
    assert (svc.type, svc.port, svc.load_balancer_hosts) == ("LoadBalancer", 8080, ["lb.example.com"])
    ing = ObservedIngress.from_object(
        {"metadata": {"name": "g"}, "spec": {"rules": [{"host": "a.example.com"}], "tls": [{"hosts": ["a"]}]}}
    )
    assert (ing.host, ing.tls) == ("a.example.com", True)


def test_component_labels_match_the_builders() -> None:
    assert (obs.COMPONENT_LABEL, obs.COMPONENT_NATS, obs.COMPONENT_REDIS) == (
        labels.COMPONENT,
        labels.NATS,
        labels.REDIS,
    )
    assert (obs.COMPONENT_HISTORY, obs.COMPONENT_GATEWAY, obs.COMPONENT_MOCKS) == (
        labels.HISTORY,
        labels.GATEWAY,
        labels.MOCKS,
    )

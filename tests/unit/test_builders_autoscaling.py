"""autoscaling.py and disruption.py: HPAs, KEDA ScaledObjects, the queue-lag fallback, PDBs."""

from __future__ import annotations

from typing import Any

import pytest

from actormesh_operator.builders.autoscaling import queue_lag_unavailable
from tests.unit.builder_helpers import children, index, kinds_names, make_mesh

QUEUE_LAG = {
    "actors": {
        "responseGenerator": {"autoscaling": {"enabled": True, "mode": "queueLag", "lagThreshold": 25}}
    }
}


def test_cpu_hpa_for_an_actor() -> None:
    spec = {
        "actors": {"intentAnalyzer": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 8}}}
    }
    hpa = index(children(spec))[("HorizontalPodAutoscaler", "demo-intent-analyzer")]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "demo-intent-analyzer",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"] == {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}


def test_gateway_hpa() -> None:
    objs = index(children({"gateway": {"autoscaling": {"enabled": True, "maxReplicas": 4}}}))
    assert objs[("HorizontalPodAutoscaler", "demo-gateway")]["spec"]["maxReplicas"] == 4


def test_queue_lag_with_keda_gives_a_scaled_object_and_no_hpa() -> None:
    objs = index(children(QUEUE_LAG, keda=True))
    assert ("HorizontalPodAutoscaler", "demo-response-generator") not in objs
    so = objs[("ScaledObject", "demo-response-generator")]
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    assert so["spec"]["scaleTargetRef"]["name"] == "demo-response-generator"
    [trigger] = so["spec"]["triggers"]
    assert trigger["type"] == "nats-jetstream"
    assert trigger["metadata"] == {
        "natsServerMonitoringEndpoint": "demo-nats.shop.svc.cluster.local:8222",
        "account": "$G",
        "stream": "ACTORMESH-demo",
        "consumer": "response_generator",
        "lagThreshold": "25",
    }


@pytest.mark.parametrize(
    ("extra", "keda", "reason"),
    [
        pytest.param({}, False, "KEDA CRDs", id="no-keda"),
        pytest.param(
            {"nats": {"external": {"url": "nats://n:4222"}}}, True, "managed NATS", id="external-nats"
        ),
    ],
)
def test_queue_lag_falls_back_to_a_cpu_hpa_and_says_why(
    extra: dict[str, Any], keda: bool, reason: str
) -> None:
    spec = {**QUEUE_LAG, **extra}
    got = kinds_names(children(spec, keda=keda))
    assert ("HorizontalPodAutoscaler", "demo-response-generator") in got
    assert ("ScaledObject", "demo-response-generator") not in got
    why = queue_lag_unavailable(make_mesh(spec), keda_available=keda)
    assert list(why) == ["responseGenerator"]
    assert reason in why["responseGenerator"]


def test_queue_lag_available_reports_nothing() -> None:
    assert queue_lag_unavailable(make_mesh(QUEUE_LAG), keda_available=True) == {}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({}, set(), id="single-replicas-get-none"),
        pytest.param({"nats": {"replicas": 3}}, {"demo-nats"}, id="nats-cluster"),
        pytest.param({"gateway": {"replicas": 2}}, {"demo-gateway"}, id="gateway-2"),
        pytest.param({"gateway": {"autoscaling": {"enabled": True}}}, {"demo-gateway"}, id="gateway-hpa"),
        pytest.param(
            {
                "actors": {
                    "decisionRouter": {"replicas": 2},
                    "intentAnalyzer": {"autoscaling": {"enabled": True}},
                }
            },
            {"demo-decision-router", "demo-intent-analyzer"},
            id="actors",
        ),
        pytest.param(
            {"nats": {"replicas": 3}, "gateway": {"replicas": 2}, "podDisruptionBudget": {"enabled": False}},
            set(),
            id="disabled",
        ),
        pytest.param(
            {"actors": {"decisionRouter": {"replicas": 2, "enabled": False}}}, set(), id="disabled-actor-none"
        ),
    ],
)
def test_pdbs(spec: dict[str, Any], expected: set[str]) -> None:
    pdbs = [o for o in children(spec) if o["kind"] == "PodDisruptionBudget"]
    assert {p["metadata"]["name"] for p in pdbs} == expected
    for pdb in pdbs:
        assert pdb["spec"]["maxUnavailable"] == 1
        component = pdb["metadata"]["labels"]["app.kubernetes.io/component"]
        assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == component

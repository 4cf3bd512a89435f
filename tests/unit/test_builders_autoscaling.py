"""autoscaling.py and disruption.py: HPAs, KEDA ScaledObjects, the queue-lag fallback, PDBs."""

from __future__ import annotations

from typing import Any

import pytest

from actormesh_operator.api.spec import InvalidSpec
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
        "natsServerMonitoringEndpoint": "demo-nats-headless.shop.svc.cluster.local:8222",
        "account": "$G",
        "stream": "ACTORMESH-demo",
        "consumer": "response_generator",
        "lagThreshold": "25",
    }


def test_with_direct_hops_a_later_actors_scaled_object_also_scales_on_cpu() -> None:
    # Direct hops bypass every consumer but the first step's: lag alone would never scale these.
    spec = {
        "actors": {
            "directHops": True,
            "defaults": {
                "autoscaling": {"enabled": True, "mode": "queueLag", "targetCPUUtilizationPercentage": 65}
            },
        }
    }
    objs = index(children(spec, keda=True))

    later = objs[("ScaledObject", "demo-response-generator")]["spec"]["triggers"]
    assert [t["type"] for t in later] == ["nats-jetstream", "cpu"]
    assert later[1] == {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "65"}}
    first = objs[("ScaledObject", "demo-sentiment-analyzer")]["spec"]["triggers"]
    assert [t["type"] for t in first] == ["nats-jetstream"], "the first step's backlog is in its consumer"


def test_without_direct_hops_queue_lag_scales_on_the_consumer_only() -> None:
    spec = {"actors": {"defaults": {"autoscaling": {"enabled": True, "mode": "queueLag"}}}}
    objs = index(children(spec, keda=True))
    triggers = objs[("ScaledObject", "demo-response-generator")]["spec"]["triggers"]
    assert [t["type"] for t in triggers] == ["nats-jetstream"]


@pytest.mark.parametrize("replicas", [1, 3])
def test_keda_finds_each_nats_server_under_the_monitoring_endpoint(replicas: int) -> None:
    """Clustered, KEDA asks the consumer's leader directly: with `no_advertise` it builds
    `<server_name>.<endpoint host>`, which must be the pod's stable DNS name (`<pod>.<serviceName>...`)."""
    spec = {**QUEUE_LAG, "nats": {"replicas": replicas}}
    objs = index(children(spec, keda=True))
    sts = objs[("StatefulSet", "demo-nats")]
    endpoint = objs[("ScaledObject", "demo-response-generator")]["spec"]["triggers"][0]["metadata"][
        "natsServerMonitoringEndpoint"
    ]
    host, port = endpoint.rsplit(":", 1)
    governing = objs[("Service", sts["spec"]["serviceName"])]
    assert governing["spec"]["clusterIP"] == "None"
    assert host == f"{governing['metadata']['name']}.shop.svc.cluster.local"
    assert int(port) in {p["port"] for p in governing["spec"]["ports"] if p["name"] == "monitor"}
    assert "server_name: $POD_NAME" in objs[("ConfigMap", "demo-nats-config")]["data"]["nats.conf"]
    # Pod demo-nats-0 is reachable as demo-nats-0.<serviceName>.<namespace>.svc.<domain>.
    assert f"demo-nats-0.{host}" == f"demo-nats-0.{sts['spec']['serviceName']}.shop.svc.cluster.local"


def test_queue_lag_without_keda_falls_back_to_a_cpu_hpa() -> None:
    got = kinds_names(children(QUEUE_LAG, keda=False))
    assert ("HorizontalPodAutoscaler", "demo-response-generator") in got
    assert ("ScaledObject", "demo-response-generator") not in got


@pytest.mark.parametrize(
    "actors",
    [
        pytest.param(QUEUE_LAG["actors"], id="one-actor"),
        pytest.param({"defaults": {"autoscaling": {"mode": "queueLag"}}}, id="defaults"),
        pytest.param(
            {"decisionRouter": {"enabled": False, "autoscaling": {"mode": "queueLag"}}}, id="disabled"
        ),
    ],
)
def test_queue_lag_with_an_external_nats_is_an_invalid_spec(actors: dict[str, Any]) -> None:
    """KEDA would have no monitoring endpoint to read; the CRD rejects it too (test_crd_validation)."""
    with pytest.raises(InvalidSpec, match=r"queueLag needs the managed NATS"):
        make_mesh({"actors": actors, "nats": {"external": {"url": "nats://n:4222"}}})


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

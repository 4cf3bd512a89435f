"""build_children as a whole: children per spec, order, ownership, labels, MANAGED_KINDS, secrets."""

from __future__ import annotations

from typing import Any

import pytest

from actormesh_operator.builders import MANAGED_KINDS, build_children, referenced_secrets
from actormesh_operator.builders import labels as lbl
from actormesh_operator.builders.kinds import SecretRef
from tests.unit.builder_helpers import RICH_SPEC, SETTINGS, children, index, kinds_names, make_mesh

ACTOR_DEPLOYMENTS = {
    ("Deployment", f"demo-{n}")
    for n in (
        "sentiment-analyzer",
        "intent-analyzer",
        "context-retriever",
        "decision-router",
        "execution-coordinator",
        "response-generator",
        "guardrail-validator",
        "escalation-router",
        "response-aggregator",
    )
}
NETPOLS = {
    ("NetworkPolicy", f"demo-{f}")
    for f in (
        "base",
        "allow-mesh-egress",
        "allow-nats",
        "allow-mocks",
        "allow-redis",
        "allow-gateway",
    )
}
MINIMAL = {
    ("ServiceAccount", "demo-runtime"),
    ("ConfigMap", "demo-runtime-config"),
    ("ConfigMap", "demo-nats-config"),
    ("Service", "demo-nats"),
    ("Service", "demo-nats-headless"),
    ("Service", "demo-redis"),
    ("Service", "demo-history"),
    ("Service", "demo-mocks"),
    ("Service", "demo-gateway"),
    ("StatefulSet", "demo-nats"),
    ("StatefulSet", "demo-redis"),
    ("StatefulSet", "demo-history"),
    ("Deployment", "demo-mocks"),
    ("Deployment", "demo-gateway"),
    *ACTOR_DEPLOYMENTS,
    *NETPOLS,
}


def test_minimal_spec_gives_the_whole_mesh() -> None:
    assert kinds_names(children()) == MINIMAL


@pytest.mark.parametrize(
    ("spec", "absent", "present"),
    [
        pytest.param(
            {"mockServices": {"enabled": False}},
            {
                ("Deployment", "demo-mocks"),
                ("Service", "demo-mocks"),
                # No mock and no real API URL: there is nothing for the API callers to reach.
                ("NetworkPolicy", "demo-allow-mocks"),
                ("NetworkPolicy", "demo-allow-commerce-apis"),
            },
            set(),
            id="mocks-disabled",
        ),
        pytest.param(
            {"redis": {"enabled": False}},
            {
                ("StatefulSet", "demo-redis"),
                ("Service", "demo-redis"),
                ("NetworkPolicy", "demo-allow-redis"),
                ("NetworkPolicy", "demo-allow-redis-clients"),
            },
            set(),
            id="redis-disabled",
        ),
        pytest.param(
            {"redis": {"external": {"url": "redis://cache.infra:6380/0"}}},
            {("StatefulSet", "demo-redis"), ("Service", "demo-redis"), ("NetworkPolicy", "demo-allow-redis")},
            {("NetworkPolicy", "demo-allow-redis-clients")},
            id="redis-external",
        ),
        pytest.param(
            {"nats": {"external": {"url": "nats://nats.infra:4222"}}},
            {
                ("StatefulSet", "demo-nats"),
                ("Service", "demo-nats"),
                ("Service", "demo-nats-headless"),
                ("ConfigMap", "demo-nats-config"),
                ("NetworkPolicy", "demo-allow-nats"),
            },
            {("NetworkPolicy", "demo-allow-nats-clients")},
            id="nats-external",
        ),
        pytest.param(
            {"actors": {"sentimentAnalyzer": {"enabled": False}}},
            {("Deployment", "demo-sentiment-analyzer")},
            {("Deployment", "demo-intent-analyzer")},
            id="actor-disabled",
        ),
        pytest.param({"networkPolicy": {"enabled": False}}, NETPOLS, set(), id="networkpolicy-disabled"),
    ],
)
def test_disabled_components_are_absent(
    spec: dict[str, Any], absent: set[tuple[str, str]], present: set[tuple[str, str]]
) -> None:
    got = kinds_names(children(spec))
    assert not absent & got
    assert present <= got
    # Nothing else disappears or appears besides what the switch touches.
    assert (MINIMAL - absent) <= got


def test_rich_spec_adds_ingress_autoscalers_and_pdbs() -> None:
    got = kinds_names(children(RICH_SPEC, keda=True))
    assert {
        ("Ingress", "demo-gateway"),
        ("HorizontalPodAutoscaler", "demo-intent-analyzer"),
        ("ScaledObject", "demo-response-generator"),
        ("PodDisruptionBudget", "demo-nats"),
        ("PodDisruptionBudget", "demo-gateway"),
        ("PodDisruptionBudget", "demo-sentiment-analyzer"),
        ("NetworkPolicy", "demo-allow-llm"),
    } <= got
    assert ("HorizontalPodAutoscaler", "demo-response-generator") not in got


def test_every_child_is_owned_labelled_and_namespaced() -> None:
    mesh = make_mesh(RICH_SPEC)
    for obj in build_children(mesh, SETTINGS, keda_available=True):
        meta = obj["metadata"]
        where = f"{obj['kind']}/{meta['name']}"
        assert meta["namespace"] == "shop", where
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "actormesh.io/v1alpha1",
                "kind": "ActorMesh",
                "name": "demo",
                "uid": "0000-uid",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ], where
        assert lbl.mesh_selector("demo").items() <= meta["labels"].items(), where
        assert meta["labels"]["cost-center"] == "cx", where
        assert "team" not in meta["labels"], f"{where}: the parent's labels must not be copied"
        assert meta["annotations"]["example.com/owner"] == "cx-team", where


def test_every_emitted_kind_is_managed() -> None:
    managed = {(k.api_version, k.kind) for k in MANAGED_KINDS}
    for obj in children(RICH_SPEC, keda=True):
        assert (obj["apiVersion"], obj["kind"]) in managed
    assert [k.kind for k in MANAGED_KINDS if k.optional] == [
        "HTTPRoute",
        "ScaledObject",
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
    ]


def test_apply_order_puts_config_and_services_before_workloads() -> None:
    order = [o["kind"] for o in children(RICH_SPEC, keda=True)]
    first_workload = min(order.index("StatefulSet"), order.index("Deployment"))
    for kind in ("ServiceAccount", "ConfigMap", "Service", "NetworkPolicy"):
        assert max(i for i, k in enumerate(order) if k == kind) < first_workload, kind
    assert order.index("StatefulSet") < order.index("Deployment")
    assert min(order.index("HorizontalPodAutoscaler"), order.index("PodDisruptionBudget")) > order.index(
        "Deployment"
    )


def test_names_are_unique_per_kind() -> None:
    objs = children(RICH_SPEC, keda=True)
    assert len(index(objs)) == len(objs)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({}, [], id="none"),
        pytest.param(
            RICH_SPEC,
            [
                SecretRef(name="llm", key="api-key", field_path="spec.llm.apiKeySecretRef"),
                SecretRef(name="jwt", key="secret", field_path="spec.gateway.authSecretRef"),
            ],
            id="llm-and-jwt",
        ),
        pytest.param(
            {
                "llm": {"model": "m", "apiKeySecretRef": {"name": "llm", "key": "k"}},
                "actors": {
                    "intentAnalyzer": {"enabled": False},
                    "responseGenerator": {"enabled": False},
                    "guardrailValidator": {"enabled": False},
                },
            },
            [],
            id="llm-secret-unused-when-llm-actors-disabled",
        ),
        pytest.param(
            {
                "redis": {
                    "external": {"url": "redis://r:6379", "passwordSecretRef": {"name": "redis", "key": "pw"}}
                }
            },
            [SecretRef(name="redis", key="pw", field_path="spec.redis.external.passwordSecretRef")],
            id="redis-password",
        ),
        pytest.param(
            {"redis": {"passwordSecretRef": {"name": "redis-auth", "key": "pw"}}},
            [SecretRef(name="redis-auth", key="pw", field_path="spec.redis.passwordSecretRef")],
            id="managed-redis-password",
        ),
        pytest.param(
            {"redis": {"enabled": False, "passwordSecretRef": {"name": "redis-auth", "key": "pw"}}},
            [],
            id="managed-redis-password-unused-when-disabled",
        ),
        pytest.param(
            {
                "nats": {
                    "external": {
                        "url": "nats://n:4222",
                        "credentialsSecretRef": {"name": "bus", "userKey": "u", "passwordKey": "p"},
                    }
                }
            },
            [
                SecretRef(name="bus", key="u", field_path="spec.nats.external.credentialsSecretRef"),
                SecretRef(name="bus", key="p", field_path="spec.nats.external.credentialsSecretRef"),
            ],
            id="external-nats-credentials",
        ),
    ],
)
def test_referenced_secrets(spec: dict[str, Any], expected: list[SecretRef]) -> None:
    assert referenced_secrets(make_mesh(spec)) == expected

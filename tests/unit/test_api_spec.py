"""The ActorMesh spec model: defaults, the actor merge, validation messages, and the samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from actormesh_operator.api.actors import ActorsSpec
from actormesh_operator.api.spec import ActorMesh, ActorMeshSpec, InvalidSpec
from actormesh_operator.api.types import Resources
from actormesh_runtime.catalog import ACTORS, ActorName

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "config" / "samples").glob("*.yaml"))


def _mesh(spec: dict[str, Any], **meta: Any) -> ActorMesh:
    return ActorMesh.from_body({"metadata": {"name": "demo", "namespace": "ns", **meta}, "spec": spec})


def test_minimal_spec_is_a_full_mesh() -> None:
    spec = _mesh({"image": "img:1"}).spec
    assert spec.llm is None
    assert spec.nats.managed
    assert spec.nats.replicas == 1
    assert spec.redis.managed
    assert spec.mock_services.enabled
    assert spec.network_policy.enabled
    assert spec.pod_disruption_budget.enabled
    assert spec.persistence.reclaim_policy == "Retain"
    assert spec.gateway.replicas == 1
    assert not spec.gateway.ingress.enabled
    assert [a.name for a in spec.actors.enabled_actors()] == [a.name for a in ACTORS]
    assert spec.secret_refs() == {}


def test_metadata_is_read_from_the_body() -> None:
    mesh = ActorMesh.from_body(
        {
            "metadata": {"name": "m", "namespace": "x", "uid": "u-1", "generation": 4, "labels": {"a": "b"}},
            "spec": {"image": "i"},
        }
    )
    assert (mesh.name, mesh.namespace, mesh.uid, mesh.generation, mesh.labels) == (
        "m",
        "x",
        "u-1",
        4,
        {"a": "b"},
    )


def test_actor_fields_are_the_catalog_spec_keys() -> None:
    mesh_wide = ("defaults", "groups", "direct_hops")
    aliases = {f.alias for n, f in ActorsSpec.model_fields.items() if n not in mesh_wide}
    assert aliases == {a.spec_key for a in ACTORS}


MERGE_CASES = [
    pytest.param(
        {}, "intent_analyzer", {"replicas": 1, "concurrency": 8, "enabled": True}, id="all-defaults"
    ),
    pytest.param(
        {"defaults": {"replicas": 2, "concurrency": 4}},
        "intent_analyzer",
        {"replicas": 2, "concurrency": 4},
        id="defaults-apply",
    ),
    pytest.param(
        {"defaults": {"replicas": 2}, "intentAnalyzer": {"replicas": 5}},
        "intent_analyzer",
        {"replicas": 5},
        id="override-wins",
    ),
    pytest.param(
        {"defaults": {"replicas": 2}, "intentAnalyzer": {"replicas": 5}},
        "decision_router",
        {"replicas": 2},
        id="override-is-per-actor",
    ),
    pytest.param(
        {"responseAggregator": {"enabled": False}},
        "response_aggregator",
        {"enabled": False},
        id="disable-one",
    ),
    pytest.param(
        {"defaults": {"enabled": False}, "sentimentAnalyzer": {"enabled": True}},
        "sentiment_analyzer",
        {"enabled": True},
        id="enable-one-of-disabled",
    ),
    pytest.param(
        {"intentAnalyzer": {"replicas": 0}}, "intent_analyzer", {"replicas": 0}, id="zero-is-not-unset"
    ),
]


@pytest.mark.parametrize(("actors", "name", "expected"), MERGE_CASES)
def test_effective_actor_merges_override_onto_defaults(
    actors: dict[str, Any], name: str, expected: dict[str, Any]
) -> None:
    effective = _mesh({"image": "i", "actors": actors}).spec.actors.effective(name)
    assert effective.name == ActorName(name)
    assert {k: getattr(effective, k) for k in expected} == expected


def test_autoscaling_merges_field_by_field() -> None:
    actors = {
        "defaults": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6, "mode": "cpu"}},
        "responseGenerator": {"autoscaling": {"maxReplicas": 12, "mode": "queueLag"}},
    }
    spec = _mesh({"image": "i", "actors": actors}).spec
    scaling = spec.actors.effective(ActorName.RESPONSE_GENERATOR).autoscaling
    assert (scaling.enabled, scaling.min_replicas, scaling.max_replicas, scaling.mode) == (
        True,
        2,
        12,
        "queueLag",
    )
    assert spec.actors.effective(ActorName.INTENT_ANALYZER).autoscaling.max_replicas == 6
    assert [a.name for a in spec.queue_lag_actors()] == [ActorName.RESPONSE_GENERATOR]


def test_resources_override_replaces_whole() -> None:
    actors = {"contextRetriever": {"resources": {"requests": {"cpu": "1"}}}}
    effective = _mesh({"image": "i", "actors": actors}).spec.actors.effective("context_retriever")
    assert effective.resources == Resources(requests={"cpu": "1"})


@pytest.mark.parametrize(
    ("actors", "actor", "memory_limit"),
    [
        pytest.param({}, ActorName.INTENT_ANALYZER, "512Mi", id="llm-actor-gets-more-by-default"),
        pytest.param({}, ActorName.SENTIMENT_ANALYZER, "256Mi", id="plain-actor-default"),
        pytest.param(
            {"defaults": {"resources": {"limits": {"memory": "300Mi"}}}},
            ActorName.RESPONSE_GENERATOR,
            "300Mi",
            id="explicit-defaults-win-for-llm-actors",
        ),
        pytest.param(
            {"intentAnalyzer": {"resources": {"limits": {"memory": "1Gi"}}}},
            ActorName.INTENT_ANALYZER,
            "1Gi",
            id="override-wins",
        ),
    ],
)
def test_llm_actors_default_to_more_memory(
    actors: dict[str, Any], actor: ActorName, memory_limit: str
) -> None:
    resources = ActorsSpec.model_validate(actors).effective(actor).resources
    assert resources.limits is not None
    assert resources.limits["memory"] == memory_limit


def test_quantities_accept_yaml_numbers() -> None:
    resources = Resources.model_validate({"requests": {"cpu": 1, "memory": "1.5Gi"}})
    assert resources.to_k8s() == {"requests": {"cpu": "1", "memory": "1.5Gi"}}


def test_secret_refs_name_their_fields() -> None:
    spec = _mesh(
        {
            "image": "i",
            "llm": {"model": "m", "apiKeySecretRef": {"name": "llm", "key": "k"}},
            "gateway": {"authSecretRef": {"name": "jwt", "key": "s"}},
            "redis": {"external": {"url": "redis://r:6379", "passwordSecretRef": {"name": "rp", "key": "p"}}},
        }
    ).spec
    assert {path: ref.name for path, ref in spec.secret_refs().items()} == {
        "spec.llm.apiKeySecretRef": "llm",
        "spec.gateway.authSecretRef": "jwt",
        "spec.redis.external.passwordSecretRef": "rp",
    }


INVALID = [
    pytest.param({}, "spec.image: Field required", id="no-image"),
    pytest.param({"image": "i", "nats": {"replicas": 2}}, "spec.nats.replicas", id="nats-2"),
    pytest.param(
        {"image": "i", "bogus": True}, "spec.bogus: Extra inputs are not permitted", id="unknown-field"
    ),
    pytest.param({"image": "i", "llm": {}}, "spec.llm.model: Field required", id="llm-needs-model"),
    pytest.param(
        {"image": "i", "nats": {"external": {"url": "nats://n:4222"}, "storage": {"size": "1Gi"}}},
        "spec.nats.external cannot be combined with the managed settings spec.nats.{storage}",
        id="nats-external-and-storage",
    ),
    pytest.param(
        {"image": "i", "redis": {"external": {"url": "redis://r"}, "image": "redis:7"}},
        "spec.redis.external cannot be combined with the managed settings spec.redis.{image}",
        id="redis-external-and-image",
    ),
    pytest.param(
        {"image": "i", "gateway": {"ingress": {"enabled": True}}},
        "spec.gateway.ingress.host is required",
        id="ingress-without-host",
    ),
    pytest.param(
        {
            "image": "i",
            "actors": {
                "defaults": {"autoscaling": {"maxReplicas": 2}},
                "intentAnalyzer": {"autoscaling": {"minReplicas": 3}},
            },
        },
        "spec.actors.intentAnalyzer.autoscaling.minReplicas (3) must be less than or equal to maxReplicas",
        id="merged-min-gt-max",
    ),
    pytest.param(
        {"image": "i", "resources": {}},
        "spec.resources: Extra inputs are not permitted",
        id="resources-belong-to-components",
    ),
    pytest.param(
        {"image": "i", "nats": {"storage": {"size": "ten gigs"}}}, "spec.nats.storage.size", id="bad-quantity"
    ),
    pytest.param(
        {"image": "i", "extraLabels": {"app.kubernetes.io/part-of": "x"}},
        "spec.extraLabels must not set app.kubernetes.io/ keys",
        id="reserved-label",
    ),
]


@pytest.mark.parametrize(("spec", "message"), INVALID)
def test_invalid_specs_name_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        _mesh(spec)
    assert message in str(info.value)
    assert all(p.startswith("spec.") for p in info.value.problems)


def test_invalid_mesh_name_is_reported_under_metadata() -> None:
    with pytest.raises(InvalidSpec, match=r"^metadata\.name: "):
        ActorMesh.from_body({"metadata": {"name": "x" * 41}, "spec": {"image": "i"}})


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_every_sample_validates(sample: Path) -> None:
    body = yaml.safe_load(sample.read_text())
    assert body["apiVersion"] == "actormesh.io/v1alpha1"
    assert body["kind"] == "ActorMesh"
    ActorMesh.from_body(body)


def test_the_samples_cover_the_issue() -> None:
    specs = {p.stem: ActorMesh.from_body(yaml.safe_load(p.read_text())).spec for p in SAMPLES}
    assert set(specs) == {"minimal", "production", "external", "grouped"}
    production = specs["production"]
    assert production.nats.replicas == 3
    assert production.gateway.ingress.enabled
    assert production.gateway.autoscaling.enabled
    assert all(
        a.autoscaling.enabled
        for a in production.actors.enabled_actors()
        if a.info.spec_key != "escalationRouter"
    )
    assert "spec.llm.apiKeySecretRef" in production.secret_refs()
    external = specs["external"]
    assert not external.nats.managed
    assert not external.redis.managed
    assert external.redis.enabled
    grouped = specs["grouped"].actors
    # Every actor in a group: three Deployments, each running several actors.
    assert [len(w.members) for w in grouped.workloads()] == [2, 3, 4]


def test_spec_is_immutable() -> None:
    spec = ActorMeshSpec(image="i")
    with pytest.raises(ValueError, match="frozen"):
        spec.image = "j"  # type: ignore[misc]

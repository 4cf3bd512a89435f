"""`spec.actors.groups` on a real kube-apiserver: a mesh with groups is accepted and stored as written,
and every bad group is rejected naming the field (the CEL rules and schema in api/cel.py, api/actors.py).
The pydantic model rejects the same specs (for objects that never went through admission)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import yaml

from actormesh_operator.api.spec import ActorMesh, InvalidSpec
from tests.support.k8s import KubeControlPlane

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]

ROUTERS = ["decisionRouter", "escalationRouter"]


@pytest.fixture
def crd_installed(actormesh_crd: KubeControlPlane) -> KubeControlPlane:
    return actormesh_crd


def _mesh(actors: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "actormesh.io/v1alpha1",
        "kind": "ActorMesh",
        "metadata": {"name": f"m-{uuid.uuid4().hex[:8]}"},
        "spec": {"image": "x", "actors": actors, **spec},
    }


def _apply(kube: KubeControlPlane, namespace: str, body: dict[str, Any]) -> tuple[int, str]:
    result = kube.kubectl(
        "apply", "-n", namespace, "--validate=strict", "-f", "-", input=yaml.safe_dump(body), check=False
    )
    return result.returncode, result.stderr + result.stdout


def _group(name: str = "routers", actors: list[str] | None = None, **settings: Any) -> dict[str, Any]:
    return {"name": name, "actors": ROUTERS if actors is None else actors, **settings}


BAD_GROUPS = [
    pytest.param(
        {"groups": [_group("a"), _group("b", ["decisionRouter", "intentAnalyzer"])]},
        {},
        'spec.actors.groups: Invalid value: "array": spec.actors.groups: an actor may belong to at most one',
        "spec.actors.groups: an actor may belong to at most one group",
        id="actor-in-two-groups",
    ),
    pytest.param(
        {"groups": [_group(actors=["decisionRouter", "bogusActor"])]},
        {},
        'spec.actors.groups[0].actors[1]: Unsupported value: "bogusActor"',
        "spec.actors.groups.0.actors: unknown actor 'bogusActor'",
        id="unknown-actor",
    ),
    pytest.param(
        {"groups": [_group(actors=["decisionRouter"])]},
        {},
        "spec.actors.groups[0].actors: Invalid value",
        "spec.actors.groups.0.actors: List should have at least 2 items",
        id="one-member",
    ),
    pytest.param(
        {"groups": [_group(actors=["decisionRouter", "decisionRouter"])]},
        {},
        'spec.actors.groups[0].actors[1]: Duplicate value: "decisionRouter"',
        "spec.actors.groups.0.actors: an actor is listed twice",
        id="actor-twice-in-a-group",
    ),
    pytest.param(
        {"groups": [_group("a"), _group("a", ["intentAnalyzer", "sentimentAnalyzer"])]},
        {},
        "spec.actors.groups[1]: Duplicate value",
        "spec.actors.groups: group names must be unique",
        id="two-groups-one-name",
    ),
    pytest.param(
        {"groups": [_group("Routers")]},
        {},
        "spec.actors.groups[0].name: Invalid value",
        "spec.actors.groups.0.name: String should match pattern",
        id="name-not-a-dns-label",
    ),
    pytest.param(
        {"groups": [_group("r" * 31)]},
        {},
        "spec.actors.groups[0].name: Too long",
        "spec.actors.groups.0.name: String should have at most 30 characters",
        id="name-too-long",
    ),
    pytest.param(
        {"groups": [_group("decision-router")]},
        {},
        'spec.actors.groups[0].name: Invalid value: "object": spec.actors.groups[].name must not be',
        "spec.actors.groups[].name must not be an actor's name",
        id="name-of-an-actor",
    ),
    pytest.param(
        {"groups": [_group("gateway")]},
        {},
        "spec.actors.groups[].name must not be an actor's name (e.g. decision-router) or one of the",
        "spec.actors.groups[].name must not be",
        id="name-of-a-component",
    ),
    pytest.param(
        {"decisionRouter": {"replicas": 2}, "groups": [_group()]},
        {},
        'spec.actors.decisionRouter: Invalid value: "object": spec.actors.decisionRouter: an actor in'
        " spec.actors.groups takes",
        "spec.actors.decisionRouter: an actor in spec.actors.groups takes",
        id="replicas-on-a-member",
    ),
    pytest.param(
        {"escalationRouter": {"env": [{"name": "A", "value": "1"}]}, "groups": [_group()]},
        {},
        "spec.actors.escalationRouter: an actor in spec.actors.groups takes",
        "spec.actors.escalationRouter: an actor in spec.actors.groups takes",
        id="env-on-a-member",
    ),
    pytest.param(
        {
            "defaults": {"autoscaling": {"maxReplicas": 3}},
            "groups": [_group(autoscaling={"minReplicas": 4})],
        },
        {},
        "spec.actors.groups[].autoscaling.minReplicas must be less than or equal to maxReplicas",
        "spec.actors.groups[0].autoscaling.minReplicas (4) must be less than or equal to maxReplicas (3)",
        id="group-min-gt-merged-max",
    ),
    pytest.param(
        {"groups": [_group(autoscaling={"enabled": True, "mode": "queueLag"})]},
        {"nats": {"external": {"url": "nats://n:4222"}}},
        "spec.actors.*.autoscaling.mode: queueLag needs the managed NATS",
        "spec.actors.*.autoscaling.mode: queueLag needs the managed NATS",
        id="group-queue-lag-with-external-nats",
    ),
    pytest.param(
        {
            "groups": [
                _group(env=[{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}])
            ]
        },
        {},
        "spec.actors.groups[].env: set value or valueFrom, not both",
        "set value or valueFrom, not both",
        id="group-env-value-and-source",
    ),
]


@pytest.mark.parametrize(("actors", "spec", "server_says", "model_says"), BAD_GROUPS)
def test_bad_group_is_rejected_naming_the_field(
    crd_installed: KubeControlPlane,
    kube_namespace: str,
    actors: dict[str, Any],
    spec: dict[str, Any],
    server_says: str,
    model_says: str,
) -> None:
    body = _mesh(actors, **spec)
    code, output = _apply(crd_installed, kube_namespace, body)
    assert code != 0, f"accepted: {actors}"
    assert server_says in output
    with pytest.raises(InvalidSpec) as info:
        ActorMesh.from_body(body)
    assert model_says in str(info.value)


def test_groups_are_accepted_and_stored_as_written(
    crd_installed: KubeControlPlane, kube_namespace: str
) -> None:
    groups = [
        _group("routers", replicas=2, resources={"requests": {"cpu": "30m"}}),
        _group("writers", ["responseGenerator", "guardrailValidator", "responseAggregator"]),
    ]
    # A member may still be disabled on its own entry: the group's process leaves it out.
    body = _mesh({"groups": groups, "responseAggregator": {"enabled": False}})
    code, output = _apply(crd_installed, kube_namespace, body)
    assert code == 0, output
    name = body["metadata"]["name"]
    live = json.loads(crd_installed.kubectl("get", "am", name, "-n", kube_namespace, "-o", "json").stdout)
    stored = live["spec"]["actors"]["groups"]
    assert [g["name"] for g in stored] == ["routers", "writers"]
    assert stored[0]["replicas"] == 2
    assert stored[1]["actors"] == groups[1]["actors"]
    workloads = ActorMesh.from_body(live).spec.actors.workloads()
    grouped = {w.component: [m.info.spec_key for m in w.members] for w in workloads if w.group}
    assert grouped == {"routers": ROUTERS, "writers": ["responseGenerator", "guardrailValidator"]}

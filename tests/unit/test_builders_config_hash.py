"""The config hash: pinned, and a config change rolls exactly the workloads whose configuration changed."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from actormesh_operator.builders.meta import CONFIG_HASH_ANNOTATION
from actormesh_operator.builders.runtime_config import config_hash
from actormesh_runtime.catalog import ACTORS
from tests.unit.builder_helpers import children

ALL_ACTORS = {f"demo-{a.k8s_name}" for a in ACTORS}
LLM = {f"demo-{a.k8s_name}" for a in ACTORS if a.uses_llm}
APIS = {f"demo-{a.k8s_name}" for a in ACTORS if a.calls_commerce_apis}
REDIS_USERS = {f"demo-{a.k8s_name}" for a in ACTORS if a.uses_redis} | {"demo-gateway"}
RUNTIME_PODS = ALL_ACTORS | {"demo-gateway", "demo-history"}


def test_config_hash_is_pinned() -> None:
    # Changing the hash function restarts every pod of every mesh on operator upgrade. The expected
    # values are computed independently here (sha256 of sorted compact JSON, 16 hex digits).
    assert config_hash({}) == hashlib.sha256(b"{}").hexdigest()[:16] == "44136fa355b3678a"
    assert config_hash({"B": "2", "A": "1"}) == hashlib.sha256(b'{"A":"1","B":"2"}').hexdigest()[:16]
    assert config_hash({"NATS_URL": "nats://x:4222"}) == "ae7f5d82adc8f1e8"


def _hashes(spec: dict[str, Any]) -> dict[str, str | None]:
    return {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]
        .get("annotations", {})
        .get(CONFIG_HASH_ANNOTATION)
        for o in children(spec)
        if o["kind"] in {"Deployment", "StatefulSet"}
    }


def _rolled(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    old, new = _hashes(before), _hashes(after)
    return {name for name in old.keys() & new.keys() if old[name] != new[name]}


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param({}, {"llm": {"model": "gpt-4o-mini"}}, LLM, id="llm-added"),
        pytest.param(
            {"llm": {"model": "gpt-4o-mini"}},
            {"llm": {"model": "gpt-4o-mini", "temperature": 0.9}},
            LLM,
            id="llm-temp",
        ),
        pytest.param(
            {}, {"gateway": {"corsOrigins": ["https://a.example.com"]}}, {"demo-gateway"}, id="cors"
        ),
        pytest.param(
            {}, {"redis": {"external": {"url": "redis://cache:6379"}}}, REDIS_USERS, id="redis-external"
        ),
        pytest.param(
            {}, {"commerceApis": {"ordersUrl": "https://orders.example.com"}}, APIS, id="orders-api"
        ),
        pytest.param(
            {}, {"nats": {"external": {"url": "nats://nats.infra:4222"}}}, RUNTIME_PODS, id="nats-external"
        ),
        pytest.param({}, {"nats": {"jetstream": {"maxMemory": "1Gi"}}}, {"demo-nats"}, id="nats-conf-only"),
        # Clustered NATS: R3 streams, so every runtime pod gets NATS_STREAM_REPLICAS=3.
        pytest.param({}, {"nats": {"replicas": 3}}, RUNTIME_PODS | {"demo-nats"}, id="nats-r3-streams"),
        # Read only by actor processes (the gateway and history keep their pods); the actors' NATS
        # permissions follow it, so the servers roll too.
        pytest.param({}, {"actors": {"directHops": True}}, ALL_ACTORS | {"demo-nats"}, id="direct-hops"),
        pytest.param({"actors": {"directHops": True}}, {}, ALL_ACTORS | {"demo-nats"}, id="direct-hops-off"),
        pytest.param({}, {"gateway": {"replicas": 3}}, set(), id="replicas-are-not-config"),
        pytest.param(
            {}, {"actors": {"defaults": {"concurrency": 2}}}, set(), id="concurrency-is-container-env"
        ),
    ],
)
def test_a_change_rolls_exactly_the_affected_workloads(
    before: dict[str, Any], after: dict[str, Any], expected: set[str]
) -> None:
    assert _rolled(before, after) == expected


def test_every_runtime_pod_template_carries_a_hash() -> None:
    hashes = _hashes({})
    for name in RUNTIME_PODS | {"demo-mocks", "demo-nats"}:
        assert hashes[name], name


def test_rendered_hashes_of_a_minimal_mesh_are_pinned() -> None:
    # Golden values: if a refactor changes what a workload's hash covers or how the config renders,
    # every existing mesh restarts on upgrade. Update these only for an intended, release-noted change.
    hashes = _hashes({})
    assert hashes["demo-sentiment-analyzer"] == "233fc35d9352574b"
    assert hashes["demo-gateway"] == "9e72d0f6173657c0"
    # Changed for issue 11: nats.conf gained the per-component `authorization` block; for issue 14 the
    # history user may read every consumer's info (the queue gauges); for issue 12 the escalation events,
    # their stream and the escalation lookup subject (history, gateway, two actors), then the approval
    # commands and outcomes (execution_coordinator, history); then the stored-answers subject
    # (response_aggregator asks, history answers: one answer per message, session 14); then each user
    # deleting its own consumer, and the erasure subject (admin asks, history answers) with admin
    # reading and deleting in the escalation events stream (`actormesh erase`).
    assert hashes["demo-nats"] == "f0c5c48e475cb0a1"

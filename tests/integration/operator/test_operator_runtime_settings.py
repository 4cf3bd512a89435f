"""spec.runtime, per-actor overrides and env on a real API server: each setting reaches the pods that
read it, and the API server rejects bad values with a message naming the field."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

from actormesh_operator.api.runtime import RUNTIME_FIELDS, RuntimeSpec
from actormesh_operator.builders import names
from actormesh_operator.builders.meta import CONFIG_HASH_ANNOTATION
from actormesh_runtime.catalog import ACTORS, ACTORS_BY_NAME, ActorName
from tests.integration.operator.conftest import OperatorFactory
from tests.integration.operator.kubeapi import (
    apply,
    children,
    generations,
    matching,
    merge_patch,
    minimal_mesh,
    reconciled,
    secret_hashes,
)
from tests.support.eventually import eventually
from tests.support.k8s import KubeControlPlane

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]

RUNTIME: dict[str, Any] = {
    "logLevel": "DEBUG",
    "logFormat": "text",
    "cacheTtlSeconds": 60,
    "apiTimeoutSeconds": 2.5,
    "requestTimeoutSeconds": 40,
    "conversationDeadlineSeconds": 200,
    "processingTimeoutSeconds": 15,
    "maxMessageChars": 2000,
    "escalationConfidenceThreshold": 0.6,
    "maxConcurrentRequests": 50,
    "rateLimitRequests": 600,
}
EXPECTED_ENV = {
    "LOG_LEVEL": "DEBUG",
    "LOG_FORMAT": "text",
    "CACHE_TTL": "60",
    "API_TIMEOUT_S": "2.5",
    "REQUEST_TIMEOUT_S": "40",
    "CONVERSATION_DEADLINE_S": "200",
    "PROCESSING_TIMEOUT_S": "15",
    "MAX_MESSAGE_CHARS": "2000",
    "ESCALATION_CONFIDENCE_THRESHOLD": "0.6",
    "MAX_CONCURRENT_REQUESTS": "50",
    "RATE_LIMIT_REQUESTS": "600",
}


def test_the_table_covers_every_runtime_field() -> None:
    assert {RuntimeSpec.model_fields[f].alias for f in RUNTIME_FIELDS} == set(RUNTIME)
    assert set(EXPECTED_ENV) == set(RUNTIME_FIELDS.values())


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return found


def test_every_runtime_setting_reaches_the_pod_templates(
    operators: OperatorFactory, kube_namespace: str
) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "tuned"
    kube.kubectl("create", "secret", "generic", "extra", "--from-literal=token=t0", "-n", ns)
    operators.start()
    body = minimal_mesh(
        mesh,
        runtime=RUNTIME,
        gateway={
            "env": [{"name": "EXTRA_TOKEN", "valueFrom": {"secretKeyRef": {"name": "extra", "key": "token"}}}]
        },
        actors={"intentAnalyzer": {"logLevel": "WARNING", "env": [{"name": "FEATURE_X", "value": "on"}]}},
    )
    apply(kube, ns, body)
    eventually(lambda: matching(kube, ns, mesh) is not None, what="children match the spec", timeout_s=60)

    live = children(kube, ns, mesh)
    data = live["ConfigMap", names.runtime_config(mesh)]["data"]
    assert {k: data.get(k) for k in EXPECTED_ENV} == EXPECTED_ENV

    gateway = live["Deployment", names.gateway(mesh)]
    gateway_env = {e["name"]: e for e in _container(gateway).get("env", [])}
    assert gateway_env["EXTRA_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "extra", "key": "token"}
    # A 40 s request timeout needs a longer grace period than the default 45 s.
    assert gateway["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 55

    intent = live["Deployment", names.actor(mesh, ACTORS_BY_NAME[ActorName.INTENT_ANALYZER])]
    intent_env = {e["name"]: e.get("value") for e in _container(intent).get("env", [])}
    assert (intent_env["LOG_LEVEL"], intent_env["FEATURE_X"]) == ("WARNING", "on")
    sentiment = live["Deployment", names.actor(mesh, ACTORS_BY_NAME[ActorName.SENTIMENT_ANALYZER])]
    assert "LOG_LEVEL" not in {e["name"] for e in _container(sentiment).get("env", [])}
    for obj in (gateway, intent, sentiment):  # the ConfigMap is the pods' environment
        assert {"configMapRef": {"name": names.runtime_config(mesh)}} in _container(obj)["envFrom"]
        assert obj["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]


def _apply_error(kube: KubeControlPlane, namespace: str, spec: dict[str, Any]) -> str:
    body = minimal_mesh("rejected", **spec)
    result = kube.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(body), check=False)
    assert result.returncode != 0, f"accepted: {json.dumps(spec)}"
    return result.stderr


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        pytest.param({"runtime": {"logLevel": "LOUD"}}, "spec.runtime.logLevel", id="log-level"),
        pytest.param({"runtime": {"cacheTtlSeconds": 0}}, "spec.runtime.cacheTtlSeconds", id="ttl"),
        pytest.param(
            {"runtime": {"maxConcurrentRequests": -1}}, "spec.runtime.maxConcurrentRequests", id="limit"
        ),
        pytest.param(
            {"runtime": {"requestTimeoutSeconds": 150}},
            "spec.runtime.requestTimeoutSeconds must be less than spec.runtime.conversationDeadlineSeconds",
            id="timeout-over-deadline",
        ),
        pytest.param(
            {"actors": {"decisionRouter": {"processingTimeoutSeconds": 0}}},
            "spec.actors.decisionRouter.processingTimeoutSeconds",
            id="actor-override",
        ),
        pytest.param(
            {
                "gateway": {
                    "env": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]
                }
            },
            "spec.gateway.env: set value or valueFrom, not both",
            id="env-value-and-source",
        ),
        pytest.param(
            {"gateway": {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}},
            "spec.gateway.env[1]: Duplicate value",
            id="env-duplicate",
        ),
        pytest.param(
            {"actors": {"responseGenerator": {"env": [{"name": "A", "valueFrom": {}}]}}},
            "spec.actors.responseGenerator.env: valueFrom must set exactly one",
            id="env-no-source",
        ),
        pytest.param(
            {"gateway": {"env": [{"name": "GATEWAY_ANONYMOUS", "value": "true"}]}},
            "spec.gateway.env: GATEWAY_ANONYMOUS, JWT_SECRET, JWT_PREVIOUS_SECRET, NATS_USER, NATS_PASSWORD,"
            " NATS_TOKEN, DIRECT_HOPS are set by the operator",
            id="env-anonymous",
        ),
        pytest.param(
            {
                "actors": {
                    "groups": [
                        {
                            "name": "routers",
                            "actors": ["decisionRouter", "escalationRouter"],
                            "env": [{"name": "NATS_USER", "value": "gateway"}],
                        }
                    ]
                }
            },
            "spec.actors.groups[].env: GATEWAY_ANONYMOUS,",
            id="env-nats-user-in-group",
        ),
    ],
)
def test_the_api_server_rejects_bad_runtime_settings_naming_the_field(
    crd: KubeControlPlane, kube_namespace: str, spec: dict[str, Any], fragment: str
) -> None:
    assert fragment in _apply_error(crd, kube_namespace, spec)


GROUP = ("routers", ("decisionRouter", "escalationRouter"))


def _env(obj: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in _container(obj).get("env", [])}


def test_overrides_and_env_reach_each_actor_and_group_and_roll_only_them(
    operators: OperatorFactory, kube_namespace: str
) -> None:
    """Per-actor overrides and `env` on every actor and on a group (spec.actors.groups), with a
    secretKeyRef on the group: each reaches exactly its Deployment; changing the group's setting, a
    runtime field read by two actors, or the group's Secret rolls exactly the Deployments reading it."""
    kube, ns, mesh = operators.kube, kube_namespace, "overridden"
    kube.kubectl("create", "secret", "generic", "group-token", "--from-literal=token=v1", "-n", ns)
    operators.start(resync_interval_s=3600.0, resync_jitter_s=0.0)
    group_name, members = GROUP
    singles = [a for a in ACTORS if a.spec_key not in members]
    group_env = [
        {"name": "GROUP_TOKEN", "valueFrom": {"secretKeyRef": {"name": "group-token", "key": "token"}}}
    ]
    actors: dict[str, Any] = {
        a.spec_key: {"logLevel": "WARNING", "env": [{"name": "ACTOR_MARK", "value": a.spec_key}]}
        for a in singles
    }
    group = {"name": group_name, "actors": list(members), "logLevel": "ERROR", "processingTimeoutSeconds": 33}
    actors["groups"] = [{**group, "env": group_env}]
    apply(kube, ns, minimal_mesh(mesh, actors=actors))
    eventually(lambda: matching(kube, ns, mesh) is not None, what="children match the spec", timeout_s=60)

    live = children(kube, ns, mesh)
    for info in singles:
        env = _env(live["Deployment", names.actor(mesh, info)])
        assert (env["LOG_LEVEL"], env["ACTOR_MARK"]) == ("WARNING", info.spec_key), info.spec_key
    group_deployment = names.actor_workload(mesh, group_name)
    env = _env(live["Deployment", group_deployment])
    assert (env["LOG_LEVEL"], env["PROCESSING_TIMEOUT_S"]) == ("ERROR", "33")
    assert env["GROUP_TOKEN"] == {"secretKeyRef": {"name": "group-token", "key": "token"}}
    assert "ACTOR_MARK" not in env
    hashes = secret_hashes(kube, ns, mesh)
    assert hashes[group_deployment]

    def settled_generations() -> dict[str, int]:
        eventually(lambda: reconciled(kube, ns, mesh) is not None, what="mesh reconciled", timeout_s=60)
        return generations(kube, ns, mesh, "Deployment")

    def rolled(before: dict[str, int], after: dict[str, int]) -> set[str]:
        return {name for name in before if after[name] != before[name]}

    before = settled_generations()
    merge_patch(
        kube,
        ns,
        f"actormesh/{mesh}",
        {"spec": {"actors": {"groups": [{**group, "env": group_env, "logLevel": "DEBUG"}]}}},
    )
    after = settled_generations()
    assert rolled(before, after) == {group_deployment}

    merge_patch(kube, ns, f"actormesh/{mesh}", {"spec": {"runtime": {"cacheTtlSeconds": 90}}})
    again = settled_generations()
    apis = {
        names.actor(mesh, ACTORS_BY_NAME[a])
        for a in (ActorName.CONTEXT_RETRIEVER, ActorName.EXECUTION_COORDINATOR)
    }
    assert rolled(after, again) == apis

    merge_patch(kube, ns, "secret/group-token", {"data": {"token": base64.b64encode(b"v2").decode()}})

    eventually(
        lambda: secret_hashes(kube, ns, mesh)[group_deployment] != hashes[group_deployment],
        what="the group's secret hash to change",
        timeout_s=30,
    )
    assert {n for n, h in secret_hashes(kube, ns, mesh).items() if h != hashes[n]} == {group_deployment}

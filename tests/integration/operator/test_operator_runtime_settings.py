"""spec.runtime, per-actor overrides and env on a real API server: each setting reaches the pods that
read it, and the API server rejects bad values with a message naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from actormesh_operator.api.runtime import RUNTIME_FIELDS, RuntimeSpec
from actormesh_operator.builders import names
from actormesh_operator.builders.meta import CONFIG_HASH_ANNOTATION
from actormesh_runtime.catalog import ACTORS_BY_NAME, ActorName
from tests.integration.operator.conftest import OperatorFactory
from tests.integration.operator.kubeapi import apply, children, matching, minimal_mesh
from tests.support.k8s import KubeControlPlane, wait_for

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
    wait_for("children match the spec", lambda: matching(kube, ns, mesh) is not None)

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
    for obj in (gateway, intent, sentiment):
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
    ],
)
def test_the_api_server_rejects_bad_runtime_settings_naming_the_field(
    crd: KubeControlPlane, kube_namespace: str, spec: dict[str, Any], fragment: str
) -> None:
    assert fragment in _apply_error(crd, kube_namespace, spec)

"""`spec.runtime`, per-actor overrides and `env`: one source of truth with the runtime, rendered into the
pods that read each setting, and a change rolls exactly those pods."""

from __future__ import annotations

import typing
from typing import Any

import pytest
from pydantic import ValidationError

from actormesh_operator.api.actors import ActorDefaults
from actormesh_operator.api.runtime import POD_DEFAULTS, RESERVED_ENV, RUNTIME_FIELDS, RuntimeSpec
from actormesh_operator.api.spec import InvalidSpec, LLMSpec
from actormesh_operator.builders.meta import CONFIG_HASH_ANNOTATION
from actormesh_operator.builders.runtime_config import config_hash
from actormesh_runtime.settings import RuntimeSettings
from tests.unit.builder_helpers import children, container, env_of, index, make_mesh


def _runtime_field(spec_field: str) -> str:
    return RUNTIME_FIELDS[spec_field].lower()


@pytest.mark.parametrize("spec_field", sorted(RUNTIME_FIELDS))
def test_every_runtime_field_is_a_runtime_setting_with_the_same_default(spec_field: str) -> None:
    name = _runtime_field(spec_field)
    assert name in RuntimeSettings.model_fields, f"spec.runtime.{spec_field} sets no RuntimeSettings field"
    ours = RuntimeSpec.model_fields[spec_field].default
    theirs = RuntimeSettings.model_fields[name].default
    if RUNTIME_FIELDS[spec_field] in POD_DEFAULTS:
        assert ours == POD_DEFAULTS[RUNTIME_FIELDS[spec_field]]
    else:
        assert ours == theirs, f"default of spec.runtime.{spec_field} differs from RuntimeSettings.{name}"


def _bounds(spec_field: str) -> list[Any]:
    """The extreme values the CRD accepts for a field (every Literal choice for an enum)."""
    field = RuntimeSpec.model_fields[spec_field]
    choices = typing.get_args(field.annotation)
    if choices:
        return list(choices)
    values: list[Any] = []
    for meta in field.metadata:
        for attr in ("ge", "le", "lt"):
            if getattr(meta, attr, None) is not None:
                values.append(getattr(meta, attr))
        if getattr(meta, "gt", None) is not None:
            values.append(meta.gt + (1 if field.annotation is int else 0.001))
    assert values, f"spec.runtime.{spec_field} has no bounds"
    return values


@pytest.mark.parametrize("spec_field", sorted(set(RUNTIME_FIELDS)))
def test_the_runtime_accepts_every_value_the_crd_accepts(spec_field: str) -> None:
    name = _runtime_field(spec_field)
    for value in _bounds(spec_field):
        env = {RUNTIME_FIELDS[spec_field]: str(value)}
        settings = RuntimeSettings.model_validate({name: str(value)})
        assert getattr(settings, name) == type(getattr(settings, name))(value), env


def test_actor_and_llm_settings_share_the_runtime_defaults() -> None:
    assert ActorDefaults().concurrency == RuntimeSettings.model_fields["actor_concurrency"].default
    llm = LLMSpec(model="m")
    assert llm.temperature == RuntimeSettings.model_fields["llm_temperature"].default
    assert llm.timeout_seconds == RuntimeSettings.model_fields["llm_timeout_s"].default


# --- rendering and rolling --------------------------------------------------------------------------


def _templates(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: o["spec"]["template"]
        for o in children(spec)
        if o["kind"] in {"Deployment", "StatefulSet"}
    }


def _rolled(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    old, new = _templates(before), _templates(after)
    return {name for name in old.keys() & new.keys() if old[name] != new[name]}


ACTOR_NAMES = {
    "demo-sentiment-analyzer", "demo-intent-analyzer", "demo-context-retriever", "demo-decision-router",
    "demo-execution-coordinator", "demo-response-generator", "demo-guardrail-validator",
    "demo-escalation-router", "demo-response-aggregator",
}  # fmt: skip
APIS = {"demo-context-retriever", "demo-execution-coordinator"}


@pytest.mark.parametrize(
    ("runtime", "rolled"),
    [
        pytest.param(
            {"logLevel": "DEBUG"},
            ACTOR_NAMES | {"demo-gateway", "demo-history", "demo-mocks"},
            id="log-level",
        ),
        pytest.param(
            {"logFormat": "text"},
            ACTOR_NAMES | {"demo-gateway", "demo-history", "demo-mocks"},
            id="log-format",
        ),
        pytest.param({"cacheTtlSeconds": 60}, APIS, id="cache-ttl"),
        pytest.param({"apiTimeoutSeconds": 2}, APIS, id="api-timeout"),
        pytest.param({"requestTimeoutSeconds": 60}, {"demo-gateway"}, id="request-timeout"),
        pytest.param({"conversationDeadlineSeconds": 300}, {"demo-gateway"}, id="deadline"),
        pytest.param({"processingTimeoutSeconds": 40}, ACTOR_NAMES, id="processing-timeout"),
        pytest.param({"maxMessageChars": 2000}, {"demo-gateway"}, id="max-message-chars"),
        pytest.param({"escalationConfidenceThreshold": 0.6}, {"demo-decision-router"}, id="escalation"),
        pytest.param({"maxConcurrentRequests": 50}, {"demo-gateway"}, id="max-concurrent"),
        pytest.param({"rateLimitRequests": 1000}, {"demo-gateway"}, id="rate-limit"),
        pytest.param({"logLevel": "INFO", "cacheTtlSeconds": 300.0}, set(), id="defaults-spelled-out"),
    ],
)
def test_a_runtime_setting_rolls_exactly_the_pods_that_read_it(
    runtime: dict[str, Any], rolled: set[str]
) -> None:
    assert _rolled({}, {"runtime": runtime}) == rolled


def test_every_runtime_field_is_covered_by_the_roll_table() -> None:
    ids = {"logLevel", "logFormat", "cacheTtlSeconds", "apiTimeoutSeconds", "requestTimeoutSeconds",
           "conversationDeadlineSeconds", "processingTimeoutSeconds", "maxMessageChars",
           "escalationConfidenceThreshold", "maxConcurrentRequests", "rateLimitRequests"}  # fmt: skip
    assert ids == {RuntimeSpec.model_fields[f].alias for f in RUNTIME_FIELDS}


def test_runtime_values_reach_the_configmap_as_the_runtime_parses_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = {"runtime": {"cacheTtlSeconds": 60, "logLevel": "DEBUG", "escalationConfidenceThreshold": 0.5}}
    data = index(children(spec))["ConfigMap", "demo-runtime-config"]["data"]
    assert (data["CACHE_TTL"], data["LOG_LEVEL"], data["ESCALATION_CONFIDENCE_THRESHOLD"]) == (
        "60",
        "DEBUG",
        "0.5",
    )
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    settings = RuntimeSettings()
    assert (settings.cache_ttl, settings.log_level, settings.escalation_confidence_threshold) == (
        60.0,
        "DEBUG",
        0.5,
    )


OLD_GATEWAY_KEYS = ("MESH_NAME", "NATS_URL", "LOG_FORMAT", "HOST", "CORS_ORIGINS", "REDIS_URL")
OLD_ACTOR_KEYS = ("MESH_NAME", "NATS_URL", "LOG_FORMAT", "HOST", "ACTOR_HTTP_PORT")


@pytest.mark.parametrize(
    ("workload", "old_keys"),
    [("demo-gateway", OLD_GATEWAY_KEYS), ("demo-sentiment-analyzer", OLD_ACTOR_KEYS)],
)
def test_meshes_without_spec_runtime_keep_their_config_hash(workload: str, old_keys: tuple[str, ...]) -> None:
    # The key sets before spec.runtime existed: an operator upgrade must not restart these pods.
    objs = index(children({}))
    data = objs["ConfigMap", "demo-runtime-config"]["data"]
    template = objs["Deployment", workload]["spec"]["template"]
    expected = config_hash({k: data[k] for k in old_keys if k in data})
    assert template["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] == expected


# --- per-actor overrides ----------------------------------------------------------------------------


def test_an_actor_override_reaches_only_that_actor() -> None:
    spec = {"actors": {"intentAnalyzer": {"logLevel": "DEBUG", "processingTimeoutSeconds": 45}}}
    assert _rolled({}, spec) == {"demo-intent-analyzer"}
    objs = index(children(spec))
    env = env_of(objs["Deployment", "demo-intent-analyzer"])
    assert (env["LOG_LEVEL"], env["PROCESSING_TIMEOUT_S"]) == ("DEBUG", "45")
    assert "LOG_LEVEL" not in env_of(objs["Deployment", "demo-sentiment-analyzer"])


def test_an_override_equal_to_the_mesh_value_changes_nothing() -> None:
    base = {"runtime": {"logLevel": "WARNING"}}
    same = {**base, "actors": {"intentAnalyzer": {"logLevel": "WARNING"}}}
    assert _rolled(base, same) == set()


# --- env escape hatch -------------------------------------------------------------------------------

SECRET_ENV = {"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": "openai", "key": "key"}}}


def test_env_reaches_the_gateway_and_one_actor() -> None:
    spec = {
        "gateway": {"env": [SECRET_ENV, {"name": "EXTRA", "value": "1"}]},
        "actors": {"responseGenerator": {"env": [SECRET_ENV]}},
    }
    assert _rolled({}, spec) == {"demo-gateway", "demo-response-generator"}
    objs = index(children(spec))
    gateway = container(objs["Deployment", "demo-gateway"])["env"]
    assert {"name": "EXTRA", "value": "1"} in gateway
    assert SECRET_ENV in gateway


def test_user_env_replaces_the_operators_entry_of_the_same_name() -> None:
    spec = {
        "gateway": {
            "auth": {"issuer": "https://shop.example"},
            "env": [{"name": "JWT_ISSUER", "value": "https://other.example"}],
        }
    }
    env = container(index(children(spec))["Deployment", "demo-gateway"])["env"]
    assert [e for e in env if e["name"] == "JWT_ISSUER"] == [
        {"name": "JWT_ISSUER", "value": "https://other.example"}
    ]


@pytest.mark.parametrize("name", RESERVED_ENV)
@pytest.mark.parametrize(
    "where",
    [
        pytest.param(lambda env: {"gateway": {"env": env}}, id="gateway"),
        pytest.param(lambda env: {"actors": {"intentAnalyzer": {"env": env}}}, id="actor"),
        pytest.param(
            lambda env: {
                "actors": {
                    "groups": [
                        {"name": "routers", "actors": ["decisionRouter", "escalationRouter"], "env": env}
                    ]
                }
            },
            id="group",
        ),
    ],
)
def test_env_cannot_turn_auth_off_or_borrow_a_nats_user(name: str, where: Any) -> None:
    """Anonymous mode through `env` would carry no AnonymousGateway warning, and another component's NATS
    user its permissions: those names come only from the fields the operator reports on."""
    with pytest.raises(InvalidSpec, match=f"env {name}: .*set by the operator"):
        make_mesh(where([{"name": name, "value": "true"}]))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(
            {"gateway": {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}},
            "spec.gateway.env: duplicate name 'A'",
            id="duplicate",
        ),
        pytest.param(
            {
                "actors": {
                    "intentAnalyzer": {
                        "env": [
                            {
                                "name": "A",
                                "value": "1",
                                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                            }
                        ]
                    }
                }
            },
            "set value or valueFrom, not both",
            id="value-and-source",
        ),
        pytest.param(
            {"gateway": {"env": [{"name": "A", "valueFrom": {}}]}},
            "exactly one of secretKeyRef",
            id="no-source",
        ),
        pytest.param(
            {"gateway": {"env": [{"name": "A=B", "value": "1"}]}}, "spec.gateway.env.0.name", id="bad-name"
        ),
        pytest.param(
            {"runtime": {"requestTimeoutSeconds": 200}},
            "spec.runtime.requestTimeoutSeconds must be less than spec.runtime.conversationDeadlineSeconds",
            id="timeout-over-deadline",
        ),
        pytest.param({"runtime": {"logLevel": "LOUD"}}, "spec.runtime.logLevel", id="log-level"),
        pytest.param({"runtime": {"cacheTtlSeconds": 0}}, "spec.runtime.cacheTtlSeconds", id="ttl-zero"),
        pytest.param(
            {"actors": {"decisionRouter": {"processingTimeoutSeconds": -1}}},
            "spec.actors.decisionRouter.processingTimeoutSeconds",
            id="actor-timeout",
        ),
    ],
)
def test_invalid_runtime_settings_name_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises((InvalidSpec, ValidationError), match=message.replace(".", r"\.").replace("'", ".")):
        make_mesh(spec)


def test_the_gateway_grace_period_covers_a_longer_request_timeout() -> None:
    def grace(spec: dict[str, Any]) -> int:
        gw = index(children(spec))["Deployment", "demo-gateway"]
        value: int = gw["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        return value

    assert grace({}) == 45
    assert grace({"runtime": {"requestTimeoutSeconds": 100, "conversationDeadlineSeconds": 300}}) == 115

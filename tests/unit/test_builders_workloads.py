"""actors.py, gateway.py, history.py, mocks.py, redis.py, runtime_config.py: the fields that matter."""

from __future__ import annotations

import json
from typing import Any

import pytest

from actormesh_operator.builders import build_children
from actormesh_runtime.catalog import ACTORS
from actormesh_runtime.settings import RuntimeSettings
from tests.unit.builder_helpers import (
    IMAGE,
    RICH_SPEC,
    SETTINGS,
    children,
    container,
    env_of,
    index,
    make_mesh,
)

LLM_ACTORS = {a.k8s_name for a in ACTORS if a.uses_llm}


def _deployment(spec: dict[str, Any], name: str, *, keda: bool = False) -> dict[str, Any]:
    obj: dict[str, Any] = index(children(spec, keda=keda))[("Deployment", f"demo-{name}")]
    return obj


def test_actor_deployment_runs_the_actor_with_probes_and_config() -> None:
    dep = _deployment({}, "sentiment-analyzer")
    c = container(dep)
    assert dep["spec"]["replicas"] == 1
    assert c["image"] == IMAGE
    assert c["command"] == ["actormesh"]
    assert c["args"] == ["actor", "sentiment_analyzer"]
    assert c["ports"] == [{"name": "http", "containerPort": 8080}]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["envFrom"] == [{"configMapRef": {"name": "demo-runtime-config"}}]
    assert env_of(dep) == {
        "ACTOR_CONCURRENCY": "8",
        "NATS_USER": "sentiment_analyzer",
        "NATS_PASSWORD": {"secretKeyRef": {"name": "demo-nats-users", "key": "sentiment_analyzer"}},
    }
    assert c["resources"] == {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}


def test_per_actor_overrides_apply() -> None:
    spec = {
        "actors": {"defaults": {"concurrency": 4}, "contextRetriever": {"replicas": 3, "concurrency": 16}}
    }
    assert _deployment(spec, "context-retriever")["spec"]["replicas"] == 3
    assert env_of(_deployment(spec, "context-retriever"))["ACTOR_CONCURRENCY"] == "16"
    assert env_of(_deployment(spec, "decision-router"))["ACTOR_CONCURRENCY"] == "4"


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        pytest.param(
            {"actors": {"intentAnalyzer": {"autoscaling": {"enabled": True}}}}, "intent-analyzer", id="hpa"
        ),
        pytest.param(
            {"actors": {"intentAnalyzer": {"autoscaling": {"enabled": True, "mode": "queueLag"}}}},
            "intent-analyzer",
            id="keda",
        ),
        pytest.param({"gateway": {"autoscaling": {"enabled": True}}}, "gateway", id="gateway-hpa"),
    ],
)
def test_autoscaled_deployments_omit_replicas(spec: dict[str, Any], name: str) -> None:
    assert "replicas" not in _deployment(spec, name, keda=True)["spec"]


def test_llm_key_goes_only_to_llm_actors() -> None:
    objs = children(RICH_SPEC)
    for obj in objs:
        component = obj["metadata"]["labels"]["app.kubernetes.io/component"]
        if obj["kind"] != "Deployment" or component in {"gateway", "mocks"}:
            continue
        env = env_of(obj)
        if component in LLM_ACTORS:
            assert env["LLM_API_KEY"] == {"secretKeyRef": {"name": "llm", "key": "api-key"}}
        else:
            assert "LLM_API_KEY" not in env, component


def test_redis_password_goes_to_redis_users_only() -> None:
    spec = {
        "redis": {"external": {"url": "redis://r:6379", "passwordSecretRef": {"name": "redis", "key": "pw"}}}
    }
    want = {"secretKeyRef": {"name": "redis", "key": "pw"}}
    assert env_of(_deployment(spec, "context-retriever"))["REDIS_PASSWORD"] == want
    assert env_of(_deployment(spec, "gateway"))["REDIS_PASSWORD"] == want
    assert "REDIS_PASSWORD" not in env_of(_deployment(spec, "decision-router"))


def test_gateway_deployment_service_and_ingress() -> None:
    objs = index(children(RICH_SPEC))
    dep = objs[("Deployment", "demo-gateway")]
    c = container(dep)
    assert dep["spec"]["replicas"] == 2
    assert c["args"] == ["gateway"]
    assert c["ports"] == [{"name": "http", "containerPort": 8000}]
    assert c["readinessProbe"]["httpGet"]["path"] == "/api/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/api/health"
    assert env_of(dep)["JWT_SECRET"] == {"secretKeyRef": {"name": "jwt", "key": "secret"}}
    svc = objs[("Service", "demo-gateway")]["spec"]
    assert svc["type"] == "ClusterIP"
    assert svc["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "appProtocol": "http"}]
    ing = objs[("Ingress", "demo-gateway")]["spec"]
    assert ing["ingressClassName"] == "nginx"
    assert ing["tls"] == [{"hosts": ["support.example.com"], "secretName": "support-tls"}]
    [rule] = ing["rules"]
    assert rule["host"] == "support.example.com"
    assert rule["http"]["paths"][0]["backend"] == {
        "service": {"name": "demo-gateway", "port": {"name": "http"}}
    }


def test_history_statefulset_keeps_sqlite_on_a_claim() -> None:
    objs = index(
        children({"persistence": {"reclaimPolicy": "Delete"}, "history": {"storage": {"size": "5Gi"}}})
    )
    sts = objs[("StatefulSet", "demo-history")]
    c = container(sts)
    assert sts["spec"]["replicas"] == 1
    assert c["args"] == ["history"]
    assert env_of(sts)["SQLITE_DB_PATH"] == "/var/lib/actormesh/conversations.db"
    assert {"name": "data", "mountPath": "/var/lib/actormesh"} in c["volumeMounts"]
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"
    assert objs[("Service", "demo-history")]["spec"]["clusterIP"] == "None"


def test_mocks_deployment_and_service() -> None:
    objs = index(children())
    c = container(objs[("Deployment", "demo-mocks")])
    assert c["args"] == ["mocks"]
    assert {p["containerPort"] for p in c["ports"]} == {8001, 8002, 8003}
    assert {p["port"] for p in objs[("Service", "demo-mocks")]["spec"]["ports"]} == {8001, 8002, 8003}


def test_managed_redis_requires_the_password_from_its_secret() -> None:
    spec = {"redis": {"passwordSecretRef": {"name": "redis-auth", "key": "password"}}}
    objs = index(children(spec))
    c = container(objs[("StatefulSet", "demo-redis")])
    secret = {"secretKeyRef": {"name": "redis-auth", "key": "password"}}
    # The server reads the password from a file an init container renders from the mounted Secret; only
    # redis-cli (the probe) reads it from the env. Nothing on any command line.
    assert c["args"][0] == "/run/redis-auth/auth.conf"
    assert not any("REDISCLI_AUTH" in a or "requirepass" in a for a in c["args"])
    assert env_of(objs[("StatefulSet", "demo-redis")]) == {"REDISCLI_AUTH": secret}
    pod = objs[("StatefulSet", "demo-redis")]["spec"]["template"]["spec"]
    [init] = pod["initContainers"]
    assert init["image"] == "ghcr.io/example/actormesh:0.1.0"
    assert init["command"][-2:] == ["/run/redis-password/password", "/run/redis-auth/auth.conf"]
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["password"]["secret"] == {
        "secretName": "redis-auth",
        "items": [{"key": "password", "path": "password"}],
        "defaultMode": 0o440,
    }
    assert volumes["auth"]["emptyDir"]["medium"] == "Memory"
    assert {"name": "auth", "mountPath": "/run/redis-auth", "readOnly": True} in c["volumeMounts"]
    assert not any(m["name"] == "password" for m in c["volumeMounts"])  # only the init container sees it
    assert c["readinessProbe"]["exec"]["command"] == ["redis-cli", "-e", "-p", "6379", "ping"]
    assert env_of(objs[("Deployment", "demo-gateway")])["REDIS_PASSWORD"] == secret
    assert env_of(objs[("Deployment", "demo-execution-coordinator")])["REDIS_PASSWORD"] == secret
    assert "REDIS_PASSWORD" not in env_of(objs[("Deployment", "demo-response-aggregator")])
    assert "REDIS_PASSWORD" not in env_of(objs[("Deployment", "demo-decision-router")])


def test_managed_redis_without_a_secret_requires_a_generated_password() -> None:
    objs = index(children())
    generated = {"secretKeyRef": {"name": "demo-redis-auth", "key": "password"}}
    assert env_of(objs[("StatefulSet", "demo-redis")]) == {"REDISCLI_AUTH": generated}
    assert container(objs[("StatefulSet", "demo-redis")])["args"][0] == "/run/redis-auth/auth.conf"
    assert env_of(objs[("Deployment", "demo-gateway")])["REDIS_PASSWORD"] == generated
    external = index(children({"redis": {"external": {"url": "redis://r.infra:6379/0"}}}))
    assert "REDIS_PASSWORD" not in env_of(external[("Deployment", "demo-gateway")])


def test_redis_statefulset() -> None:
    sts = index(children({"redis": {"storage": {"size": "2Gi"}}}))[("StatefulSet", "demo-redis")]
    c = container(sts)
    assert c["image"] == SETTINGS.redis_image
    assert c["command"] == ["redis-server"]
    assert "--appendonly" in c["args"]
    assert {"name": "data", "mountPath": "/data"} in c["volumeMounts"]
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "2Gi"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {},
            {
                "MESH_NAME": "demo",
                "NATS_URL": "nats://demo-nats.shop.svc.cluster.local:4222",
                "REDIS_URL": "redis://demo-redis.shop.svc.cluster.local:6379/0",
                "CUSTOMER_API_URL": "http://demo-mocks.shop.svc.cluster.local:8001",
                "ORDERS_API_URL": "http://demo-mocks.shop.svc.cluster.local:8002",
                "TRACKING_API_URL": "http://demo-mocks.shop.svc.cluster.local:8003",
                "LOG_FORMAT": "json",
                "HOST": "0.0.0.0",
                "ACTOR_HTTP_PORT": "8080",
                "CORS_ORIGINS": "[]",
            },
            id="minimal",
        ),
        pytest.param(
            {
                "nats": {"external": {"url": "nats://a:4222,nats://b:4222"}},
                "redis": {"enabled": False},
                "mockServices": {"enabled": False},
                "commerceApis": {"customerUrl": "https://crm.example.com"},
                "llm": {"model": "gpt-4o-mini", "apiBase": "https://llm.example.com/v1", "temperature": 0.1},
                "gateway": {"corsOrigins": ["https://shop.example.com"]},
            },
            {
                "MESH_NAME": "demo",
                "NATS_URL": "nats://a:4222,nats://b:4222",
                "CUSTOMER_API_URL": "https://crm.example.com",
                "LITELLM_MODEL": "gpt-4o-mini",
                "LLM_API_BASE": "https://llm.example.com/v1",
                "LLM_TEMPERATURE": "0.1",
                "LLM_TIMEOUT_S": "10",
                "LOG_FORMAT": "json",
                "HOST": "0.0.0.0",
                "ACTOR_HTTP_PORT": "8080",
                "CORS_ORIGINS": json.dumps(["https://shop.example.com"]),
            },
            id="external-everything",
        ),
    ],
)
def test_runtime_configmap(spec: dict[str, Any], expected: dict[str, str]) -> None:
    cm = index(children(spec))[("ConfigMap", "demo-runtime-config")]
    assert cm["data"] == expected
    assert list(cm["data"]) == sorted(cm["data"]), "sorted keys keep the applied object stable"


def test_builders_are_pure_and_deterministic() -> None:
    mesh = make_mesh(RICH_SPEC)
    first = build_children(mesh, SETTINGS, keda_available=True)
    assert first == build_children(mesh, SETTINGS, keda_available=True)
    assert json.dumps(first, sort_keys=False) == json.dumps(
        build_children(mesh, SETTINGS, keda_available=True)
    )


def test_mocks_probe_the_apps_health_endpoint() -> None:
    c = container(index(children())[("Deployment", "demo-mocks")])
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "customers"}


@pytest.mark.parametrize("spec", [{}, RICH_SPEC], ids=["minimal", "rich"])
def test_runtime_settings_parse_what_the_operator_writes(
    spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ConfigMap plus a pod's plain env vars validate as the runtime's own settings, with the meaning
    intended (catches a renamed variable or a value in the wrong format, e.g. CORS_ORIGINS)."""
    objs = index(children(spec))
    dep = objs[("Deployment", "demo-intent-analyzer")]
    # Secret-backed variables (NATS_PASSWORD, LLM_API_KEY) get a placeholder: the runtime refuses a
    # NATS_USER without its password, as it should.
    plain = {
        k: v if isinstance(v, str) else "placeholder-from-a-secret-0123456789abcdef"
        for k, v in env_of(dep).items()
    }
    for key, value in {**objs[("ConfigMap", "demo-runtime-config")]["data"], **plain}.items():
        monkeypatch.setenv(key, value)
    settings = RuntimeSettings()
    assert settings.host == "0.0.0.0"
    assert settings.mesh_name == "demo"
    assert settings.actor_http_port == 8080
    assert settings.log_format == "json"
    assert settings.actor_concurrency == 8
    assert settings.nats_url == "nats://demo-nats.shop.svc.cluster.local:4222"
    assert settings.cors_origins == spec.get("gateway", {}).get("corsOrigins", [])
    assert settings.litellm_model == spec.get("llm", {}).get("model")

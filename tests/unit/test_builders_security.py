"""Issue 11's builders: the gateway's key (generated, the user's, or explicit anonymous mode), the
generated Secrets, NATS users in nats.conf without any password in a ConfigMap, and the Ingress paths."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from actormesh_operator.api.spec import InvalidSpec
from actormesh_operator.builders import generated, nats, referenced_secrets
from actormesh_operator.builders.gateway import INGRESS_PATHS
from actormesh_runtime.catalog import NATS_USERS
from tests.unit.builder_helpers import SETTINGS, children, container, index, make_mesh


def _env(obj: dict[str, Any]) -> dict[str, Any]:
    return {v["name"]: v.get("value", v.get("valueFrom")) for v in container(obj).get("env") or []}


def _gateway_env(spec: dict[str, Any]) -> dict[str, Any]:
    return _env(index(children(spec))[("Deployment", "demo-gateway")])


def test_no_key_and_not_anonymous_uses_the_generated_key() -> None:
    env = _gateway_env({})
    assert env["JWT_SECRET"] == {"secretKeyRef": {"name": "demo-gateway-auth", "key": "jwt-secret"}}
    assert env["JWT_PREVIOUS_SECRET"] == {
        "secretKeyRef": {"name": "demo-gateway-auth", "key": "jwt-previous-secret", "optional": True}
    }
    assert "GATEWAY_ANONYMOUS" not in env
    [auth, redis, users] = generated.generated_secrets(make_mesh({}))
    assert (redis.name, redis.keys) == ("demo-redis-auth", ("password",))
    assert users.name == "demo-nats-users"
    assert auth.name == "demo-gateway-auth"
    assert auth.keys == ("jwt-secret",)
    assert auth.random_bytes >= 32


def test_the_users_key_with_rotation_issuer_and_audience() -> None:
    spec = {
        "gateway": {
            "authSecretRef": {"name": "shop-jwt", "key": "current"},
            "auth": {"issuer": "https://shop.example", "audience": "actormesh", "previousKey": "old"},
        }
    }
    env = _gateway_env(spec)
    assert env["JWT_SECRET"] == {"secretKeyRef": {"name": "shop-jwt", "key": "current"}}
    assert env["JWT_PREVIOUS_SECRET"] == {
        "secretKeyRef": {"name": "shop-jwt", "key": "old", "optional": True}
    }
    assert env["JWT_ISSUER"] == "https://shop.example"
    assert env["JWT_AUDIENCE"] == "actormesh"
    assert [s.name for s in generated.generated_secrets(make_mesh(spec))] == [
        "demo-redis-auth",
        "demo-nats-users",
    ]


def test_anonymous_mode_is_explicit_and_generates_no_key() -> None:
    env = _gateway_env({"gateway": {"anonymous": True}})
    assert env["GATEWAY_ANONYMOUS"] == "true"
    assert "JWT_SECRET" not in env
    assert "JWT_PREVIOUS_SECRET" not in env
    assert [s.name for s in generated.generated_secrets(make_mesh({"gateway": {"anonymous": True}}))] == [
        "demo-redis-auth",
        "demo-nats-users",
    ]


def test_generated_secret_manifest_is_owned_by_the_mesh_and_carries_no_data() -> None:
    mesh = make_mesh({})
    for secret in generated.generated_secrets(mesh):
        body = generated.generated_secret_manifest(mesh, secret)
        assert body["kind"] == "Secret"
        assert body["type"] == "Opaque"
        assert "data" not in body
        assert "stringData" not in body
        [owner] = body["metadata"]["ownerReferences"]
        assert owner["uid"] == "0000-uid"
        assert owner["controller"] is True
        assert body["metadata"]["annotations"][generated.GENERATED_ANNOTATION]


def test_no_generated_secret_is_a_server_side_applied_child() -> None:
    assert not [o for o in children({}) if o["kind"] == "Secret"]


def test_nats_users_have_one_password_each_and_none_with_external_nats() -> None:
    mesh = make_mesh({})
    [users] = [s for s in generated.generated_secrets(mesh) if s.name == "demo-nats-users"]
    assert users.keys == NATS_USERS
    external = make_mesh({"nats": {"external": {"url": "nats://bus.example:4222"}}})
    assert [s.name for s in generated.generated_secrets(external)] == ["demo-gateway-auth", "demo-redis-auth"]
    user_redis = make_mesh({"redis": {"passwordSecretRef": {"name": "mine", "key": "pw"}}})
    assert "demo-redis-auth" not in [s.name for s in generated.generated_secrets(user_redis)]
    for obj in children({"nats": {"external": {"url": "nats://bus.example:4222"}}}):
        if obj["kind"] in {"Deployment", "StatefulSet"}:
            assert "NATS_USER" not in _env(obj)
            assert "NATS_PASSWORD" not in _env(obj)


def test_every_nats_client_pod_connects_as_its_own_user() -> None:
    objs = index(children({}))
    users = {}
    for (kind, name), obj in objs.items():
        if kind in {"Deployment", "StatefulSet"} and "NATS_USER" in _env(obj):
            env = _env(obj)
            assert env["NATS_PASSWORD"] == {
                "secretKeyRef": {"name": "demo-nats-users", "key": env["NATS_USER"]}
            }
            users[name] = env["NATS_USER"]
    assert users["demo-gateway"] == "gateway"
    assert users["demo-history"] == "history"
    assert users["demo-context-retriever"] == "context_retriever"
    assert len(users) == 11  # nine actors, gateway, history; `admin` is for humans
    assert len(set(users.values())) == 11


def test_nats_conf_holds_users_and_permissions_but_no_password() -> None:
    mesh = make_mesh({})
    objs = index(children({}))
    conf = objs[("ConfigMap", "demo-nats-config")]["data"][nats.CONFIG_FILE]
    for user in NATS_USERS:
        assert f"{{user: {json.dumps(user)}, password: ${nats.password_variable(user)}," in conf
    assert "allow_responses: true" in conf  # history answers queries
    assert conf == nats.render_config(mesh, SETTINGS)
    env = _env(objs[("StatefulSet", "demo-nats")])
    for user in NATS_USERS:
        assert env[nats.password_variable(user)] == {"secretKeyRef": {"name": "demo-nats-users", "key": user}}
    external = children({"nats": {"external": {"url": "nats://bus.example:4222"}}})
    assert not [o for o in external if o["kind"] == "ConfigMap" and "nats" in o["metadata"]["name"]]


@pytest.mark.parametrize("spec", [{}, {"gateway": {"anonymous": True}}], ids=["generated", "anonymous"])
def test_no_configmap_carries_a_secret_value(spec: dict[str, Any]) -> None:
    for obj in children(spec):
        if obj["kind"] == "ConfigMap":
            text = json.dumps(obj["data"])
            assert "JWT_SECRET" not in text
            assert 'NATS_PASSWORD"' not in text


def test_ingress_routes_only_the_public_paths() -> None:
    spec = {"gateway": {"ingress": {"enabled": True, "host": "chat.example.com"}}}
    ing = index(children(spec))[("Ingress", "demo-gateway")]
    [rule] = ing["spec"]["rules"]
    paths = [p["path"] for p in rule["http"]["paths"]]
    assert paths == list(INGRESS_PATHS) == ["/api", "/ws", "/widget", "/console"]
    assert all(p["pathType"] == "Prefix" for p in rule["http"]["paths"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(
            {"gateway": {"anonymous": True, "authSecretRef": {"name": "k", "key": "jwt"}}},
            "spec.gateway.anonymous cannot be true when spec.gateway.authSecretRef is set",
            id="anonymous-with-key",
        ),
        pytest.param(
            {"networkPolicy": {"egressExcept": ["10.0.0.256/8"]}},
            "spec.networkPolicy.egressExcept.0: must be an IPv4 or IPv6 address range",
            id="not-an-address",
        ),
        pytest.param(
            {"networkPolicy": {"egressExcept": ["10.0.0.0/8", "0.0.0.0/0"]}},
            "spec.networkPolicy.egressExcept must not contain 0.0.0.0/0 or ::/0",
            id="every-address",
        ),
        pytest.param(
            {"gateway": {"auth": {"previousKey": "has space"}}},
            "spec.gateway.auth.previousKey: String should match pattern",
            id="bad-secret-key",
        ),
    ],
)
def test_bad_security_settings_are_refused_naming_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=re.escape(message)):
        make_mesh(spec)


def test_default_egress_except_list_covers_metadata_private_and_loopback_ranges() -> None:
    excepted = make_mesh({}).spec.network_policy.egress_except
    assert {"169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8"} <= set(excepted)
    assert {"fc00::/7", "fe80::/10"} <= set(excepted)


def test_nats_tls_from_a_certificate_secret() -> None:
    spec = {"nats": {"tls": {"secretName": "nats-cert"}}}
    objs = index(children(spec))
    conf = objs[("ConfigMap", "demo-nats-config")]["data"][nats.CONFIG_FILE]
    assert "tls {\n  cert_file: /etc/nats-tls/tls.crt\n  key_file: /etc/nats-tls/tls.key\n" in conf
    sts = objs[("StatefulSet", "demo-nats")]
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "nats-cert"
    assert {i["key"] for i in volumes["tls"]["secret"]["items"]} == {"tls.crt", "tls.key"}
    assert {"name": "tls", "mountPath": "/etc/nats-tls", "readOnly": True} in container(sts)["volumeMounts"]
    for name in ("demo-gateway", "demo-sentiment-analyzer"):
        pod = objs[("Deployment", name)]["spec"]["template"]["spec"]
        [ca] = [v for v in pod["volumes"] if v["name"] == "nats-ca"]
        # Clients get the CA certificate only, never the server's key.
        assert ca["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
        assert _env(objs[("Deployment", name)])["NATS_TLS_CA"] == "/etc/actormesh/nats-ca/ca.crt"
    pod = objs[("StatefulSet", "demo-history")]["spec"]["template"]["spec"]
    assert any(v["name"] == "nats-ca" for v in pod["volumes"])
    assert "NATS_TLS_CA" not in _env(index(children({}))[("Deployment", "demo-gateway")])
    refs = {(r.name, r.key) for r in referenced_secrets(make_mesh(spec))}
    assert {("nats-cert", "tls.crt"), ("nats-cert", "tls.key"), ("nats-cert", "ca.crt")} <= refs


def test_nats_tls_needs_the_managed_nats() -> None:
    with pytest.raises(InvalidSpec, match=r"spec.nats.external cannot be combined .*tls"):
        make_mesh({"nats": {"external": {"url": "nats://n:4222"}, "tls": {"secretName": "c"}}})

"""`spec.nats.external.credentialsSecretRef` / `tokenSecretRef`: an external NATS's user and password, or
its token, come from a Secret into every NATS client pod's env, and a password or token in
`spec.nats.external.url` (which lands in the runtime ConfigMap) is refused by the model and the CRD alike."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from actormesh_operator.api.spec import InvalidSpec
from actormesh_operator.builders import SecretRef, referenced_secrets
from actormesh_operator.builders.secret_hash import SECRET_HASH_ANNOTATION, with_secret_hashes
from tests.unit.builder_helpers import children, env_of, index, make_mesh
from tests.unit.test_crd_defaults import spec_schema

CREDENTIALS = {"name": "bus-creds"}
EXTERNAL = {"nats": {"external": {"url": "nats://nats.infra:4222", "credentialsSecretRef": CREDENTIALS}}}
GROUPS = {"actors": {"groups": [{"name": "routers", "actors": ["decisionRouter", "escalationRouter"]}]}}

PASSWORD_URLS = [
    pytest.param("nats://support:s3cr3t@nats.infra:4222", id="user-and-password"),
    pytest.param("nats://:s3cr3t@nats.infra:4222", id="password-only"),
    pytest.param("tls://a.infra:4222,wss://u:s3cr3t@b.infra:443", id="second-of-a-list"),
    pytest.param("nats://u:s3cr3t@[fd00::1]:4222", id="ipv6"),
    # A bare name is NATS token auth: the token is as secret as a password.
    pytest.param("nats://s3cr3t@nats.infra:4222", id="token"),
    pytest.param("nats://a.infra:4222,tls://s3cr3t@b.infra", id="token-second-of-a-list"),
]
CLEAN_URLS = [
    pytest.param("nats://nats.infra:4222", id="plain"),
    pytest.param("nats://a:4222,tls://b.example.com:65535,ws://c", id="list-with-ports"),
    pytest.param("nats://[fd00::1]:4222", id="ipv6-port"),
    pytest.param("nats://nats.infra:4222/path?user=x@y", id="at-sign-after-the-host"),
]
TOKEN = {"name": "bus-token", "key": "token"}


def _external(url: str, **extra: Any) -> dict[str, Any]:
    return {"nats": {"external": {"url": url, **extra}}}


# --- the model ------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", PASSWORD_URLS)
def test_the_model_refuses_a_password_in_the_external_url(url: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        make_mesh(_external(url))
    (problem,) = info.value.problems
    assert problem.startswith("spec.nats.external.url must not contain a password or a token")
    assert "spec.nats.external.credentialsSecretRef" in problem
    assert "spec.nats.external.tokenSecretRef" in problem
    assert "s3cr3t" not in problem  # the refusal must not echo the secret into status and Events


@pytest.mark.parametrize("url", CLEAN_URLS)
def test_the_model_accepts_a_url_without_password(url: str) -> None:
    assert make_mesh(_external(url)).spec.nats.external is not None


def _credentials(spec: dict[str, Any]) -> tuple[str, str, str]:
    external = make_mesh(spec).spec.nats.external
    assert external is not None
    ref = external.credentials_secret_ref
    assert ref is not None
    return ref.name, ref.user_key, ref.password_key


def test_credentials_secret_ref_keys_default_to_user_and_password() -> None:
    assert _credentials(EXTERNAL) == ("bus-creds", "user", "password")
    custom = {"name": "c", "userKey": "u", "passwordKey": "p"}
    assert _credentials(_external("nats://n", credentialsSecretRef=custom)) == ("c", "u", "p")


# --- the builders ---------------------------------------------------------------------------------


def _nats_clients(objs: list[dict[str, Any]]) -> set[str]:
    """Workloads whose pods connect to NATS: on the managed NATS, exactly those given a NATS user."""
    return {
        o["metadata"]["name"]
        for o in objs
        if o["kind"] in {"Deployment", "StatefulSet"} and "NATS_USER" in env_of(o)
    }


@pytest.mark.parametrize("extra", [{}, GROUPS], ids=["per-actor", "groups"])
def test_every_nats_client_pod_reads_the_external_credentials_from_the_secret(extra: dict[str, Any]) -> None:
    managed = children(extra)
    clients = _nats_clients(managed) - {"demo-nats"}
    assert {"demo-gateway", "demo-history", "demo-context-retriever"} <= clients
    external = index(children({**EXTERNAL, **extra}))
    for name in clients:
        kind = "StatefulSet" if name == "demo-history" else "Deployment"
        env = env_of(external[(kind, name)])
        assert env["NATS_USER"] == {"secretKeyRef": {"name": "bus-creds", "key": "user"}}, name
        assert env["NATS_PASSWORD"] == {"secretKeyRef": {"name": "bus-creds", "key": "password"}}, name
    # The pods that never connect to NATS get nothing, as on the managed NATS.
    assert _nats_clients(list(external.values())) == clients


@pytest.mark.parametrize("extra", [{}, GROUPS], ids=["per-actor", "groups"])
def test_every_nats_client_pod_reads_the_external_token_from_the_secret(extra: dict[str, Any]) -> None:
    clients = _nats_clients(children(extra)) - {"demo-nats"}
    built = index(children({**_external("nats://nats.infra:4222", tokenSecretRef=TOKEN), **extra}))
    with_token = {
        o["metadata"]["name"]
        for o in built.values()
        if o["kind"] in {"Deployment", "StatefulSet"} and "NATS_TOKEN" in env_of(o)
    }
    assert with_token == clients
    for (kind, name), obj in built.items():
        if name in clients and kind in {"Deployment", "StatefulSet"}:
            env = env_of(obj)
            assert env["NATS_TOKEN"] == {"secretKeyRef": {"name": "bus-token", "key": "token"}}, name
            assert not {"NATS_USER", "NATS_PASSWORD"} & set(env), name
        if kind == "ConfigMap":
            assert "NATS_TOKEN" not in (obj.get("data") or {}), name


def test_the_token_secret_is_referenced_so_its_absence_stalls_the_mesh() -> None:
    mesh = make_mesh(_external("nats://n:4222", tokenSecretRef=TOKEN))
    assert referenced_secrets(mesh) == [
        SecretRef(name="bus-token", key="token", field_path="spec.nats.external.tokenSecretRef")
    ]


def test_a_user_and_a_token_together_are_refused() -> None:
    with pytest.raises(InvalidSpec) as info:
        make_mesh(_external("nats://n:4222", credentialsSecretRef=CREDENTIALS, tokenSecretRef=TOKEN))
    (problem,) = info.value.problems
    assert "credentialsSecretRef or tokenSecretRef, not both" in problem


def test_custom_keys_are_read() -> None:
    spec = _external("nats://n:4222", credentialsSecretRef={"name": "c", "userKey": "u", "passwordKey": "p"})
    env = env_of(index(children(spec))[("Deployment", "demo-gateway")])
    assert env["NATS_USER"] == {"secretKeyRef": {"name": "c", "key": "u"}}
    assert env["NATS_PASSWORD"] == {"secretKeyRef": {"name": "c", "key": "p"}}


@pytest.mark.parametrize("url", PASSWORD_URLS)
def test_no_configmap_ever_holds_the_password_of_the_url(url: str) -> None:
    """The invariant docs/security.md states: a mesh with such a URL builds no children at all."""
    try:
        objs = children(_external(url))
    except InvalidSpec:
        return
    for obj in objs:
        if obj["kind"] == "ConfigMap":
            assert "s3cr3t" not in json.dumps(obj.get("data") or {}), obj["metadata"]["name"]


def test_no_configmap_holds_nats_credentials() -> None:
    for obj in children(EXTERNAL):
        if obj["kind"] == "ConfigMap":
            data = obj.get("data") or {}
            assert not {"NATS_USER", "NATS_PASSWORD"} & set(data), obj["metadata"]["name"]
            assert "@" not in data.get("NATS_URL", ""), obj["metadata"]["name"]


def test_the_credentials_secret_is_referenced_so_its_absence_stalls_the_mesh() -> None:
    field = "spec.nats.external.credentialsSecretRef"
    assert referenced_secrets(make_mesh(EXTERNAL)) == [
        SecretRef(name="bus-creds", key="user", field_path=field),
        SecretRef(name="bus-creds", key="password", field_path=field),
    ]


def test_a_changed_credential_rolls_the_nats_clients() -> None:
    objs = children(EXTERNAL)

    def hashes(password: str) -> dict[str, str]:
        secrets = {"bus-creds": {"user": "c3VwcG9ydA==", "password": password}}
        return {
            o["metadata"]["name"]: o["spec"]["template"]["metadata"]["annotations"][SECRET_HASH_ANNOTATION]
            for o in with_secret_hashes(objs, secrets)
            if o["kind"] in {"Deployment", "StatefulSet"} and "NATS_USER" in env_of(o)
        }

    before, after = hashes("b2xk"), hashes("bmV3")
    assert before.keys() == after.keys()
    assert "demo-gateway" in before
    assert all(before[name] != after[name] for name in before)


# --- the generated CRD ----------------------------------------------------------------------------


def _external_schema() -> dict[str, Any]:
    node: dict[str, Any] = spec_schema()["properties"]["nats"]["properties"]["external"]
    return node


def _rule(field_path: str) -> dict[str, Any]:
    rules = _external_schema().get("x-kubernetes-validations", [])
    (rule,) = [r for r in rules if r.get("fieldPath") == field_path]
    return rule


def _url_rule() -> dict[str, Any]:
    return _rule(".url")


def _crd_refuses(url: str) -> bool:
    # The rule is `!self.url.matches('<RE2>')`; the expression uses nothing RE2 and Python read differently.
    match = re.fullmatch(r"!self\.url\.matches\('(.*)'\)", _url_rule()["rule"])
    assert match is not None
    return re.search(match.group(1), url) is not None


def test_the_crd_rule_names_the_field_and_the_way_out() -> None:
    rule = _url_rule()
    assert rule["message"].startswith("spec.nats.external.url must not contain a password or a token")
    assert "spec.nats.external.credentialsSecretRef" in rule["message"]
    assert "spec.nats.external.tokenSecretRef" in rule["message"]


def test_the_crd_refuses_a_user_and_a_token_together() -> None:
    rule = _rule(".tokenSecretRef")
    assert rule["rule"] == "!(has(self.credentialsSecretRef) && has(self.tokenSecretRef))"
    assert "not both" in rule["message"]
    assert _external_schema()["properties"]["tokenSecretRef"]["required"] == ["name", "key"]


@pytest.mark.parametrize("url", PASSWORD_URLS)
def test_the_crd_refuses_a_password_in_the_external_url(url: str) -> None:
    assert _crd_refuses(url)


@pytest.mark.parametrize("url", CLEAN_URLS)
def test_the_crd_accepts_a_url_without_password(url: str) -> None:
    assert not _crd_refuses(url)


def test_the_crd_has_credentials_secret_ref_with_defaulted_keys() -> None:
    ref = _external_schema()["properties"]["credentialsSecretRef"]
    assert ref["required"] == ["name"]
    assert ref["properties"]["userKey"]["default"] == "user"
    assert ref["properties"]["passwordKey"]["default"] == "password"

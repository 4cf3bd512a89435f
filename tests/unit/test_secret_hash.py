"""Secret rotation, pure part: which Secrets each workload reads, and a hash that moves with their values."""

from __future__ import annotations

from typing import Any

from actormesh_operator.builders import referenced_secrets
from actormesh_operator.builders.secret_hash import (
    SECRET_HASH_ANNOTATION,
    WHOLE,
    referenced_secret_names,
    template_secret_refs,
    with_secret_hashes,
)
from tests.unit.builder_helpers import children, make_mesh

NO_GENERATED: dict[str, Any] = {
    "gateway": {"anonymous": True},
    "nats": {"external": {"url": "nats://bus.infra:4222"}},
    "redis": {"enabled": False},
}
"""A mesh reading none of the Secrets the operator generates (gateway key, NATS and Redis passwords)."""
SPEC: dict[str, Any] = {
    **NO_GENERATED,
    "llm": {"model": "gpt-4o-mini", "apiKeySecretRef": {"name": "llm", "key": "api-key"}},
    "gateway": {
        "anonymous": True,
        "env": [{"name": "EXTRA", "valueFrom": {"secretKeyRef": {"name": "extra", "key": "token"}}}],
    },
}
SECRETS = {"llm": {"api-key": "a2V5LTE=", "other": "eA=="}, "extra": {"token": "dDA="}}
LLM_ACTORS = {"demo-intent-analyzer", "demo-response-generator"}


def _hashes(secrets: dict[str, dict[str, str]], spec: dict[str, Any] = SPEC) -> dict[str, str | None]:
    return {
        o["metadata"]["name"]: (o["spec"]["template"]["metadata"].get("annotations") or {}).get(
            SECRET_HASH_ANNOTATION
        )
        for o in with_secret_hashes(children(spec), secrets)
        if o["kind"] in {"Deployment", "StatefulSet"}
    }


def _changed(after: dict[str, dict[str, str]]) -> set[str]:
    before, now = _hashes(SECRETS), _hashes(after)
    return {name for name in before if before[name] != now[name]}


def test_only_workloads_reading_a_secret_carry_the_annotation() -> None:
    annotated = {name for name, digest in _hashes(SECRETS).items() if digest}
    assert annotated == LLM_ACTORS | {"demo-gateway"}


def test_a_rotated_value_changes_exactly_the_workloads_reading_it() -> None:
    assert _changed({**SECRETS, "llm": {**SECRETS["llm"], "api-key": "a2V5LTI="}}) == LLM_ACTORS
    assert _changed({**SECRETS, "extra": {"token": "dDE="}}) == {"demo-gateway"}


def test_another_key_of_the_same_secret_changes_nothing() -> None:
    assert _changed({**SECRETS, "llm": {**SECRETS["llm"], "other": "eQ=="}}) == set()


def test_a_secret_that_appears_changes_the_hash() -> None:
    assert _changed({"llm": SECRETS["llm"]}) == {"demo-gateway"}


def test_a_mesh_without_secrets_is_unchanged() -> None:
    plain = children(NO_GENERATED)
    assert with_secret_hashes(plain, {}) == plain


def test_envfrom_and_volumes_count_as_whole_secrets() -> None:
    template = {
        "spec": {
            "containers": [{"envFrom": [{"secretRef": {"name": "all"}}]}],
            "volumes": [{"name": "certs", "secret": {"secretName": "tls"}}],
        }
    }
    assert template_secret_refs(template) == {("all", WHOLE), ("tls", WHOLE)}


def test_the_operator_reads_every_secret_the_templates_reference() -> None:
    assert referenced_secret_names(children(SPEC)) == {"llm", "extra"}


def test_generated_secrets_are_read_and_hashed_too() -> None:
    """A rotated generated key (docs/security.md) rolls exactly the pods that read it."""
    assert referenced_secret_names(children({})) == {
        "demo-gateway-auth",
        "demo-nats-users",
        "demo-redis-auth",
    }
    generated = {
        "demo-gateway-auth": {"jwt-secret": "a2V5"},
        "demo-nats-users": {"gateway": "cA==", "history": "cQ=="},
        "demo-redis-auth": {"password": "cg=="},
    }
    before = {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]["annotations"][SECRET_HASH_ANNOTATION]
        for o in with_secret_hashes(children({}), generated)
        if o["kind"] == "Deployment" and o["metadata"]["name"] in {"demo-gateway", "demo-decision-router"}
    }
    rotated = {**generated, "demo-gateway-auth": {"jwt-secret": "a2V5Mg=="}}
    after = {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]["annotations"][SECRET_HASH_ANNOTATION]
        for o in with_secret_hashes(children({}), rotated)
        if o["kind"] == "Deployment" and o["metadata"]["name"] in before
    }
    assert after["demo-gateway"] != before["demo-gateway"]
    assert after["demo-decision-router"] == before["demo-decision-router"]


def test_env_secret_refs_are_checked_unless_optional() -> None:
    optional = {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "maybe", "key": "k", "optional": True}}}
    spec = {**SPEC, "actors": {"intentAnalyzer": {"env": [optional]}}}
    fields = {ref.field_path: ref.name for ref in referenced_secrets(make_mesh(spec))}
    assert fields["spec.gateway.env[0].valueFrom.secretKeyRef"] == "extra"
    assert "maybe" not in fields.values()
    assert "maybe" in referenced_secret_names(children(spec))  # still hashed: its appearance rolls the pod

"""Values Kubernetes would refuse later (a child apply, a builder) are refused up front, by the model and
by the generated CRD alike; tests/integration/test_crd_validation.py runs the same cases on a real API
server."""

from __future__ import annotations

import ipaddress
import random
import re
from typing import Any

import pytest

from actormesh_operator.api import schema
from actormesh_operator.api.addresses import CIDR, IPV6
from actormesh_operator.api.cel import ROOT_RULES
from actormesh_operator.api.spec import ActorMesh, ActorMeshSpec, InvalidSpec
from actormesh_operator.builders import build_children
from actormesh_operator.settings import OperatorSettings
from tests.unit.test_crd_defaults import apply_defaults, spec_schema


def _mesh(spec: dict[str, Any], name: str = "demo") -> ActorMesh:
    return ActorMesh.from_body(
        {"metadata": {"name": name, "namespace": "ns"}, "spec": {"image": "i", **spec}}
    )


def _at(tree: dict[str, Any], path: str) -> Any:
    node: Any = tree
    for part in path.split("."):
        node = node[part]
    return node


# --- storage: a section's own size default survives setting only the class ----------------------------

SECTION_SIZES = [
    pytest.param("nats", "10Gi", id="nats"),
    pytest.param("redis", "1Gi", id="redis"),
    pytest.param("history", "1Gi", id="history"),
    pytest.param("history.backup", "5Gi", id="history-backup"),
]


def _with_class(section: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"storage": {"storageClassName": "fast-ssd"}}
    for part in reversed(section.split(".")):
        spec = {part: spec}
    return spec


@pytest.mark.parametrize(("section", "size"), SECTION_SIZES)
def test_storage_class_alone_keeps_the_sections_size_in_the_model(section: str, size: str) -> None:
    spec = ActorMeshSpec.model_validate({"image": "i", **_with_class(section)})
    storage = _at(spec.model_dump(by_alias=True), f"{section}.storage")
    assert storage == {"size": size, "storageClassName": "fast-ssd"}


@pytest.mark.parametrize(("section", "size"), SECTION_SIZES)
def test_storage_class_alone_keeps_the_sections_size_in_the_crd(section: str, size: str) -> None:
    properties = ".properties.".join(f"{section}.storage.size".split("."))
    assert _at(spec_schema(), f"properties.{properties}")["default"] == size
    stored = apply_defaults({"image": "i", **_with_class(section)}, spec_schema())
    assert _at(stored, f"{section}.storage.size") == size


# --- values a child object or a builder would refuse ------------------------------------------------

REFUSED = [
    pytest.param(
        {"imagePullSecrets": [{"name": "reg"}, {"name": "reg"}]}, "spec.imagePullSecrets", id="dup-pull"
    ),
    *(
        pytest.param(spec, field, id=f"{field.removeprefix('spec.')}={bad}")
        for field, spec, bad in [
            ("spec.nats.external.url", {"nats": {"external": {"url": "nats://n:99999"}}}, "99999"),
            ("spec.nats.external.url", {"nats": {"external": {"url": "nats://a:4222,nats://b:x"}}}, "x"),
            ("spec.nats.external.url", {"nats": {"external": {"url": "nats://u:pw@n:4222"}}}, "password"),
            ("spec.redis.external.url", {"redis": {"external": {"url": "redis://r:6379x/0"}}}, "6379x"),
            ("spec.commerceApis.ordersUrl", {"commerceApis": {"ordersUrl": "https://o:80800/v1"}}, "80800"),
            ("spec.commerceApis.customerUrl", {"commerceApis": {"customerUrl": "http://c:-1"}}, "-1"),
            ("spec.llm.apiBase", {"llm": {"model": "m", "apiBase": "https://l:443000/v1"}}, "443000"),
            (
                "spec.monitoring.tracing.endpoint",
                {"monitoring": {"tracing": {"endpoint": "http://o:431800"}}},
                "431800",
            ),
            ("spec.nats.jetstream.maxMemory", {"nats": {"jetstream": {"maxMemory": "1e999999"}}}, "1e999999"),
        ]
    ),
    pytest.param(
        {"networkPolicy": {"egressExcept": ["300.0.0.0/8"]}}, "spec.networkPolicy.egressExcept", id="octet"
    ),
    pytest.param(
        {"networkPolicy": {"egressExcept": ["10.0.0.0/33"]}},
        "spec.networkPolicy.egressExcept",
        id="v4-prefix",
    ),
    pytest.param(
        {"networkPolicy": {"egressExcept": ["1:2/8"]}}, "spec.networkPolicy.egressExcept", id="v6-short"
    ),
    pytest.param(
        {"networkPolicy": {"egressExcept": ["0.0.0.0/0"]}}, "spec.networkPolicy.egressExcept", id="all-v4"
    ),
    pytest.param(
        {"networkPolicy": {"egressExcept": ["::/0"]}}, "spec.networkPolicy.egressExcept", id="all-v6"
    ),
    pytest.param({"extraLabels": {"a" * 64: "x"}}, "spec.extraLabels", id="label-name-64"),
    pytest.param(
        {"extraAnnotations": {"e.com/" + "a" * 64: "x"}}, "spec.extraAnnotations", id="annotation-name-64"
    ),
    pytest.param({"extraLabels": {"a." * 127 + "ab/x": "x"}}, "spec.extraLabels", id="label-prefix-254"),
    pytest.param({"history": {"storage": {"size": 0}}}, "spec.history.storage.size", id="size-0"),
    pytest.param({"history": {"storage": {"size": "0.0Gi"}}}, "spec.history.storage.size", id="size-0.0Gi"),
    pytest.param({"redis": {"storage": {"size": "-5Gi"}}}, "spec.redis.storage.size", id="size-negative"),
    pytest.param({"nats": {"storage": {"size": -1}}}, "spec.nats.storage.size", id="size-negative-int"),
    pytest.param(
        {"history": {"backup": {"storage": {"size": "0"}}}},
        "spec.history.backup.storage.size",
        id="backup-size-0",
    ),
    pytest.param(
        {"history": {"storage": {"storageClassName": "Fast_SSD"}}},
        "spec.history.storage.storageClassName",
        id="class-not-a-subdomain",
    ),
]


@pytest.mark.parametrize(("spec", "field"), REFUSED)
def test_the_model_refuses_naming_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        _mesh(spec)
    assert any(p.startswith(field) for p in info.value.problems), info.value.problems


ACCEPTED = [
    pytest.param(
        {"nats": {"external": {"url": "nats://a:4222,tls://b.example.com:65535,ws://c"}}}, id="nats"
    ),
    pytest.param({"nats": {"external": {"url": "nats://[fd00::1]:4222"}}}, id="nats-ipv6"),
    pytest.param(
        {"nats": {"external": {"url": "nats://n:4222", "credentialsSecretRef": {"name": "creds"}}}},
        id="nats-credentials",
    ),
    pytest.param(
        {"redis": {"external": {"url": "rediss://redis.infra:6379/0?ssl_cert_reqs=none"}}}, id="redis"
    ),
    pytest.param(
        {"commerceApis": {"ordersUrl": "https://o.example.com/v1", "customerUrl": "http://c:0/"}}, id="http"
    ),
    pytest.param({"llm": {"model": "m", "apiBase": "http://ollama:11434"}}, id="llm"),
    pytest.param(
        {"llm": {"model": "m", "apiBase": "http://[::ffff:10.0.0.1]:8080/v1"}}, id="llm-mapped-ipv6"
    ),
    pytest.param({"monitoring": {"tracing": {"endpoint": "http://otel.obs:4318/v1"}}}, id="otlp"),
    pytest.param({"nats": {"jetstream": {"maxMemory": "1e9"}}}, id="exponent"),
    pytest.param(
        {"networkPolicy": {"egressExcept": ["10.1.2.3/8", "FC00::/7", "1:2:3:4:5:6:7::/128"]}}, id="cidrs"
    ),
    pytest.param({"extraLabels": {"a" * 63: "x", "b." * 125 + "cd/" + "e" * 63: "x"}}, id="label-bounds"),
    pytest.param({"history": {"storage": {"size": "0.5Gi", "storageClassName": "fast.ssd-1"}}}, id="storage"),
]


@pytest.mark.parametrize("spec", ACCEPTED)
def test_the_model_accepts_valid_neighbours_and_the_builders_take_them(spec: dict[str, Any]) -> None:
    build_children(_mesh(spec), OperatorSettings(), keda_available=False)


def test_egress_except_is_masked_as_kubernetes_reads_it() -> None:
    spec = _mesh({"networkPolicy": {"egressExcept": ["10.1.2.3/8", "FC00:0::/7"]}}).spec
    assert spec.network_policy.egress_except == ["10.0.0.0/8", "fc00::/7"]


def test_image_pull_secrets_are_a_map_list_keyed_by_name() -> None:
    node = spec_schema()["properties"]["imagePullSecrets"]
    assert node["x-kubernetes-list-type"] == "map"
    assert node["x-kubernetes-list-map-keys"] == ["name"]


# --- mesh names: every child Service is `<mesh>-...`, a DNS-1035 label --------------------------------


@pytest.mark.parametrize("name", ["1shop", "shop.v2", "-shop", "Shop"])
def test_the_model_refuses_a_mesh_name_no_service_can_start_with(name: str) -> None:
    with pytest.raises(InvalidSpec, match=r"^metadata\.name: "):
        _mesh({}, name=name)


def test_the_crd_checks_the_mesh_name_on_create_only() -> None:
    """Names are immutable, so checking them on create is complete; skipping updates lets an object stored
    before the rule still lose its finalizer."""
    root = schema.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    (rule,) = [r for r in root["x-kubernetes-validations"] if "matches" in r["rule"]]
    assert rule["optionalOldSelf"] is True
    assert rule["rule"].startswith("oldSelf.hasValue() || ")
    assert "metadata.name" in rule["message"]
    assert len(ROOT_RULES) == len(root["x-kubernetes-validations"])


# --- the address patterns read addresses as Python's ipaddress does (the builders parse them with it) ---


def _candidates(seed: int, count: int) -> list[str]:
    """Near-misses and valid spellings alike: hextets, dotted quads and colons in random runs."""
    rng = random.Random(seed)
    parts = ["", "0", "ffff", "12345", "a", "1.2.3.4", "256.1.1.1", "01.2.3.4"]
    out = ["".join(rng.choice("0aF1:::.") for _ in range(rng.randint(1, 30))) for _ in range(count)]
    out += [":".join(rng.choice(parts) for _ in range(rng.randint(1, 10))) for _ in range(count)]
    return out


def test_the_ipv6_pattern_is_pythons_ipv6() -> None:
    pattern = re.compile(f"^{IPV6}$")
    for text in _candidates(seed=3, count=10_000):
        try:
            ipaddress.IPv6Address(text)
            valid = True
        except ValueError:
            valid = False
        assert bool(pattern.match(text)) == valid, text


@pytest.mark.parametrize("prefix", ["0", "8", "32", "33", "64", "128", "129", ""])
def test_the_cidr_pattern_is_pythons_network(prefix: str) -> None:
    pattern = re.compile(CIDR)
    for address in ["1.2.3.4", "10.0.0.0", "256.0.0.0", "01.0.0.0", "::", "fc00::", "::ffff:1.2.3.4", "1:2"]:
        text = f"{address}/{prefix}"
        try:
            ipaddress.ip_network(text, strict=False)
            valid = True
        except ValueError:
            valid = False
        assert bool(pattern.match(text)) == valid, text

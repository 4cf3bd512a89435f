"""The CRD in crds/ is exactly what the models generate, and it is structural Kubernetes schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from actormesh_operator.api import schema
from actormesh_operator.api.cel import ROOT_RULES, SPEC_RULES
from actormesh_runtime.catalog import ACTORS

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "actormesh.io_actormeshes.yaml"


def test_crds_dir_matches_the_model() -> None:
    assert CRD_FILE.read_text() == schema.render(), "crds/ drifted from the pydantic models: run `make crds`"


def test_render_is_deterministic() -> None:
    assert schema.render() == schema.render()


def _crd_version() -> dict[str, Any]:
    versions: list[dict[str, Any]] = schema.crd()["spec"]["versions"]
    assert len(versions) == 1
    return versions[0]


def _root() -> dict[str, Any]:
    root: dict[str, Any] = _crd_version()["schema"]["openAPIV3Schema"]
    return root


def _walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}[*]")
    if "items" in node:
        yield from _walk(node["items"], f"{path}[]")


def test_names_and_subresources() -> None:
    spec = schema.crd()["spec"]
    assert (spec["group"], spec["names"]["kind"], spec["names"]["plural"]) == (
        "actormesh.io",
        "ActorMesh",
        "actormeshes",
    )
    assert spec["names"]["shortNames"] == ["am"]
    assert spec["scope"] == "Namespaced"
    version = _crd_version()
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Ready", "Phase", "Actors", "Gateway", "Age"]


@pytest.mark.parametrize(
    "path",
    [
        ".spec.image",
        ".spec.llm.model",
        ".spec.gateway.replicas",
        ".spec.actors.defaults",
        ".spec.nats.replicas",
        ".spec.nats.external.url",
        ".spec.nats.external.credentialsSecretRef.passwordKey",
        ".spec.redis.enabled",
        ".spec.redis.external.url",
        ".spec.mockServices.enabled",
        ".spec.networkPolicy.enabled",
        ".spec.podDisruptionBudget.enabled",
        ".spec.persistence.reclaimPolicy",
        ".spec.actors.defaults.autoscaling.targetCPUUtilizationPercentage",
        ".spec.gateway.ingress.tlsSecretName",
        ".spec.llm.apiKeySecretRef.key",
        ".spec.redis.external.passwordSecretRef.name",
        ".spec.redis.passwordSecretRef.key",
        ".spec.nats.jetstream.maxFileStore",
        ".status.observedGeneration",
        ".status.conditions[].lastTransitionTime",
        ".status.actorsReady",
        ".status.gatewayEndpoint",
        *(f".spec.actors.{a.spec_key}.autoscaling.mode" for a in ACTORS),
        *(f".status.components.actors.{a.spec_key}.ready" for a in ACTORS),
    ],
)
def test_documented_field_names_exist(path: str) -> None:
    assert path in dict(_walk(_root()))


def test_schema_is_structural() -> None:
    for path, node in _walk(_root()):
        assert not {"$ref", "title", "oneOf", "propertyNames"} & set(node), path
        # Defaults show the effective spec (test_crd_defaults.py); status is only what we write.
        assert "default" not in node or path.startswith(".spec."), path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            continue
        assert "anyOf" not in node, path
        assert "type" in node, f"{path} has no type"
        if node["type"] == "object":
            shapes = [
                k
                for k in ("properties", "additionalProperties", "x-kubernetes-preserve-unknown-fields")
                if k in node
            ]
            assert len(shapes) == 1 or path == ".metadata", f"{path}: {shapes}"


def test_no_field_keeps_unknown_fields() -> None:
    """Not even the affinity: a misspelt field in it is refused, not copied onto the pods and dropped
    there without a word (the operator applies with fieldValidation=Ignore)."""
    kept = [p for p, n in _walk(_root()) if n.get("x-kubernetes-preserve-unknown-fields")]
    assert kept == []


def test_affinity_is_typed_down_to_its_enumerations() -> None:
    nodes = dict(_walk(_root()))
    affinity = ".spec.scheduling.affinity"
    term = f"{affinity}.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[]"
    assert nodes[f"{term}.matchExpressions[].operator"]["enum"] == [
        "In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"
    ]  # fmt: skip
    pod_term = f"{affinity}.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[]"
    assert nodes[f"{pod_term}.podAffinityTerm"]["required"] == ["topologyKey"]
    assert nodes[f"{pod_term}.weight"]["minimum"] == 1


def test_quantities_are_int_or_string_with_a_pattern() -> None:
    nodes = dict(_walk(_root()))
    for path in (".spec.nats.storage.size", ".spec.actors.defaults.resources.requests[*]"):
        assert nodes[path]["x-kubernetes-int-or-string"] is True
        assert "pattern" in nodes[path]


def test_conditions_are_a_map_list_keyed_by_type() -> None:
    conditions = _root()["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) >= {"type", "status", "reason", "lastTransitionTime"}


def test_every_cel_rule_is_attached_and_names_a_field() -> None:
    rules = [r for _, n in _walk(_root()) for r in n.get("x-kubernetes-validations", [])]
    # A `CheckedString`'s rule sits on the string itself, whose path the API server puts in front of the
    # message ("spec.nats.external.url: Invalid value: ...: must be ..."); every other rule names its field.
    on_the_field = [
        r for r in rules if r["rule"].startswith("self.matches(") and r["message"].startswith("must be")
    ]
    assert len(on_the_field) == 8  # 7 URLs and the egressExcept ranges
    assert len(rules) == len(SPEC_RULES) + len(ROOT_RULES) + len(on_the_field)
    for rule in rules:
        if rule not in on_the_field:
            assert rule["message"].startswith(("spec.", "metadata.")), rule


def test_main_prints_the_crd(capsys: pytest.CaptureFixture[str]) -> None:
    schema.main()
    printed = capsys.readouterr().out
    assert yaml.safe_load(printed) == schema.crd()


def test_unions_are_refused() -> None:
    with pytest.raises(ValueError, match="not structural"):
        schema.structural({"anyOf": [{"type": "string"}, {"type": "integer"}]}, {})


def test_crd_validates_against_kubernetes_1_34() -> None:
    kubernetes_validate.validate(schema.crd(), "1.34.0", strict=True)

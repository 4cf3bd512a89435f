"""Defaults in the CRD: the stored object shows the effective spec, and the API server's defaulting agrees
with the model's (the defaulting is re-done here the way the API server does it, on the CRD's schema)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from actormesh_operator.api import schema
from actormesh_operator.api.spec import ActorMeshSpec

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "config" / "samples").glob("*.yaml"))
IMAGE = "actormesh/actormesh:0.1.0"


def spec_schema() -> dict[str, Any]:
    root = schema.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec: dict[str, Any] = root["properties"]["spec"]
    return spec


def apply_defaults(value: Any, node: dict[str, Any]) -> Any:
    """Structural defaulting as the API server does it: absent properties with a `default` get a copy of
    it, then defaulting continues inside every object and list item."""
    if isinstance(value, dict) and "properties" in node:
        out = dict(value)
        for name, sub in node["properties"].items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = apply_defaults(out[name], sub)
        return out
    if isinstance(value, list) and "items" in node:
        return [apply_defaults(v, node["items"]) for v in value]
    return value


def _drop(tree: dict[str, Any], *path: str) -> None:
    node = tree
    for part in path[:-1]:
        node = node.get(part, {})
    node.pop(path[-1], None)


def _prune_empty(value: Any) -> Any:
    if isinstance(value, dict):
        pruned = {k: _prune_empty(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ({}, [], None)}
    return value


def test_a_minimal_spec_stores_every_default_but_the_presence_sensitive_ones() -> None:
    stored = apply_defaults({"image": IMAGE}, spec_schema())
    effective = ActorMeshSpec(image=IMAGE).model_dump(by_alias=True, exclude_none=True, mode="json")
    # schema.NOT_DEFAULTED: presence means "managed NATS/Redis settings" or "actor resources chosen".
    _drop(effective, "nats")
    for field in ("storage", "resources"):
        _drop(effective, "redis", field)
    _drop(effective, "actors", "defaults", "resources")
    _drop(effective, "history", "backup", "storage")  # presence means "the operator's own backup PVC"
    for key in list(effective["actors"]):
        if key not in ("defaults", "directHops"):
            _drop(effective, "actors", key)  # per-actor overrides and groups: unset means "inherit"
    assert _prune_empty(stored) == _prune_empty(effective)


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_the_api_servers_defaults_mean_what_the_model_means(sample: Path) -> None:
    spec = yaml.safe_load(sample.read_text())["spec"]
    assert ActorMeshSpec.model_validate(apply_defaults(spec, spec_schema())) == ActorMeshSpec.model_validate(
        spec
    )


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"nats": {"external": {"url": "nats://n:4222"}}}, id="external-nats"),
        pytest.param({"redis": {"external": {"url": "redis://r:6379"}}}, id="external-redis"),
        pytest.param({"llm": {"model": "m"}}, id="llm"),
        pytest.param({"actors": {"defaults": {"replicas": 2}}}, id="llm-actors-keep-their-memory"),
    ],
)
def test_defaulting_never_changes_what_a_spec_means(spec: dict[str, Any]) -> None:
    full = {"image": IMAGE, **spec}
    assert ActorMeshSpec.model_validate(apply_defaults(full, spec_schema())) == ActorMeshSpec.model_validate(
        full
    )


def test_absent_optional_sections_stay_absent() -> None:
    stored = apply_defaults({"image": IMAGE}, spec_schema())
    assert "llm" not in stored  # no LLM means rules only, not an LLM with defaults
    assert "nats" not in stored

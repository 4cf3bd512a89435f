"""Every manifest rendered from every sample (and a few extra specs) validates against the Kubernetes 1.34
OpenAPI schemas (kubernetes-validate, strict: unknown fields are errors).

kubernetes-validate 1.37 ships schemas for 1.34.0 through 1.37.0; 1.34.0 is the target release, so it is
pinned here rather than the package's latest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import build_children
from tests.unit.builder_helpers import RICH_SPEC, SETTINGS, make_mesh

K8S_VERSION = "1.34.0"
SAMPLES = sorted((Path(__file__).parents[2] / "config" / "samples").glob("*.yaml"))
CRD_KINDS = {"ScaledObject"}
"""Kinds defined by CRDs (KEDA), which kubernetes-validate has no schema for; skipped by kind."""

EXTRA_SPECS: dict[str, dict[str, Any]] = {
    "rich": RICH_SPEC,
    "nothing-optional": {
        "redis": {"enabled": False},
        "mockServices": {"enabled": False},
        "networkPolicy": {"enabled": False},
        "podDisruptionBudget": {"enabled": False},
        "actors": {"defaults": {"enabled": False}},
    },
    "loadbalancer-and-affinity": {
        "gateway": {"service": {"type": "LoadBalancer", "port": 443}},
        "scheduling": {
            "affinity": {
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 50,
                            "podAffinityTerm": {
                                "topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "demo"}},
                            },
                        }
                    ]
                }
            },
            "priorityClassName": "support-high",
        },
    },
}


def _meshes() -> list[Any]:
    params = []
    for path in SAMPLES:
        body = yaml.safe_load(path.read_text())
        params.append(pytest.param(ActorMesh.from_body(body), id=f"sample-{path.stem}"))
    params += [pytest.param(make_mesh(spec), id=name) for name, spec in EXTRA_SPECS.items()]
    return params


def test_target_version_is_supported_and_samples_exist() -> None:
    assert K8S_VERSION in all_versions()
    assert len(SAMPLES) >= 3, "config/samples/ must hold the minimal, production and external samples"


@pytest.mark.parametrize("keda", [False, True], ids=["no-keda", "keda"])
@pytest.mark.parametrize("mesh", _meshes())
def test_every_manifest_validates(mesh: ActorMesh, keda: bool) -> None:
    objs = build_children(mesh, SETTINGS, keda_available=keda)
    checked = 0
    for obj in objs:
        if obj["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")
        checked += 1
    assert checked >= 10


def test_validation_is_not_vacuous() -> None:
    obj = build_children(make_mesh({}), SETTINGS, keda_available=False)[-1]
    broken = {**obj, "spec": {**obj["spec"], "replicaz": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)

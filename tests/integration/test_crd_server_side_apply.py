"""Server-side apply of every sample on a real API server, as Argo CD does it: the stored spec carries the
CRD's defaults (the effective spec), and applying the same YAML again changes nothing — no diff, no new
generation, no write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.k8s import KubeControlPlane
from tests.unit.test_crd_defaults import apply_defaults, spec_schema

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "config" / "samples").glob("*.yaml"))


def _ssa(kube: KubeControlPlane, namespace: str, sample: Path) -> None:
    kube.kubectl(
        "apply", "--server-side", "--field-manager=argocd-controller", "-n", namespace, "-f", str(sample)
    )


def _stored(kube: KubeControlPlane, namespace: str, name: str) -> dict[str, Any]:
    out = kube.kubectl("get", "actormesh", name, "-n", namespace, "-o", "json").stdout
    return dict(json.loads(out))


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_applying_a_sample_twice_changes_nothing_and_stores_the_defaults(
    actormesh_crd: KubeControlPlane, kube_namespace: str, sample: Path
) -> None:
    kube, ns = actormesh_crd, kube_namespace
    body = yaml.safe_load(sample.read_text())
    name = body["metadata"]["name"]
    _ssa(kube, ns, sample)
    first = _stored(kube, ns, name)
    assert first["spec"] == apply_defaults(body["spec"], spec_schema())
    assert first["spec"]["gateway"]["replicas"] == body["spec"].get("gateway", {}).get("replicas", 1)

    _ssa(kube, ns, sample)
    second = _stored(kube, ns, name)
    assert second["metadata"]["generation"] == first["metadata"]["generation"] == 1
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    diff = kube.kubectl(
        "diff", "--server-side", "--field-manager=argocd-controller", "-n", ns, "-f", str(sample), check=False
    )
    assert diff.returncode == 0, diff.stdout + diff.stderr

"""The builders' manifests on a real kube-apiserver (v1.34): every sample's children are accepted by
server-side apply, and the spec changes users make later re-apply cleanly — StatefulSet claim
templates, selectors and service names are immutable, and a builder that let a spec change reach them
would break every later reconcile. Owner references point at a real ActorMesh, so the garbage
collector keeps the children.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import build_children
from actormesh_operator.settings import OperatorSettings
from tests.support.k8s import KubeControlPlane

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "config" / "samples").glob("*.yaml"))
SETTINGS = OperatorSettings()
CRD_KINDS = {"ScaledObject"}  # KEDA is not installed on the test control plane
IMAGE = "ghcr.io/example/actormesh:0.1.0"


@pytest.fixture
def kube(actormesh_crd: KubeControlPlane) -> KubeControlPlane:
    return actormesh_crd


def _create_mesh(kube: KubeControlPlane, namespace: str, body: dict[str, Any]) -> ActorMesh:
    """Create the ActorMesh so owner references resolve; returns the model with the real uid."""
    out = kube.kubectl("create", "-n", namespace, "-o", "json", "-f", "-", input=json.dumps(body)).stdout
    return ActorMesh.from_body(json.loads(out))


def _apply_children(kube: KubeControlPlane, mesh: ActorMesh) -> list[dict[str, Any]]:
    objs = [o for o in build_children(mesh, SETTINGS, keda_available=False) if o["kind"] not in CRD_KINDS]
    kube.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        f"--field-manager={SETTINGS.field_manager}",
        "--validate=strict",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}),
    )
    return objs


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_every_samples_children_are_accepted(
    kube: KubeControlPlane, kube_namespace: str, sample: Path
) -> None:
    body = yaml.safe_load(sample.read_text())
    body["metadata"]["namespace"] = kube_namespace
    mesh = _create_mesh(kube, kube_namespace, body)
    objs = _apply_children(kube, mesh)
    listed = json.loads(
        kube.kubectl(
            "get",
            "configmaps,services,serviceaccounts,persistentvolumeclaims,statefulsets,deployments,networkpolicies,"
            "ingresses,hpa,pdb",
            "-n",
            kube_namespace,
            "-l",
            f"app.kubernetes.io/instance={mesh.name},app.kubernetes.io/managed-by=actormesh-operator",
            "-o",
            "json",
        ).stdout
    )["items"]
    assert {(o["kind"], o["metadata"]["name"]) for o in listed} == {
        (o["kind"], o["metadata"]["name"]) for o in objs
    }
    retained = mesh.spec.persistence.reclaim_policy == "Retain"
    for obj in listed:
        if obj["kind"] == "PersistentVolumeClaim" and retained:  # the backups' claim outlives the mesh
            assert "ownerReferences" not in obj["metadata"]
            continue
        [owner] = obj["metadata"]["ownerReferences"]
        assert owner["uid"] == mesh.uid


# Spec changes a user makes to a running mesh; each must re-apply over the children of the base spec.
CHANGES: dict[str, dict[str, Any]] = {
    "extra-labels-and-annotations": {"extraLabels": {"team": "cx"}, "extraAnnotations": {"a": "b"}},
    "image-bump": {"image": "ghcr.io/example/actormesh:0.2.0", "nats": {"image": "nats:2.12.1-alpine"}},
    "nats-1-to-3": {"nats": {"replicas": 3}},
    "reclaim-delete": {"persistence": {"reclaimPolicy": "Delete"}},
    "autoscale-everything": {
        "gateway": {"autoscaling": {"enabled": True}},
        "actors": {"defaults": {"autoscaling": {"enabled": True, "maxReplicas": 4}}},
    },
    "llm-and-ingress": {
        "llm": {"model": "gpt-4o-mini", "apiKeySecretRef": {"name": "llm", "key": "k"}},
        "gateway": {"ingress": {"enabled": True, "host": "chat.example.com", "tlsSecretName": "chat-tls"}},
    },
    # A claim of its own, not a volumeClaimTemplate: those cannot be added to an existing StatefulSet.
    "history-backups-on": {"history": {"backup": {"enabled": True, "interval": "1h"}}},
    "history-backups-existing-claim": {"history": {"backup": {"enabled": True, "existingClaim": "shared"}}},
    "scheduling": {
        "scheduling": {
            "nodeSelector": {"pool": "a"},
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
        }
    },
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_spec_changes_reapply_over_existing_children(
    kube: KubeControlPlane, kube_namespace: str, change: str
) -> None:
    name = f"m-{uuid.uuid4().hex[:6]}"
    base = {
        "apiVersion": "actormesh.io/v1alpha1",
        "kind": "ActorMesh",
        "metadata": {"name": name, "namespace": kube_namespace},
        "spec": {"image": IMAGE},
    }
    mesh = _create_mesh(kube, kube_namespace, base)
    _apply_children(kube, mesh)
    changed = ActorMesh.from_body(
        {
            "metadata": {"name": name, "namespace": kube_namespace, "uid": mesh.uid},
            "spec": {"image": IMAGE, **CHANGES[change]},
        }
    )
    _apply_children(kube, changed)  # kubectl raises (naming the field) if the server rejects it

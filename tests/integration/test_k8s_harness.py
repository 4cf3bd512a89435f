"""The Go-built control plane behaves like a real cluster's: pinned version, CEL, GC, workload controllers."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
import yaml

from tests.harness.binaries import K8S_VERSION
from tests.harness.handle import KubeControlPlane
from tests.support.eventually import eventually

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]


def _json(plane: KubeControlPlane, *args: str) -> dict[str, object]:
    out = plane.kubectl(*args, "-o", "json").stdout
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def test_server_and_kubectl_report_the_pinned_version(kube_control_plane: KubeControlPlane) -> None:
    versions = _json(kube_control_plane, "version")
    assert versions["serverVersion"]["gitVersion"] == K8S_VERSION  # type: ignore[index]
    assert versions["clientVersion"]["gitVersion"] == K8S_VERSION  # type: ignore[index]
    binary = kube_control_plane.bin_dir / "kube-apiserver"
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"Kubernetes {K8S_VERSION}"


def _widget_crd(group: str, suffix: str) -> dict[str, object]:
    # CRDs are cluster-wide and the control plane is shared by the session: names carry a suffix.
    plural = f"widgets{suffix}"
    spec_schema = {
        "type": "object",
        "required": ["minReplicas", "maxReplicas"],
        "properties": {"minReplicas": {"type": "integer"}, "maxReplicas": {"type": "integer"}},
        "x-kubernetes-validations": [
            {
                "rule": "self.minReplicas <= self.maxReplicas",
                "message": "spec.minReplicas exceeds maxReplicas",
            }
        ],
    }
    version = {
        "name": "v1",
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": spec_schema}}},
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": f"widget{suffix}", "kind": f"Widget{suffix.upper()}"},
            "versions": [version],
        },
    }


def test_crd_cel_rule_rejects_a_bad_object(kube_control_plane: KubeControlPlane, kube_namespace: str) -> None:
    plane = kube_control_plane
    group, suffix = "harness.actormesh.test", uuid.uuid4().hex[:8]
    plural = f"widgets{suffix}"
    crd = _widget_crd(group, suffix)
    plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(crd))
    try:
        plane.kubectl("wait", "--for=condition=Established", f"crd/{plural}.{group}", "--timeout=60s")
        kind = crd["spec"]["names"]["kind"]  # type: ignore[index]

        def widget(name: str, low: int, high: int) -> str:
            return yaml.safe_dump(
                {
                    "apiVersion": f"{group}/v1",
                    "kind": kind,
                    "metadata": {"name": name, "namespace": kube_namespace},
                    "spec": {"minReplicas": low, "maxReplicas": high},
                }
            )

        plane.kubectl("apply", "-f", "-", input=widget("good", 1, 3))
        bad = plane.kubectl("apply", "-f", "-", input=widget("bad", 5, 2), check=False)
        assert bad.returncode != 0
        assert "spec.minReplicas exceeds maxReplicas" in bad.stderr
        names = plane.kubectl("get", plural, "-n", kube_namespace, "-o", "name").stdout.split()
        assert names == [f"widget{suffix}.{group}/good"]
    finally:
        plane.kubectl("delete", "crd", f"{plural}.{group}", "--wait=false", check=False)


def test_dependent_is_garbage_collected_after_its_owner(
    kube_control_plane: KubeControlPlane, kube_namespace: str
) -> None:
    plane, ns = kube_control_plane, kube_namespace
    plane.kubectl("create", "configmap", "owner", "-n", ns)
    uid = plane.kubectl("get", "configmap", "owner", "-n", ns, "-o", "jsonpath={.metadata.uid}").stdout
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "namespace": ns,
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}],
        },
    }
    plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(dependent))
    # Background propagation: the API server deletes only the owner; the dependent is the GC's job.
    plane.kubectl("delete", "configmap", "owner", "-n", ns, "--cascade=background")
    eventually(
        lambda: plane.kubectl("get", "configmap", "dependent", "-n", ns, check=False).returncode != 0,
        what="the garbage collector to delete configmap/dependent",
        timeout_s=60,
    )
    gone = plane.kubectl("get", "configmap", "dependent", "-n", ns, check=False)
    assert "NotFound" in gone.stderr


def test_deployment_gets_a_replicaset_with_pods(
    kube_control_plane: KubeControlPlane, kube_namespace: str
) -> None:
    plane, ns = kube_control_plane, kube_namespace
    # No kubelet runs, so the image is never pulled; the pods only need to be created.
    plane.kubectl("create", "deployment", "web", "-n", ns, "--image=registry.invalid/web:1", "--replicas=2")

    def replicasets() -> list[dict[str, object]]:
        items = _json(plane, "get", "replicasets", "-n", ns, "-l", "app=web")["items"]
        assert isinstance(items, list)
        return items

    eventually(replicasets, what="a ReplicaSet for deployment/web", timeout_s=60)
    (rs,) = replicasets()
    owners = rs["metadata"]["ownerReferences"]  # type: ignore[index]
    assert [(o["kind"], o["name"]) for o in owners] == [("Deployment", "web")]
    assert rs["spec"]["replicas"] == 2  # type: ignore[index]
    eventually(
        lambda: len(_json(plane, "get", "pods", "-n", ns, "-l", "app=web")["items"]) == 2,
        what="the ReplicaSet controller to create 2 pods",
        timeout_s=60,
    )


def test_owner_references_permission_enforcement_is_on(
    kube_control_plane: KubeControlPlane, kube_namespace: str
) -> None:
    """blockOwnerDeletion needs `update` on the owner's finalizers: without it the write is refused."""
    plane, ns = kube_control_plane, kube_namespace
    plane.kubectl("create", "configmap", "owner", "-n", ns)
    uid = plane.kubectl("get", "configmap", "owner", "-n", ns, "-o", "jsonpath={.metadata.uid}").stdout
    plane.kubectl("create", "serviceaccount", "writer", "-n", ns)
    plane.kubectl("create", "role", "writer", "--verb=create", "--resource=configmaps", "-n", ns)
    plane.kubectl(
        "create", "rolebinding", "writer", "--role=writer", f"--serviceaccount={ns}:writer", "-n", ns
    )
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid, "blockOwnerDeletion": True}

    def create(name: str) -> subprocess.CompletedProcess[str]:
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "ownerReferences": [owner]},
        }
        as_writer = f"--as=system:serviceaccount:{ns}:writer"
        return plane.kubectl("create", "-n", ns, as_writer, "-f", "-", input=json.dumps(body), check=False)

    refused = create("refused")
    assert refused.returncode != 0
    assert "cannot set blockOwnerDeletion" in refused.stderr, refused.stderr
    plane.kubectl(
        "create", "role", "finalizers", "--verb=update", "--resource=configmaps/finalizers", "-n", ns
    )
    plane.kubectl(
        "create", "rolebinding", "finalizers", "--role=finalizers", f"--serviceaccount={ns}:writer", "-n", ns
    )
    eventually(
        lambda: create("allowed").returncode == 0, what="the finalizers permission is honoured", timeout_s=60
    )

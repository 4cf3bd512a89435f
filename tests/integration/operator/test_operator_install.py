"""`kubectl apply -k config/default` installs the operator on a real API server, and its pod passes the
"restricted" Pod Security Standard (the namespace enforces it; no kubelet, so the pod stays Pending)."""

from __future__ import annotations

import json
import re

import httpx
import pytest
import yaml

from actormesh_operator.reconcile import metrics
from tests.integration.operator.conftest import NAMESPACED_INSTALL, ROOT, OperatorFactory, token_credentials
from tests.integration.operator.kubeapi import apply, children, expected_children, minimal_mesh, reconciled
from tests.support.eventually import eventually
from tests.support.k8s import KubeControlPlane
from tests.support.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]

SYSTEM_NAMESPACE = "actormesh-system"


def test_default_install_applies_and_its_rbac_runs_the_operator_cluster_wide(
    operators: OperatorFactory, kube_namespace: str
) -> None:
    kube = operators.kube
    try:
        kube.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "config" / "default"))

        def pods() -> list[dict[str, object]]:
            out = kube.kubectl("get", "pods", "-n", SYSTEM_NAMESPACE, "-o", "json").stdout
            return list(json.loads(out)["items"])

        eventually(lambda: len(pods()) == 1, what="operator pod admitted", timeout_s=60)
        events = kube.kubectl("get", "events", "-n", SYSTEM_NAMESPACE, "-o", "json").stdout
        assert "violates PodSecurity" not in events
        role = json.loads(kube.kubectl("get", "clusterrole", "actormesh-operator", "-o", "json").stdout)
        assert role["rules"], "ClusterRole installed with its rules"

        # The installed ServiceAccount + ClusterRole are enough for a cluster-wide operator.
        token = kube.kubectl(
            "create", "token", "actormesh-operator", "-n", SYSTEM_NAMESPACE, "--duration=1h"
        ).stdout.strip()
        operators.start(creds=token_credentials(kube, token), namespace=None)
        apply(kube, kube_namespace, minimal_mesh("everywhere"))
        eventually(
            lambda: (
                (body := reconciled(kube, kube_namespace, "everywhere")) is not None
                and set(children(kube, kube_namespace, "everywhere")) == expected_children(body)
            ),
            what="reconciled by the cluster-wide operator",
            timeout_s=60,
        )
    finally:
        operators.stop_all()
        kube.kubectl("delete", "namespace", SYSTEM_NAMESPACE, "--wait=false", check=False)
        kube.kubectl("delete", "clusterrolebinding,clusterrole", "actormesh-operator", check=False)


def test_namespaced_install_passes_server_side_validation(crd: KubeControlPlane, kube_namespace: str) -> None:
    rendered = [d for d in yaml.safe_load_all(crd.kubectl("kustomize", str(NAMESPACED_INSTALL)).stdout) if d]
    assert {d["kind"] for d in rendered} == {"ServiceAccount", "Role", "RoleBinding", "Deployment", "Service"}
    for doc in rendered:
        doc["metadata"]["namespace"] = kube_namespace
        for subject in doc.get("subjects") or []:
            subject["namespace"] = kube_namespace
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": rendered})
    crd.kubectl("apply", "--dry-run=server", "-f", "-", input=body)
    deployment = next(d for d in rendered if d["kind"] == "Deployment")
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {
        "name": "ACTORMESH_OPERATOR_NAMESPACE",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
    } in env


def test_liveness_endpoint_answers(operators: OperatorFactory) -> None:
    port = free_port()
    operators.start(health_port=port)

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    eventually(healthy, what="kopf's /healthz answers 200", timeout_s=60)


def test_metrics_are_served(operators: OperatorFactory, kube_namespace: str) -> None:
    kube, ns = operators.kube, kube_namespace
    port = free_port()
    server = metrics.serve(port, "127.0.0.1")
    try:
        operators.start()
        apply(kube, ns, minimal_mesh("measured"))
        eventually(lambda: reconciled(kube, ns, "measured") is not None, what="reconciled", timeout_s=60)

        def scrape() -> str:
            return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text

        # Meshes by phase, from the watch on ActorMeshes (this mesh is Progressing: no kubelet).
        progressing = re.compile(r'^actormesh_operator_meshes\{phase="Progressing"\} ([1-9][0-9]*)\.0$', re.M)
        eventually(lambda: progressing.search(scrape()) is not None, what="phase gauge", timeout_s=60)
        text = scrape()
    finally:
        server.shutdown()
    for name in (
        'actormesh_operator_reconciles_total{result="success",trigger="create"}',
        "actormesh_operator_reconcile_duration_seconds_count",
        'actormesh_operator_child_writes_total{action="apply",kind="Deployment"}',
    ):
        assert name in text, name

"""Helpers for the mesh scenarios: install the operator as users do, apply a sample, talk to the gateway.

Used by tests/e2e/test_mesh*.py. Everything goes through kubectl and HTTP, as a user would.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.e2e.cluster import E2ECluster, pod_ready
from tests.support.eventually import eventually
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
OPERATOR_NAMESPACE = "actormesh-system"
OPERATOR_SELECTOR = "app.kubernetes.io/name=actormesh-operator"
JOHN = "john.doe@example.com"
ORDER_QUESTION = "Where is my order ORD-10002?"
ORDER_TRACKING = "TRK100000002"  # from the mock commerce data: proves the reply used real order data


def install_operator(cluster: E2ECluster) -> None:
    cluster.kubectl("apply", "-k", str(REPO / "config" / "e2e"), timeout=180)
    # As a user following the docs would: the sample is applied once the API serves the new kind.
    # (Polled: `kubectl wait` errors out on a CRD whose status has no conditions yet.)
    eventually(
        lambda: _crd_established(cluster), what="the ActorMesh CRD Established", timeout_s=60, interval_s=0.5
    )
    cluster.kubectl(
        "-n",
        OPERATOR_NAMESPACE,
        "rollout",
        "status",
        "deploy/actormesh-operator",
        "--timeout=240s",
        timeout=260,
    )


def _crd_established(cluster: E2ECluster) -> bool:
    crd = cluster.get("crd", "actormeshes.actormesh.io")
    conditions = crd.get("status", {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def operator_pod(cluster: E2ECluster) -> dict[str, Any]:
    pods = [
        p
        for p in cluster.pods(OPERATOR_NAMESPACE, OPERATOR_SELECTOR)
        if not p["metadata"].get("deletionTimestamp")
    ]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def apply_sample(cluster: E2ECluster, namespace: str, sample: str = "minimal.yaml", **spec: Any) -> str:
    doc = yaml.safe_load((REPO / "config" / "samples" / sample).read_text())
    doc["spec"].update(spec)
    cluster.apply(doc, namespace)
    return str(doc["metadata"]["name"])


def wait_mesh_ready(cluster: E2ECluster, namespace: str, name: str, timeout: float = 420) -> dict[str, Any]:
    result = cluster.kubectl(
        "wait", "-n", namespace, f"actormesh/{name}", "--for=condition=Ready", f"--timeout={int(timeout)}s",
        check=False, timeout=timeout + 30,
    )  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(f"mesh {name} not Ready: {result.stderr}\n{cluster.describe_failure(namespace)}")
    mesh: dict[str, Any] = cluster.get(f"actormesh/{name}", "-n", namespace)
    return mesh


def gateway_url(cluster: E2ECluster, namespace: str, mesh: str) -> str:
    svc = cluster.get("service", f"{mesh}-gateway", "-n", namespace)
    port = next(p["port"] for p in svc["spec"]["ports"] if p.get("name") == "http")
    return f"http://{svc['spec']['clusterIP']}:{port}"


def gateway_dns_url(cluster: E2ECluster, namespace: str, mesh: str) -> str:
    svc = cluster.get("service", f"{mesh}-gateway", "-n", namespace)
    port = next(p["port"] for p in svc["spec"]["ports"] if p.get("name") == "http")
    return f"http://{mesh}-gateway.{namespace}.svc.cluster.local:{port}"


def chat(
    base_url: str,
    message: str = ORDER_QUESTION,
    email: str = JOHN,
    session_id: str | None = None,
    timeout: float = 60,
) -> dict[str, Any]:
    body = {
        "message": message,
        "customer_email": email,
        "session_id": session_id or f"e2e-{uuid.uuid4().hex[:10]}",
    }
    response = httpx.post(f"{base_url}/api/chat", json=body, timeout=timeout)
    assert response.status_code == 200, f"{response.status_code}: {response.text}"
    result: dict[str, Any] = response.json()
    return result


def all_pods_ready(cluster: E2ECluster, namespace: str) -> list[str]:
    """Names of pods that are not Ready (empty when all are)."""
    return [p["metadata"]["name"] for p in cluster.pods(namespace) if not pod_ready(p)]


def probe_pod(name: str, image: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A pod with the runtime image's Python, used to open TCP connections from inside the cluster."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-c", "import time; time.sleep(3600)"],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
        },
    }


CONNECT = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()"


def can_connect(cluster: E2ECluster, namespace: str, pod: str, host: str, port: int) -> bool:
    result = cluster.exec(namespace, pod, "python", "-c", CONNECT, host, str(port), timeout=30)
    return result.returncode == 0


def wait_for_mesh_condition(
    cluster: E2ECluster, namespace: str, name: str, predicate: Any, what: str, timeout: float = 300
) -> None:
    eventually(
        lambda: predicate(cluster.get(f"actormesh/{name}", "-n", namespace)),
        what=what,
        timeout_s=timeout,
        interval_s=2,
    )


def dumps(doc: Any) -> str:
    return json.dumps(doc, indent=1)[:4000]


@contextlib.contextmanager
def port_forward(
    cluster: E2ECluster, namespace: str, pod: str, port: int, ready_path: str = "/healthz"
) -> Iterator[str]:
    """`kubectl port-forward` to a pod (enters its netns: no NetworkPolicy applies); yields the URL."""
    local = free_port()
    argv = [
        str(cluster.kube.kubectl_path), f"--kubeconfig={cluster.kube.kubeconfig}", "port-forward",
        "-n", namespace, f"pod/{pod}", f"{local}:{port}", "--address=127.0.0.1",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{local}"
        eventually(
            lambda: get_ok(f"{url}{ready_path}"), what=f"port-forward to {pod}", timeout_s=30, interval_s=0.5
        )
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def get_ok(url: str) -> bool:
    """Whether `url` answers 200 now (any HTTP or connection error: no)."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False

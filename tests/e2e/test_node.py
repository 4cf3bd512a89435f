"""The node itself, with the busybox test-pod image only: pods pass probes, Services, DNS, policies.

These pin what the mesh scenarios rely on, so a broken node fails here with a small, clear message
rather than as a mesh that never becomes Ready.
"""

from __future__ import annotations

import os
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing_component
from tests.e2e.cluster import E2ECluster
from tests.e2e.conftest import TEST_POD_IMAGE
from tests.support.eventually import eventually

pytestmark = pytest.mark.e2e

CHECK_SEALED = Path(os.environ.get("CHECK_SEALED", "/work/shared/tools/check-sealed"))
_RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "runAsGroup": 65534,
    "seccompProfile": {"type": "RuntimeDefault"},
}
_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def web_deployment(replicas: int = 2) -> list[dict[str, Any]]:
    labels = {"app": "web"}
    serve = "echo hello-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "securityContext": _RESTRICTED,
                        "containers": [
                            {
                                "name": "httpd",
                                "image": TEST_POD_IMAGE,
                                "imagePullPolicy": "IfNotPresent",
                                "command": ["sh", "-c", serve],
                                "ports": [{"containerPort": 8080, "name": "http"}],
                                "readinessProbe": {
                                    "httpGet": {"path": "/index.html", "port": "http"},
                                    "periodSeconds": 1,
                                },
                                "securityContext": _CONTAINER_SECURITY,
                                "volumeMounts": [{"name": "www", "mountPath": "/www"}],
                            }
                        ],
                        "volumes": [{"name": "www", "emptyDir": {}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": "http"}]},
        },
    ]


def client_pod(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "securityContext": _RESTRICTED,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "client",
                    "image": TEST_POD_IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                    "securityContext": _CONTAINER_SECURITY,
                }
            ],
        },
    }


def fetch(cluster: E2ECluster, namespace: str, pod: str, url: str) -> str | None:
    """GET `url` from inside `pod`; None when it cannot connect within 3 s."""
    # busybox wget -T segfaults on exit (Debian 1.35): bound it with the timeout applet instead.
    result = cluster.exec(namespace, pod, "timeout", "3", "wget", "-q", "-O", "-", url, timeout=30)
    return result.stdout if result.returncode == 0 else None


@pytest.fixture
def web(cluster: E2ECluster, namespace: str) -> str:
    cluster.apply(web_deployment(), namespace)
    cluster.apply(client_pod("client", {"role": "client"}), namespace)
    cluster.apply(client_pod("stranger"), namespace)
    try:
        cluster.wait_pods_ready(namespace, timeout=120)
    except BaseException:
        print(cluster.describe_failure(namespace))
        raise
    return namespace


def test_pods_pass_probes_and_answer_through_a_service_by_dns_name(cluster: E2ECluster, web: str) -> None:
    name = f"web.{web}.svc.cluster.local"
    bodies: list[str] = []

    def answered() -> bool:
        body = fetch(cluster, web, "client", f"http://{name}/index.html")
        bodies.extend([body] if body else [])
        return bool(body)

    eventually(answered, what=f"http://{name}/ from a pod", timeout_s=60, interval_s=1.0)
    assert bodies[-1].startswith("hello-web-"), bodies


def test_the_host_reaches_a_cluster_ip(cluster: E2ECluster, web: str) -> None:
    if not cluster.sealed_node:
        pytest.skip("only the sealed node routes the Service range to the host")
    ip = cluster.get("service", "web", "-n", web)["spec"]["clusterIP"]
    bodies: list[str] = []

    def answered() -> bool:
        # kube-proxy programs the endpoints a moment after the pods turn Ready: poll, don't race.
        try:
            with urllib.request.urlopen(f"http://{ip}/index.html", timeout=5) as response:
                bodies.append(response.read().decode())
                return True
        except OSError:
            return False

    eventually(answered, what=f"http://{ip}/ from the host", timeout_s=30, interval_s=1.0)
    assert bodies[-1].startswith("hello-web-"), bodies


def test_network_policy_denies_then_allows_by_label(cluster: E2ECluster, web: str) -> None:
    url = f"http://web.{web}.svc.cluster.local/index.html"
    eventually(
        lambda: fetch(cluster, web, "stranger", url),
        what="web reachable before any policy",
        timeout_s=60,
        interval_s=1.0,
    )
    cluster.apply(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "web-only-from-clients"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "web"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}],
            },
        },
        web,
    )
    eventually(
        lambda: fetch(cluster, web, "stranger", url) is None,
        what="the unlabelled pod to be refused",
        timeout_s=60,
        interval_s=1.0,
    )
    assert fetch(cluster, web, "client", url) is not None
    cluster.kubectl("delete", "networkpolicy", "web-only-from-clients", "-n", web)
    eventually(
        lambda: fetch(cluster, web, "stranger", url),
        what="the unlabelled pod to be let in again",
        timeout_s=60,
        interval_s=1.0,
    )


def test_names_outside_the_cluster_do_not_resolve(cluster: E2ECluster, web: str) -> None:
    result = cluster.exec(web, "client", "nslookup", "example.com", timeout=30)
    # Busybox prints "Name:" only for an answer; CoreDNS has no upstream to ask.
    assert "Name:" not in result.stdout, result.stdout
    cluster_name = cluster.exec(web, "client", "nslookup", "kubernetes.default.svc.cluster.local", timeout=30)
    assert "Name:" in cluster_name.stdout, cluster_name.stdout + cluster_name.stderr


def test_check_sealed_passes(cluster: E2ECluster) -> None:
    if not cluster.sealed_node:
        pytest.skip("check-sealed describes this machine's own test node")
    if not CHECK_SEALED.exists():
        missing_component(f"{CHECK_SEALED}", "set CHECK_SEALED to the check-sealed script")
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kube.kubeconfig),
        "PATH": f"{cluster.kube.bin_dir}:{os.environ['PATH']}",
    }
    result = subprocess.run(
        [str(CHECK_SEALED)], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("sealed"), result.stdout

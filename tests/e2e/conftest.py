"""Fixtures for the e2e suite: the cluster (E2E_KUBECONFIG), fresh namespaces, test-pod images.

`make e2e` sets E2E_KUBECONFIG to the sealed node it brought up; any other cluster with the images
loaded works too (docs/e2e.md). Without one, e2e tests skip locally and fail in CI.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actormesh_operator.api.spec import DEFAULT_EGRESS_EXCEPT
from tests.conftest import missing_component
from tests.e2e import llm as e2e_llm
from tests.e2e import mesh as m
from tests.e2e.cluster import E2ECluster
from tests.harness.binaries import bin_dir_from_env
from tests.harness.cluster import layout
from tests.harness.handle import KubeControlPlane
from tests.support.eventually import eventually
from tests.support.llm_server import LLMTestServer

KUBECONFIG_ENV = "E2E_KUBECONFIG"
# The busybox test-pod image; on kind, load it from `python -m tests.harness.cluster images`.
TEST_POD_IMAGE = os.environ.get("E2E_TEST_POD_IMAGE", layout.BUSYBOX_IMAGE)


def _kubectl_dir() -> Path | None:
    pinned = bin_dir_from_env() / "kubectl"
    if os.access(pinned, os.X_OK):
        return pinned.parent
    found = shutil.which("kubectl")
    return Path(found).parent if found else None


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> E2ECluster:
    kubeconfig = os.environ.get(KUBECONFIG_ENV, "").strip()
    if not kubeconfig:
        missing_component(
            "a cluster for the e2e suite", f"run `make e2e`, or set {KUBECONFIG_ENV} (docs/e2e.md)"
        )
    bin_dir = _kubectl_dir()
    if bin_dir is None:
        missing_component("kubectl", "run `make k8s-bin` or put kubectl on PATH")
        raise AssertionError("unreachable")
    kube = KubeControlPlane(Path(kubeconfig), "", bin_dir, tmp_path_factory.mktemp("kubectl"))
    nodes = kube.kubectl("get", "nodes", "-o", "name").stdout.split()
    return E2ECluster(kube=kube, sealed_node=nodes == [f"node/{layout.NODE_NAME}"])


@pytest.fixture
def namespace(cluster: E2ECluster) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    eventually(
        lambda: cluster.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
        what=f"service account default in {name}",
        timeout_s=60,
        interval_s=1.0,
    )
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def operator(cluster: E2ECluster) -> dict[str, Any]:
    """The operator, installed as users install it (`kubectl apply -k config/e2e`); its pod."""
    m.install_operator(cluster)
    return m.operator_pod(cluster)


@pytest.fixture(scope="session")
def demo(cluster: E2ECluster, operator: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """config/samples/minimal.yaml in its own namespace, Ready: (namespace, the mesh as first Ready)."""
    namespace = f"e2e-demo-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        name = m.apply_sample(cluster, namespace)
        yield namespace, m.wait_mesh_ready(cluster, namespace, name)
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="session")
def llm(cluster: E2ECluster) -> Iterator[LLMTestServer]:
    """The OpenAI-compatible test server on the sealed node's address (pods reach it, nothing else)."""
    if not cluster.sealed_node:
        pytest.skip("serves the LLM from the sealed node's own address")
    server = LLMTestServer(host=layout.NODE_IP, reply_for=e2e_llm.reply_for)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def llm_demo(
    cluster: E2ECluster, operator: dict[str, Any], llm: LLMTestServer
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The minimal sample with `spec.llm` pointing at `llm`, whose egressExcept leaves only the LLM's
    address open: (namespace, the mesh as first Ready).

    Per module, and gone before the next module starts: beside the demo mesh it takes most of the
    sealed node's 2 CPUs in requests, and the clustered-NATS mesh (test_mesh_lifecycle.py) would not
    schedule."""
    namespace = f"e2e-llm-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        cluster.kubectl(
            "create", "secret", "generic", "test-llm", "-n", namespace, "--from-literal=api-key=test-key"
        )
        spec = {
            "model": e2e_llm.MODEL,
            "apiBase": llm.url,
            "apiKeySecretRef": {"name": "test-llm", "key": "api-key"},
            "timeoutSeconds": e2e_llm.TIMEOUT_S,
        }
        allowed = e2e_llm.egress_except_all_but(layout.NODE_IP, list(DEFAULT_EGRESS_EXCEPT))
        name = m.apply_sample(cluster, namespace, llm=spec, networkPolicy={"egressExcept": allowed})
        yield namespace, m.wait_mesh_ready(cluster, namespace, name)
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--timeout=240s", check=False, timeout=260)

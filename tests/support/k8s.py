"""Fixtures for tests against a real Kubernetes control plane (etcd, kube-apiserver, controller manager).

Re-exported by tests/integration/conftest.py.

- `kube_control_plane` (session): a `KubeControlPlane` with `.kubeconfig`, `.server`, `.bin_dir`,
  `.state_dir` and `.kubectl(*args, input=None, check=True)`. Admin credentials (system:masters).
- `kube_namespace` (function): a fresh, uniquely named namespace whose `default` service account
  exists; deleted after the test.

Every test using them must carry `pytest.mark.k8s` and `pytest.mark.xdist_group("k8s")`, so that under
`-n 2 --dist loadgroup` all of them share one worker and so one control plane (`kube_namespace`
enforces it). Without the binaries (`make k8s-bin`) the tests skip, or fail when CI=true.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import missing_component
from tests.harness.binaries import HOW_TO_BUILD, bin_dir_from_env, missing_binaries
from tests.harness.controlplane import ControlPlane
from tests.harness.handle import KubeControlPlane
from tests.support.eventually import eventually

__all__ = ["KubeControlPlane", "kube_control_plane", "kube_namespace"]


@pytest.fixture(scope="session")
def kube_control_plane() -> Iterator[KubeControlPlane]:
    bin_dir = bin_dir_from_env()
    missing = missing_binaries(bin_dir)
    if missing:
        missing_component(f"Kubernetes test binaries ({', '.join(missing)} in {bin_dir})", HOW_TO_BUILD)
    with ControlPlane(bin_dir) as plane:
        yield plane


def create_namespace(plane: KubeControlPlane, name: str) -> None:
    """Create namespace `name` and wait until pods can be admitted in it: only once the serviceaccount
    controller has made its `default`."""
    plane.kubectl("create", "namespace", name)
    eventually(
        lambda: plane.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
        what=f"service account default in {name}",
        timeout_s=60,
    )


@pytest.fixture
def kube_namespace(request: pytest.FixtureRequest, kube_control_plane: KubeControlPlane) -> Iterator[str]:
    for marker in ("k8s", "xdist_group"):
        if request.node.get_closest_marker(marker) is None:
            pytest.fail(
                f"{request.node.nodeid} uses kube_namespace: mark it pytest.mark.k8s and "
                f'pytest.mark.xdist_group("k8s") so all control-plane tests share one worker',
                pytrace=False,
            )
    name = f"test-{uuid.uuid4().hex[:12]}"
    create_namespace(kube_control_plane, name)
    try:
        yield name
    finally:
        # Not waiting: namespace deletion finishes in the background while the next test runs.
        kube_control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)

"""Fixture: the generated ActorMesh CRD installed (and Established) on the test control plane."""

from __future__ import annotations

from pathlib import Path

import pytest

from actormesh_operator.api.schema import CRD_NAME
from tests.support.eventually import eventually
from tests.support.k8s import KubeControlPlane

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "actormesh.io_actormeshes.yaml"
_ESTABLISHED = '{.status.conditions[?(@.type=="Established")].status}'


def install_actormesh_crd(kube: KubeControlPlane) -> None:
    """Apply crds/ server-side (idempotent) and wait until the API server serves it."""
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    eventually(
        lambda: (
            kube.kubectl("get", f"crd/{CRD_NAME}", "-o", f"jsonpath={_ESTABLISHED}", check=False).stdout
            == "True"
        ),
        what=f"CRD {CRD_NAME} established",
        timeout_s=60,
    )


@pytest.fixture(scope="session")
def actormesh_crd(kube_control_plane: KubeControlPlane) -> KubeControlPlane:
    install_actormesh_crd(kube_control_plane)
    return kube_control_plane

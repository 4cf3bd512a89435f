"""Command lines for etcd, kube-apiserver and kube-controller-manager: pure functions of a layout.

Called by tests/harness/controlplane.py; unit-tested without starting anything. Everything binds to
127.0.0.1 only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.harness.pki import FRONT_PROXY_CLIENT, Pki

LOOPBACK = "127.0.0.1"
SERVICE_CIDR = "198.19.255.0/24"
"""Inside 198.18.0.0/15 like every test address here; no kube-proxy, so nothing routes to it."""
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"

# The controllers an operator's integration tests lean on; without a kubelet nothing else is useful.
# serviceaccount* and root-ca publisher make new namespaces look like a real cluster's (default SA,
# kube-root-ca.crt); clusterrole-aggregation fills admin/edit/view; disruption fills PDB status.
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "horizontal-pod-autoscaler-controller",
    "disruption-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
)


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int


@dataclass(frozen=True)
class Layout:
    """Where one control plane keeps its files, and which ports it uses."""

    bin_dir: Path
    state_dir: Path
    ports: Ports
    pki: Pki

    @property
    def etcd_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.etcd_client}"

    @property
    def server(self) -> str:
        return f"https://{LOOPBACK}:{self.ports.apiserver}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.state_dir / "admin.kubeconfig"

    @property
    def controller_manager_kubeconfig(self) -> Path:
        return self.state_dir / "controller-manager.kubeconfig"


def etcd_argv(layout: Layout) -> list[str]:
    peer = f"http://{LOOPBACK}:{layout.ports.etcd_peer}"
    return [
        str(layout.bin_dir / "etcd"),
        "--name=test",
        f"--data-dir={layout.state_dir / 'etcd'}",
        f"--listen-client-urls={layout.etcd_url}",
        f"--advertise-client-urls={layout.etcd_url}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=test={peer}",
        # Test data is disposable: skipping fsync makes every API write several times faster.
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def apiserver_argv(layout: Layout, extra: Sequence[str] = ()) -> list[str]:
    """`extra` is appended as is (the operator bench adds audit logging)."""
    pki = layout.pki
    return [
        str(layout.bin_dir / "kube-apiserver"),
        f"--etcd-servers={layout.etcd_url}",
        f"--bind-address={LOOPBACK}",
        f"--advertise-address={LOOPBACK}",
        f"--secure-port={layout.ports.apiserver}",
        f"--cert-dir={layout.state_dir / 'apiserver-certs'}",
        f"--tls-cert-file={pki.apiserver.cert}",
        f"--tls-private-key-file={pki.apiserver.key}",
        f"--client-ca-file={pki.ca.cert}",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={pki.sa_public}",
        f"--service-account-signing-key-file={pki.sa_private}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # Request-header authentication, so delegating servers (the controller manager's own
        # endpoint, aggregated APIs) find a complete extension-apiserver-authentication ConfigMap.
        f"--requestheader-client-ca-file={pki.front_proxy_ca.cert}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki.front_proxy_client.cert}",
        f"--proxy-client-key-file={pki.front_proxy_client.key}",
        # The `kubernetes` Service cannot get a loopback endpoint; keeping none avoids a retry loop.
        "--endpoint-reconciler-type=none",
        "--authorization-mode=RBAC",
        # As in OpenShift and many hardened clusters: setting blockOwnerDeletion on a child needs
        # `update` on the owner's finalizers, so the operator's RBAC is tested against the strict case.
        "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
        *extra,
    ]


def controller_manager_argv(layout: Layout) -> list[str]:
    kubeconfig = layout.controller_manager_kubeconfig
    return [
        str(layout.bin_dir / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={layout.ports.controller_manager}",
        f"--cert-dir={layout.state_dir / 'controller-manager-certs'}",
        f"--controllers={','.join(CONTROLLERS)}",
        "--leader-elect=false",
        # As kubeadm does: each controller acts as its own service account under the bootstrap RBAC.
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={layout.pki.sa_private}",
        f"--root-ca-file={layout.pki.ca.cert}",
        "--profiling=false",
        "--v=1",
    ]

"""Command lines of the node's processes: pure functions of NodeDirs, in start order.

Called by up.py; unit-tested. Every listener binds the node's `lo` address (198.18.255.1) or
127.0.0.1, never a wildcard, so nothing the cluster serves is reachable from the uplink.
"""

from __future__ import annotations

from tests.harness.cluster import layout
from tests.harness.cluster.layout import NodeDirs

SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
# Everything a real cluster runs, minus bootstrap-token machinery nobody uses here.
CONTROLLERS = "*,-bootstrap-signer-controller,-token-cleaner-controller"


def etcd(dirs: NodeDirs) -> list[str]:
    client = f"http://{layout.NODE_IP}:{layout.ETCD_CLIENT_PORT}"
    peer = f"http://{layout.NODE_IP}:{layout.ETCD_PEER_PORT}"
    return [
        str(dirs.k8s_bin / "etcd"),
        "--name=node",
        f"--data-dir={dirs.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=node={peer}",
        "--listen-metrics-urls=",
        "--unsafe-no-fsync=true",  # disposable data; fsync would make every write slow here
        "--log-level=warn",
    ]


def apiserver(dirs: NodeDirs) -> list[str]:
    pki = dirs.pki
    return [
        str(dirs.k8s_bin / "kube-apiserver"),
        f"--etcd-servers=http://{layout.NODE_IP}:{layout.ETCD_CLIENT_PORT}",
        f"--bind-address={layout.NODE_IP}",
        f"--advertise-address={layout.NODE_IP}",
        f"--secure-port={layout.API_PORT}",
        f"--cert-dir={dirs.root / 'apiserver-certs'}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        # Never resolve the node name through the host's resolver (kubectl exec/logs would).
        "--kubelet-preferred-address-types=InternalIP",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--service-cluster-ip-range={layout.SERVICE_CIDR}",
        f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
        # Aggregated APIs (metrics-server) are reached at their endpoint, not through a ClusterIP.
        "--enable-aggregator-routing=true",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction,OwnerReferencesPermissionEnforcement",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
    ]


def controller_manager(dirs: NodeDirs) -> list[str]:
    kubeconfig = dirs.kubeconfig("kube-controller-manager")
    return [
        str(dirs.k8s_bin / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--cert-dir={dirs.root / 'controller-manager-certs'}",
        f"--controllers={CONTROLLERS}",
        "--allocate-node-cidrs=false",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={dirs.pki / 'sa.key'}",
        f"--root-ca-file={dirs.pki / 'ca.crt'}",
        f"--service-cluster-ip-range={layout.SERVICE_CIDR}",
        "--profiling=false",
        "--v=1",
    ]


def scheduler(dirs: NodeDirs) -> list[str]:
    kubeconfig = dirs.kubeconfig("kube-scheduler")
    return [
        str(dirs.node_bin / "kube-scheduler"),
        f"--config={dirs.config('scheduler.yaml')}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--cert-dir={dirs.root / 'scheduler-certs'}",
        "--profiling=false",
        "--v=1",
    ]


def containerd(dirs: NodeDirs) -> list[str]:
    return [str(dirs.node_bin / "containerd"), f"--config={dirs.config('containerd.toml')}"]


def kubelet(dirs: NodeDirs) -> list[str]:
    return [
        str(dirs.node_bin / "kubelet"),
        f"--config={dirs.config('kubelet.yaml')}",
        f"--kubeconfig={dirs.kubeconfig('kubelet')}",
        f"--root-dir={dirs.kubelet_root}",
        f"--cert-dir={dirs.kubelet_root / 'pki'}",
        f"--hostname-override={layout.NODE_NAME}",
        f"--node-ip={layout.NODE_IP}",
        "--v=1",
    ]


def kube_proxy(dirs: NodeDirs) -> list[str]:
    return [str(dirs.node_bin / "kube-proxy"), f"--config={dirs.config('kube-proxy.yaml')}", "--v=1"]


def kube_router(dirs: NodeDirs) -> list[str]:
    # Firewall only: kube-proxy does Services and the CNI bridge does routing. Known security flaws
    # in this (the only served) version are acceptable only on this sealed node (docs/e2e.md).
    return [
        str(dirs.node_bin / "kube-router"),
        f"--kubeconfig={dirs.kubeconfig('kube-router')}",
        f"--hostname-override={layout.NODE_NAME}",
        "--run-firewall=true",
        "--run-router=false",
        "--run-service-proxy=false",
        "--run-loadbalancer=false",
        "--enable-cni=false",
        "--enable-ipv6=false",
        f"--service-cluster-ip-range={layout.SERVICE_CIDR}",
        "--health-port=0",  # its health server would bind every address
        "--metrics-port=0",
        "--iptables-sync-period=30s",
        "--v=1",
    ]


def metrics_server(dirs: NodeDirs) -> list[str]:
    # The resource metrics API for HPAs. Its kubelet client skips verifying the kubelet's self-signed
    # serving certificate: acceptable only on this sealed node, where the kubelet is our own process.
    kubeconfig = dirs.kubeconfig("metrics-server")
    return [
        str(dirs.node_bin / "metrics-server"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={layout.NODE_IP}",
        f"--secure-port={layout.METRICS_SERVER_PORT}",
        f"--cert-dir={dirs.root / 'metrics-server-certs'}",
        "--kubelet-preferred-address-types=InternalIP",
        "--kubelet-insecure-tls",
        "--metric-resolution=15s",
        "--v=1",
    ]

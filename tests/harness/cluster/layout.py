"""Addresses, directories and pins of the sealed test node: the one place these facts live.

Every address is inside 198.18.0.0/15 (RFC 2544 benchmarking range), never a private range, so nothing
the cluster does can collide with or leak into a real network. Used by every module of this package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tests.harness.binaries import K8S_VERSION, bin_dir_from_env

CONTAINERD_VERSION = "v2.4.2"
COREDNS_VERSION = "v1.15.0"

SEALED_RANGE = "198.18.0.0/15"
NODE_IP = "198.18.255.1"  # on `lo`: API server, etcd, kubelet, kube-proxy bind here
METADATA_STAND_IN_IP = "169.254.42.1"
"""Put on `lo` by an e2e test while it runs: a cloud metadata endpoint's stand-in (link-local, so it never
leaves the machine). Not 169.254.169.254 itself, which the VM's own metadata service may answer."""
POD_CIDR = "198.18.0.0/24"
POD_GATEWAY = "198.18.0.1"
SERVICE_CIDR = "198.19.0.0/24"
API_SERVICE_IP = "198.19.0.1"
DNS_SERVICE_IP = "198.19.0.10"
CLUSTER_DOMAIN = "cluster.local"
NODE_NAME = "actormesh-node"

CNI_BRIDGE = "amcni0"  # pods' bridge (made by the CNI bridge plugin)
SERVICE_BRIDGE = "amsvc0"  # empty bridge: a route target for the Service range (see hostnet.py)
SEAL_CHAIN = "AM-SEAL"  # mangle chain with the uplink DROP guards

API_PORT = 6443
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
KUBELET_HEALTHZ_PORT = 10248
KUBE_PROXY_HEALTHZ_PORT = 10256
METRICS_SERVER_PORT = 4443  # metrics-server, a host process on NODE_IP behind the metrics.k8s.io APIService

STATE_ENV = "ACTORMESH_CLUSTER_STATE"
NODE_BIN_ENV = "ACTORMESH_NODE_BIN"
IMAGES_DIR_ENV = "ACTORMESH_IMAGES_DIR"

# Image refs the node makes for itself (images.py); `actormesh.local` keeps them from ever looking
# like something a registry could serve.
PAUSE_IMAGE = f"actormesh.local/pause:{K8S_VERSION}"
BUSYBOX_IMAGE = "actormesh.local/busybox:node"
COREDNS_IMAGE = f"actormesh.local/coredns:{COREDNS_VERSION}"

# Written by kubelet/kube-proxy/containerd; snapshotted by `up` and restored by `down`.
SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.conf.all.route_localnet",
)

CGROUP_ROOT = Path("/sys/fs/cgroup")
KUBEPODS_CGROUP = "kubepods"
VOLUME_POOL_SIZE = 40


def cache_root() -> Path:
    return Path.home() / ".cache" / "actormesh"


def node_bin_dir() -> Path:
    value = os.environ.get(NODE_BIN_ENV, "").strip()
    if value:
        return Path(value).expanduser()
    return cache_root() / f"node-{K8S_VERSION}-containerd-{CONTAINERD_VERSION}"


def state_file() -> Path:
    value = os.environ.get(STATE_ENV, "").strip()
    return Path(value).expanduser() if value else cache_root() / "cluster-up.json"


def images_dir() -> Path:
    """Where the images engineer's `make images-tar` writes tars and images.txt (INTERFACES.md)."""
    value = os.environ.get(IMAGES_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else cache_root() / "images" / "e2e"


def node_images_dir() -> Path:
    return cache_root() / "images" / "node"


@dataclass(frozen=True)
class NodeDirs:
    """Every directory the node writes: one root on disk and one under /run, both removed by `down`."""

    root: Path
    run: Path

    @classmethod
    def default(cls) -> NodeDirs:
        return cls(root=Path("/var/lib/actormesh-node"), run=Path("/run/actormesh-node"))

    @property
    def k8s_bin(self) -> Path:
        return bin_dir_from_env()

    @property
    def node_bin(self) -> Path:
        return node_bin_dir()

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd"

    @property
    def containerd_state(self) -> Path:
        return self.run / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.run / "containerd" / "containerd.sock"

    @property
    def cni_conf(self) -> Path:
        return self.etc / "cni"

    @property
    def cni_state(self) -> Path:
        return self.root / "cni-ipam"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    @property
    def host_paths_outside(self) -> dict[str, Path]:
        """Fixed paths the kubelet and containerd shims write outside our dirs; `down` removes each
        one `up` found missing (recorded as `made`)."""
        return {
            "var-log-containers": Path("/var/log/containers"),
            "run-containerd": Path("/run/containerd"),
            # libcni's result cache (containerd offers no setting for it).
            "var-lib-cni": Path("/var/lib/cni"),
        }

    def kubeconfig(self, user: str) -> Path:
        return self.etc / f"{user}.kubeconfig"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.kubeconfig("admin")

    def config(self, name: str) -> Path:
        return self.etc / name

"""Config files of the node's components, as pure functions of NodeDirs: no I/O, unit-tested.

Called by up.py, which writes each result under NodeDirs.etc. The settings that keep the node sealed
and working on this machine (cgroup v1, no CAP_SYS_RESOURCE, no registry) are explained where set.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.harness.cluster import layout
from tests.harness.cluster.layout import NodeDirs


def containerd_toml(dirs: NodeDirs) -> str:
    cni_bin = dirs.node_bin / "cni"
    runc = dirs.node_bin / "runc"
    return f"""\
version = 3
root = "{dirs.containerd_root}"
state = "{dirs.containerd_state}"

[grpc]
  address = "{dirs.containerd_socket}"

# Defaults outside our dirs: /opt/containerd and the NRI socket under /var/run/nri.
[plugins."io.containerd.internal.v1.opt"]
  path = "{dirs.containerd_root / "opt"}"

[plugins."io.containerd.nri.v1.nri"]
  disable = true

[plugins."io.containerd.cri.v1.runtime"]
  # The sandbox drops CAP_SYS_RESOURCE: without this runc fails writing /proc/self/oom_score_adj.
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  # Pod netns mounts under containerd's own state dir, not /run/netns, so teardown finds them all.
  netns_mounts_under_state_dir = true

[plugins."io.containerd.cri.v1.runtime".cni]
  bin_dirs = ["{cni_bin}"]
  conf_dir = "{dirs.cni_conf}"
  max_conf_num = 1

[plugins."io.containerd.cri.v1.runtime".containerd]
  default_runtime_name = "runc"
  snapshotter = "overlayfs"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
  BinaryName = "{runc}"
  SystemdCgroup = false

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  # No registry is reachable: every image is imported with `ctr images import` and must stay.
  discard_unpacked_layers = false

[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "{layout.PAUSE_IMAGE}"
"""


def cni_conflist(dirs: NodeDirs) -> str:
    conf: dict[str, Any] = {
        "cniVersion": "1.0.0",
        "name": "actormesh",
        "plugins": [
            {
                "type": "bridge",
                "bridge": layout.CNI_BRIDGE,
                "isGateway": True,
                # Sealed: pod traffic keeps its 198.18 source; nothing is NATed towards the uplink.
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(dirs.cni_state),
                    "ranges": [[{"subnet": layout.POD_CIDR, "gateway": layout.POD_GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(conf, indent=2) + "\n"


def resolv_conf() -> str:
    # Pods (dnsPolicy Default included) see only the cluster DNS: never the host's resolver.
    return f"nameserver {layout.DNS_SERVICE_IP}\noptions ndots:5\n"


def kubelet_config(dirs: NodeDirs) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": layout.NODE_IP,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": layout.KUBELET_HEALTHZ_PORT,
        "readOnlyPort": 0,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(dirs.pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDomain": layout.CLUSTER_DOMAIN,
        "clusterDNS": [layout.DNS_SERVICE_IP],
        "resolvConf": str(dirs.config("resolv.conf")),
        "containerRuntimeEndpoint": f"unix://{dirs.containerd_socket}",
        # cgroup v1 host, no systemd: cgroupfs, and v1 allowed explicitly (1.34 warns, still runs).
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": ["pods"],
        "protectKernelDefaults": False,
        # Locally imported images cannot be pulled back: image GC must never remove them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        # A shared, busy disk must not evict the test pods.
        "evictionHard": {"nodefs.available": "1%", "imagefs.available": "1%", "memory.available": "100Mi"},
        "podLogsDir": str(dirs.pod_logs),
        "volumePluginDir": str(dirs.kubelet_root / "volume-plugins"),
        "serializeImagePulls": False,
        "maxPods": 110,
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
    }


def kube_proxy_config(dirs: NodeDirs) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "bindAddress": layout.NODE_IP,
        "clusterCIDR": layout.POD_CIDR,
        "hostnameOverride": layout.NODE_NAME,
        "healthzBindAddress": f"127.0.0.1:{layout.KUBE_PROXY_HEALTHZ_PORT}",
        "metricsBindAddress": "127.0.0.1:10249",
        "nodePortAddresses": [f"{layout.NODE_IP}/32"],
        "clientConnection": {"kubeconfig": str(dirs.kubeconfig("kube-proxy"))},
        # Zero: kube-proxy leaves the host's conntrack sysctls alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"masqueradeAll": False, "localhostNodePorts": False, "syncPeriod": "5s"},
    }


def scheduler_config(dirs: NodeDirs) -> dict[str, Any]:
    return {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(dirs.kubeconfig("kube-scheduler"))},
        "leaderElection": {"leaderElect": False},
    }


def dump_yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False)

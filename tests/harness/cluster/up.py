"""`make cluster-up`: the sealed single-node cluster, started as host processes in dependency order.

Called by __main__.py. Every host change is recorded in the state file *before* it is made, so
`make cluster-down` can undo a half-finished `up` after any crash. A second `up` while the cluster runs
only prints the KUBECONFIG line again.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.harness import processes
from tests.harness.binaries import BINARIES as K8S_BINARIES
from tests.harness.binaries import HOW_TO_BUILD
from tests.harness.cluster import addons, argv, configs, hostnet, images, layout
from tests.harness.cluster.layout import NodeDirs
from tests.harness.cluster.shellrun import ok, run
from tests.harness.cluster.state import ClusterState, load, save
from tests.harness.handle import KubeControlPlane
from tests.harness.kubeconfig import write_kubeconfig
from tests.harness.pki import Pki, generate_pki
from tests.harness.processes import ProcessRecord
from tests.harness.readiness import client_context, http_ok, wait_until_healthy

NODE_BINARIES = (
    "kubelet",
    "kube-scheduler",
    "kube-proxy",
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "runc",
    "crictl",
    "coredns",
    "kube-router",
    "pause",
)
HOST_TOOLS = ("ip", "iptables", "ip6tables", "ipset", "conntrack")
# user -> (certificate CN, O) of each component's client certificate.
CLIENTS: dict[str, tuple[str, str | None]] = {
    "kube-controller-manager": ("system:kube-controller-manager", None),
    "kube-scheduler": ("system:kube-scheduler", None),
    "kubelet": (f"system:node:{layout.NODE_NAME}", "system:nodes"),
    "kube-proxy": ("system:kube-proxy", None),
    # Test-only enforcer: cluster-admin spares a hand-written RBAC role for it.
    "kube-router": ("kube-router", "system:masters"),
    # Test-only, as above: reads nodes, pods and every kubelet's /metrics/resource.
    "metrics-server": ("metrics-server", "system:masters"),
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", "system:masters"),
}
STARTUP_TIMEOUT = 120.0
KEEP_ENV = "ACTORMESH_CLUSTER_KEEP_ON_FAILURE"


class ClusterUpError(RuntimeError):
    pass


def missing_prerequisites(dirs: NodeDirs) -> list[str]:
    missing = [
        f"{dirs.k8s_bin}/{b} (make k8s-bin)" for b in K8S_BINARIES if not os.access(dirs.k8s_bin / b, os.X_OK)
    ]
    missing += [
        f"{dirs.node_bin}/{b} (make node-bin)"
        for b in NODE_BINARIES
        if not os.access(dirs.node_bin / b, os.X_OK)
    ]
    missing += [
        f"{t} (apt-get install iptables ipset conntrack iproute2)"
        for t in HOST_TOOLS
        if shutil.which(t) is None
    ]
    if not images.BUSYBOX.exists():
        missing.append(f"{images.BUSYBOX} (apt-get install busybox-static)")
    if os.geteuid() != 0:
        missing.append("root (the node changes routes, iptables and mounts)")
    return missing


class ClusterUp:
    def __init__(self, dirs: NodeDirs, state_path: Path) -> None:
        self.dirs = dirs
        self.state_path = state_path
        self.state = ClusterState(root=str(dirs.root), run=str(dirs.run))

    def record(self, name: str) -> None:
        self.state.made.append(name)
        save(self.state, self.state_path)

    def step(self, name: str, action: Callable[[], object]) -> None:
        self.record(name)
        action()

    def spawn(self, name: str, command: list[str]) -> ProcessRecord:
        record = processes.spawn(name, command, self.dirs.logs / f"{name}.log", die_with_parent=False)
        self.state.processes.append(record)
        save(self.state, self.state_path)
        return record

    def run(self) -> KubeControlPlane:
        dirs = self.dirs
        # containerd finds its shim on PATH: ours first, never a distribution's (Debian's docker.io
        # ships a containerd 1.6 shim that misreads a 2.x containerd's arguments).
        os.environ["PATH"] = f"{dirs.node_bin}:{os.environ.get('PATH', '')}"
        self.state.sysctls = hostnet.read_sysctls(layout.SYSCTLS)
        self.state.uplink = hostnet.uplink()
        save(self.state, self.state_path)
        self.step("dirs", self.make_dirs)
        for name, path in dirs.host_paths_outside.items():
            if not path.exists():
                self.record(name)
        for name, action in hostnet.setup_steps(self.state):
            self.step(name, action)
        pki = generate_pki(
            dirs.pki, server_ips=("127.0.0.1", layout.NODE_IP, layout.API_SERVICE_IP), clients=CLIENTS
        )
        self.write_configs(pki)
        self.state.kubeconfig = str(dirs.admin_kubeconfig)
        save(self.state, self.state_path)
        self.start_control_plane(pki)
        kube = KubeControlPlane(dirs.admin_kubeconfig, self.server, dirs.k8s_bin, dirs.root)
        self.start_node()
        self.install_addons(kube)
        return kube

    def make_dirs(self) -> None:
        for path in (self.dirs.logs, self.dirs.etc, self.dirs.run):
            path.mkdir(parents=True, exist_ok=True)

    def make_volume_dirs(self) -> list[str]:
        paths = [self.dirs.volumes / f"pool-{i:03d}" for i in range(layout.VOLUME_POOL_SIZE)]
        for path in paths:
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)  # any pod uid may write its claim (hostPath has no fsGroup handling)
        return [str(p) for p in paths]

    @property
    def server(self) -> str:
        return f"https://{layout.NODE_IP}:{layout.API_PORT}"

    def write_configs(self, pki: Pki) -> None:
        dirs = self.dirs
        write_kubeconfig(dirs.admin_kubeconfig, self.server, pki.ca.cert, pki.admin, "admin")
        for user, pair in pki.clients.items():
            write_kubeconfig(dirs.kubeconfig(user), self.server, pki.ca.cert, pair, user)
        dirs.cni_conf.mkdir(parents=True, exist_ok=True)
        (dirs.cni_conf / "10-actormesh.conflist").write_text(configs.cni_conflist(dirs))
        dirs.config("containerd.toml").write_text(configs.containerd_toml(dirs))
        dirs.config("resolv.conf").write_text(configs.resolv_conf())
        dirs.config("kubelet.yaml").write_text(configs.dump_yaml(configs.kubelet_config(dirs)))
        dirs.config("kube-proxy.yaml").write_text(configs.dump_yaml(configs.kube_proxy_config(dirs)))
        dirs.config("scheduler.yaml").write_text(configs.dump_yaml(configs.scheduler_config(dirs)))

    def start_control_plane(self, pki: Pki) -> None:
        etcd = self.spawn("etcd", argv.etcd(self.dirs))
        wait_until_healthy(
            etcd,
            lambda: http_ok(f"http://{layout.NODE_IP}:{layout.ETCD_CLIENT_PORT}/health"),
            STARTUP_TIMEOUT,
        )
        api = self.spawn("kube-apiserver", argv.apiserver(self.dirs))
        admin = client_context(pki.ca, pki.admin)
        wait_until_healthy(api, lambda: http_ok(f"{self.server}/readyz", admin), STARTUP_TIMEOUT)
        insecure = client_context()
        kcm = self.spawn("kube-controller-manager", argv.controller_manager(self.dirs))
        wait_until_healthy(kcm, lambda: http_ok("https://127.0.0.1:10257/healthz", insecure), STARTUP_TIMEOUT)
        sched = self.spawn("kube-scheduler", argv.scheduler(self.dirs))
        wait_until_healthy(
            sched, lambda: http_ok("https://127.0.0.1:10259/healthz", insecure), STARTUP_TIMEOUT
        )

    def ctr(self, *args: str, timeout: float = 600.0) -> str:
        return run(
            [
                str(self.dirs.node_bin / "ctr"),
                f"--address={self.dirs.containerd_socket}",
                "-n",
                "k8s.io",
                *args,
            ],
            timeout=timeout,
        )

    def start_node(self) -> None:
        dirs = self.dirs
        containerd = self.spawn("containerd", argv.containerd(dirs))
        ctr_version = [str(dirs.node_bin / "ctr"), f"--address={dirs.containerd_socket}", "version"]
        wait_until_healthy(containerd, lambda: ok(ctr_version, timeout=5), STARTUP_TIMEOUT)
        self.import_images()
        kubelet = self.spawn("kubelet", argv.kubelet(dirs))
        wait_until_healthy(
            kubelet,
            lambda: http_ok(f"http://127.0.0.1:{layout.KUBELET_HEALTHZ_PORT}/healthz"),
            STARTUP_TIMEOUT,
        )
        proxy = self.spawn("kube-proxy", argv.kube_proxy(dirs))
        wait_until_healthy(
            proxy,
            lambda: http_ok(f"http://127.0.0.1:{layout.KUBE_PROXY_HEALTHZ_PORT}/healthz"),
            STARTUP_TIMEOUT,
        )
        router = self.spawn("kube-router", argv.kube_router(dirs))
        wait_until_healthy(
            router, lambda: "KUBE-ROUTER-FORWARD" in run(["iptables", "-S"], check=False), STARTUP_TIMEOUT
        )
        # Serves once the API server answers; its APIService is applied with the other add-ons.
        self.spawn("metrics-server", argv.metrics_server(dirs))

    def import_images(self) -> None:
        pairs = images.ensure_node_images(self.dirs.node_bin, layout.node_images_dir())
        listed = layout.images_dir() / "images.txt"
        if listed.exists():
            pairs += images.listed_images(listed)
        else:
            print(f"# no {listed} (make images-tar): only the node's own images are loaded", file=sys.stderr)
        seen: set[Path] = set()
        for _ref, tar in pairs:
            if tar not in seen:
                seen.add(tar)
                self.ctr("images", "import", "--local", str(tar))
        have = self.ctr("images", "ls", "-q")
        lost = [ref for ref, _ in pairs if _normalise(ref) not in have.split()]
        if lost:
            raise ClusterUpError(f"images missing after import: {lost}")

    def install_addons(self, kube: KubeControlPlane) -> None:
        wait_for("node Ready", lambda: _node_ready(kube), STARTUP_TIMEOUT)
        docs = [
            addons.storage_class(),
            *addons.volume_pool(self.make_volume_dirs()),
            *addons.coredns_manifests(),
            *addons.metrics_api_manifests(),
        ]
        kube.kubectl(
            "apply", "-f", "-", input=configs.dump_yaml({"apiVersion": "v1", "kind": "List", "items": docs})
        )
        kube.kubectl(
            "-n",
            addons.DNS_NAMESPACE,
            "rollout",
            "status",
            f"deploy/{addons.DNS_NAME}",
            "--timeout=180s",
            timeout=200,
        )
        name = f"kubernetes.default.svc.{layout.CLUSTER_DOMAIN}"
        lookup = [str(images.BUSYBOX), "nslookup", name, layout.DNS_SERVICE_IP]
        # The first lookup right after CoreDNS is Ready can fail for a moment.
        wait_for(
            f"DNS answers {name}", lambda: layout.API_SERVICE_IP in run(lookup, check=False, timeout=10), 60
        )


def _normalise(ref: str) -> str:
    """How containerd names an image ref: docker.io/ and library/ added, as in the CRI."""
    name = ref
    first = name.split("/", 1)[0]
    if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
        name = f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"
    return name


def _node_ready(kube: KubeControlPlane) -> bool:
    out = kube.kubectl(
        "get",
        "node",
        layout.NODE_NAME,
        "-o",
        'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        check=False,
    )
    return out.returncode == 0 and out.stdout.strip() == "True"


def wait_for(what: str, predicate: Callable[[], bool], timeout: float, interval: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise ClusterUpError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def save_diagnostics(dirs: NodeDirs) -> Path:
    """Copy the node's logs and what the API server and containerd say aside, before teardown."""
    out = layout.cache_root() / "cluster-logs" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    if dirs.logs.is_dir():
        shutil.copytree(dirs.logs, out / "node", dirs_exist_ok=True)
    if dirs.pod_logs.is_dir():
        shutil.copytree(dirs.pod_logs, out / "pods", dirs_exist_ok=True, ignore_dangling_symlinks=True)
    kubectl = [
        str(dirs.k8s_bin / "kubectl"),
        f"--kubeconfig={dirs.admin_kubeconfig}",
        "--request-timeout=10s",
    ]
    endpoint = f"unix://{dirs.containerd_socket}"
    crictl = [str(dirs.node_bin / "crictl"), f"--runtime-endpoint={endpoint}", "--timeout=10s"]
    for name, command in {
        "pods.txt": [*kubectl, "get", "pods", "-A", "-o", "wide"],
        "events.txt": [*kubectl, "get", "events", "-A", "--sort-by=.lastTimestamp"],
        "nodes.yaml": [*kubectl, "get", "nodes", "-o", "yaml"],
        "crictl-ps.txt": [*crictl, "ps", "-a"],
        "crictl-pods.txt": [*crictl, "pods"],
    }.items():
        (out / name).write_text(run(command, check=False, timeout=30))
    return out


def already_running(state: ClusterState) -> bool:
    return bool(state.processes) and all(processes.is_running(r) for r in state.processes)


def up(dirs: NodeDirs, state_path: Path) -> int:
    from tests.harness.cluster.down import down

    previous = load(state_path)
    if previous is not None:
        if already_running(previous) and previous.kubeconfig:
            print(f"# cluster already running; logs in {dirs.logs}")
            print(f"export KUBECONFIG={previous.kubeconfig}")
            return 0
        print("# a previous cluster-up did not finish or has died: tearing it down first", file=sys.stderr)
        down(state_path)
    missing = missing_prerequisites(dirs)
    if missing:
        print("cluster-up needs: " + "; ".join(missing) + f". {HOW_TO_BUILD}", file=sys.stderr)
        return 2
    start = time.monotonic()
    try:
        ClusterUp(dirs, state_path).run()
    except BaseException as exc:
        saved = save_diagnostics(dirs)
        print(f"cluster-up failed: {exc}\n# logs and cluster state saved in {saved}", file=sys.stderr)
        if os.environ.get(KEEP_ENV, "") == "1":
            print(
                f"# {KEEP_ENV}=1: the failed cluster stays up; make cluster-down removes it", file=sys.stderr
            )
        else:
            print("# tearing down what was made", file=sys.stderr)
            down(state_path)
        raise
    took = time.monotonic() - start
    print(f"# sealed cluster up in {took:.0f}s; logs in {dirs.logs}; stop: make cluster-down")
    print(f"export KUBECONFIG={dirs.admin_kubeconfig}")
    return 0

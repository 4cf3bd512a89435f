"""The sealed test node's pure parts: config files, command lines, add-ons, teardown rules, images."""

from __future__ import annotations

import ipaddress
import json
import tarfile
import tomllib
from pathlib import Path

import pytest

from tests.harness.cluster import addons, argv, configs, hostnet, images, layout
from tests.harness.cluster.layout import NodeDirs

SEALED = ipaddress.ip_network(layout.SEALED_RANGE)
DIRS = NodeDirs(root=Path("/var/lib/am-test"), run=Path("/run/am-test"))


@pytest.mark.parametrize(
    "address",
    [
        layout.NODE_IP,
        layout.POD_CIDR,
        layout.POD_GATEWAY,
        layout.SERVICE_CIDR,
        layout.API_SERVICE_IP,
        layout.DNS_SERVICE_IP,
    ],
)
def test_every_cluster_address_is_inside_the_sealed_range(address: str) -> None:
    assert ipaddress.ip_network(address).subnet_of(SEALED)  # type: ignore[arg-type]


def test_pods_and_services_do_not_overlap_and_dns_is_a_service_ip() -> None:
    pods, services = ipaddress.ip_network(layout.POD_CIDR), ipaddress.ip_network(layout.SERVICE_CIDR)
    assert not pods.overlaps(services)
    assert ipaddress.ip_address(layout.DNS_SERVICE_IP) in services
    assert ipaddress.ip_address(layout.NODE_IP) not in pods


def test_containerd_config_restricts_oom_score_and_keeps_everything_in_our_dirs() -> None:
    conf = tomllib.loads(configs.containerd_toml(DIRS))
    runtime = conf["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True
    assert runtime["netns_mounts_under_state_dir"] is True
    assert runtime["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert conf["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == layout.PAUSE_IMAGE
    for path in (conf["root"], conf["state"], conf["grpc"]["address"], runtime["cni"]["conf_dir"]):
        assert path.startswith((str(DIRS.root), str(DIRS.run)))


def test_cni_never_masquerades_and_uses_the_pod_range() -> None:
    bridge = json.loads(configs.cni_conflist(DIRS))["plugins"][0]
    assert bridge["ipMasq"] is False
    assert bridge["bridge"] == layout.CNI_BRIDGE
    assert bridge["ipam"]["ranges"][0][0]["subnet"] == layout.POD_CIDR
    assert bridge["ipam"]["dataDir"].startswith(str(DIRS.root))


def test_pods_resolve_only_through_cluster_dns() -> None:
    assert configs.resolv_conf().splitlines()[0] == f"nameserver {layout.DNS_SERVICE_IP}"
    assert "nameserver" not in "".join(configs.resolv_conf().splitlines()[1:])
    kubelet = configs.kubelet_config(DIRS)
    assert kubelet["resolvConf"] == str(DIRS.config("resolv.conf"))
    assert kubelet["clusterDNS"] == [layout.DNS_SERVICE_IP]


def test_kubelet_never_garbage_collects_imported_images_and_runs_on_cgroupfs() -> None:
    kubelet = configs.kubelet_config(DIRS)
    assert kubelet["imageGCHighThresholdPercent"] == 100
    assert kubelet["cgroupDriver"] == "cgroupfs"
    assert kubelet["authentication"]["anonymous"]["enabled"] is False
    assert kubelet["readOnlyPort"] == 0


def test_kube_proxy_iptables_mode_without_masquerade_on_the_node_address() -> None:
    proxy = configs.kube_proxy_config(DIRS)
    assert proxy["mode"] == "iptables"
    assert proxy["iptables"]["masqueradeAll"] is False
    assert proxy["nodePortAddresses"] == [f"{layout.NODE_IP}/32"]
    assert proxy["conntrack"]["maxPerCore"] == 0


def test_api_server_binds_the_node_address_and_never_resolves_node_names() -> None:
    cmd = argv.apiserver(DIRS)
    assert f"--bind-address={layout.NODE_IP}" in cmd
    assert "--kubelet-preferred-address-types=InternalIP" in cmd
    assert f"--service-cluster-ip-range={layout.SERVICE_CIDR}" in cmd


@pytest.mark.parametrize(
    "build",
    [
        argv.etcd,
        argv.apiserver,
        argv.controller_manager,
        argv.scheduler,
        argv.kube_router,
        argv.metrics_server,
    ],
)
def test_no_listener_binds_a_wildcard_address(build: object) -> None:
    cmd = build(DIRS)  # type: ignore[operator]
    assert not [a for a in cmd if "0.0.0.0" in a or a.endswith("=:")]


def test_kube_router_runs_only_the_firewall() -> None:
    cmd = argv.kube_router(DIRS)
    for flag in (
        "--run-firewall=true",
        "--run-router=false",
        "--run-service-proxy=false",
        "--enable-cni=false",
        "--health-port=0",
    ):
        assert flag in cmd


def test_metrics_api_is_served_by_the_host_process_on_the_node_address() -> None:
    cmd = argv.metrics_server(DIRS)
    assert f"--bind-address={layout.NODE_IP}" in cmd
    assert f"--secure-port={layout.METRICS_SERVER_PORT}" in cmd
    assert "--kubelet-preferred-address-types=InternalIP" in cmd  # never the host's resolver
    assert "--enable-aggregator-routing=true" in argv.apiserver(DIRS)
    docs = {d["kind"]: d for d in addons.metrics_api_manifests()}
    assert docs["Endpoints"]["subsets"] == [
        {
            "addresses": [{"ip": layout.NODE_IP}],
            "ports": [{"name": "https", "port": layout.METRICS_SERVER_PORT}],
        }
    ]
    assert "selector" not in docs["Service"]["spec"]
    assert docs["APIService"]["spec"]["service"]["name"] == docs["Service"]["metadata"]["name"]


def test_coredns_has_no_forward_plugin_and_uses_the_dns_service_ip() -> None:
    docs = addons.coredns_manifests()
    corefile = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["Corefile"]
    assert "forward" not in corefile
    service = next(d for d in docs if d["kind"] == "Service")
    assert service["spec"]["clusterIP"] == layout.DNS_SERVICE_IP
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "Never"
    assert container["image"] == layout.COREDNS_IMAGE


IPTABLES_S = """\
-P POSTROUTING ACCEPT
-N KUBE-POSTROUTING
-N AM-SEAL
-N OTHER-CHAIN
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -j AM-SEAL
-A POSTROUTING -o eth0 -j MASQUERADE
-A POSTROUTING -s 198.18.0.0/24 -j ACCEPT
-A OTHER-CHAIN -j RETURN
-A KUBE-POSTROUTING -j RETURN
"""


def test_iptables_teardown_removes_only_our_rules_and_chains() -> None:
    commands = hostnet.iptables_cleanup_commands("nat", IPTABLES_S)
    assert commands == [
        [
            "-t",
            "nat",
            "-D",
            "POSTROUTING",
            "-m",
            "comment",
            "--comment",
            "kubernetes postrouting rules",
            "-j",
            "KUBE-POSTROUTING",
        ],
        ["-t", "nat", "-D", "POSTROUTING", "-j", "AM-SEAL"],
        ["-t", "nat", "-D", "POSTROUTING", "-s", "198.18.0.0/24", "-j", "ACCEPT"],
        ["-t", "nat", "-F", "KUBE-POSTROUTING"],
        ["-t", "nat", "-F", "AM-SEAL"],
        ["-t", "nat", "-X", "KUBE-POSTROUTING"],
        ["-t", "nat", "-X", "AM-SEAL"],
    ]


def test_docker_archive_has_one_layer_with_the_files_and_the_ref(tmp_path: Path) -> None:
    payload = tmp_path / "pause"
    payload.write_bytes(b"\x7fELF fake")
    spec = images.ImageSpec(
        "actormesh.local/x:1", [images.ImageFile("pause", payload)], entrypoint=["/pause"]
    )
    out = tmp_path / "x.tar"
    images.write_docker_archive(spec, out)
    with tarfile.open(out) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert manifest[0]["RepoTags"] == ["actormesh.local/x:1"]
        config = json.loads(tar.extractfile(manifest[0]["Config"]).read())  # type: ignore[union-attr]
        assert config["config"]["Entrypoint"] == ["/pause"]
        layer = tar.extractfile(manifest[0]["Layers"][0])
        with tarfile.open(fileobj=layer) as inner:  # type: ignore[arg-type]
            assert inner.extractfile("pause").read() == b"\x7fELF fake"  # type: ignore[union-attr]
    # Reproducible: same inputs, same bytes (so the content key is honest).
    again = tmp_path / "y.tar"
    images.write_docker_archive(spec, again)
    assert again.read_bytes() == out.read_bytes()


def test_images_txt_lists_refs_relative_to_its_directory(tmp_path: Path) -> None:
    listing = tmp_path / "images.txt"
    listing.write_text("# comment\nactormesh/actormesh:0.1.0 runtime.tar\nactormesh/nats:2 /abs/nats.tar\n")
    assert images.listed_images(listing) == [
        ("actormesh/actormesh:0.1.0", tmp_path / "runtime.tar"),
        ("actormesh/nats:2", Path("/abs/nats.tar")),
    ]


def test_node_binaries_pins_agree_with_the_build_script() -> None:
    script = Path("hack/node/build.sh").read_text()
    assert f"CONTAINERD_VERSION={layout.CONTAINERD_VERSION}" in script
    assert f"COREDNS_VERSION={layout.COREDNS_VERSION}" in script
    assert layout.node_bin_dir().name == f"node-v1.34.4-containerd-{layout.CONTAINERD_VERSION}"


def _pins(go_mod: str) -> dict[str, str]:
    """module -> version of every k8s.io requirement and replace target in a go.mod."""
    pins = {}
    for line in Path(go_mod).read_text().splitlines():
        parts = line.split()
        if "=>" in parts:
            parts = parts[parts.index("=>") + 1 :]
        if (
            len(parts) >= 2
            and parts[0].startswith("k8s.io/")
            and parts[1].startswith("v")
            and parts[1] != "v0.0.0"
        ):
            pins[parts[0]] = parts[1]
    return pins


def test_node_kube_module_pins_what_the_control_plane_pins() -> None:
    control_plane, node = _pins("hack/k8s/go.mod"), _pins("hack/node/kube/go.mod")
    assert node["k8s.io/kubernetes"] == control_plane["k8s.io/kubernetes"] == "v1.34.4"
    shared = set(control_plane) & set(node)
    assert {m: node[m] for m in shared} == {m: control_plane[m] for m in shared}

"""The control-plane harness without a control plane: PKI, kubeconfig, command lines, process records."""

from __future__ import annotations

import base64
import ipaddress
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.harness import binaries, components, processes
from tests.harness.components import Layout, Ports
from tests.harness.kubeconfig import write_kubeconfig
from tests.harness.pki import Pki, generate_pki
from tests.harness.shell import UpState
from tests.support.eventually import eventually


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return generate_pki(tmp_path_factory.mktemp("pki"))


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _layout(pki: Pki, tmp_path: Path) -> Layout:
    return Layout(bin_dir=Path("/bins"), state_dir=tmp_path, ports=Ports(2379, 2380, 6443, 10257), pki=pki)


def test_leaf_certs_are_signed_by_the_ca_for_their_purpose(pki: Pki) -> None:
    ca = _cert(pki.ca.cert)
    for pair, usage in [
        (pki.apiserver, ExtendedKeyUsageOID.SERVER_AUTH),
        (pki.admin, ExtendedKeyUsageOID.CLIENT_AUTH),
        (pki.controller_manager, ExtendedKeyUsageOID.CLIENT_AUTH),
    ]:
        leaf = _cert(pair.cert)
        leaf.verify_directly_issued_by(ca)
        assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [usage]


def test_front_proxy_client_is_trusted_only_through_its_own_ca(pki: Pki) -> None:
    client = _cert(pki.front_proxy_client.cert)
    client.verify_directly_issued_by(_cert(pki.front_proxy_ca.cert))
    with pytest.raises(ValueError):
        client.verify_directly_issued_by(_cert(pki.ca.cert))


def test_server_cert_names_loopback_and_admin_is_a_cluster_admin(pki: Pki) -> None:
    sans = _cert(pki.apiserver.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    admin = _cert(pki.admin.cert).subject
    assert admin.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    kcm = _cert(pki.controller_manager.cert).subject
    assert kcm.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:kube-controller-manager"


def test_private_keys_are_owner_only(pki: Pki) -> None:
    for key in (pki.ca.key, pki.apiserver.key, pki.admin.key, pki.sa_private):
        assert key.stat().st_mode & 0o077 == 0


def test_kubeconfig_embeds_the_credentials(pki: Pki, tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:6443", pki.ca.cert, pki.admin, "admin")
    config = yaml.safe_load(path.read_text())
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == pki.ca.cert.read_bytes()
    user = config["users"][0]["user"]
    assert base64.b64decode(user["client-key-data"]) == pki.admin.key.read_bytes()
    assert config["current-context"] == config["contexts"][0]["name"]


def test_every_component_listens_on_loopback_only(pki: Pki, tmp_path: Path) -> None:
    layout = _layout(pki, tmp_path)
    argvs = [
        components.etcd_argv(layout),
        components.apiserver_argv(layout),
        components.controller_manager_argv(layout),
    ]
    for argv in argvs:
        urls = [a.split("=", 1)[1] for a in argv if "-urls=" in a or a.startswith("--bind-address")]
        assert urls
        assert all(u.startswith(("http://127.0.0.1:", "127.0.0.1")) for u in urls), urls
    assert f"--etcd-servers={layout.etcd_url}" in argvs[1]
    assert argvs[0][0] == "/bins/etcd"


def test_controller_manager_runs_the_controllers_the_operator_needs(pki: Pki, tmp_path: Path) -> None:
    argv = components.controller_manager_argv(_layout(pki, tmp_path))
    (flag,) = [a for a in argv if a.startswith("--controllers=")]
    enabled = set(flag.removeprefix("--controllers=").split(","))
    for name in ("garbage-collector", "namespace", "deployment", "replicaset", "statefulset"):
        assert f"{name}-controller" in enabled
    assert "horizontal-pod-autoscaler-controller" in enabled
    assert "--leader-elect=false" in argv
    assert not [a for a in argv if a.startswith("--cloud-provider")]


def test_bin_dir_prefers_the_environment(tmp_path: Path) -> None:
    assert binaries.bin_dir_from_env({binaries.BIN_ENV: str(tmp_path)}) == tmp_path
    assert binaries.bin_dir_from_env({}) == binaries.default_bin_dir()
    assert binaries.K8S_VERSION in binaries.default_bin_dir().name


def test_missing_binaries_lists_what_is_absent_or_not_executable(tmp_path: Path) -> None:
    (tmp_path / "etcd").write_text("#!/bin/sh\n")
    (tmp_path / "etcd").chmod(0o755)
    (tmp_path / "kubectl").write_text("not executable")
    assert binaries.missing_binaries(tmp_path) == ["kube-apiserver", "kube-controller-manager", "kubectl"]


def test_makefile_pins_match_the_harness() -> None:
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert f"K8S_VERSION ?= {binaries.K8S_VERSION}\n" in makefile
    assert f"ETCD_VERSION ?= {binaries.ETCD_VERSION}\n" in makefile


def test_stop_ends_the_process_group_and_a_stale_record_is_not_running(tmp_path: Path) -> None:
    # The child spawns a grandchild; stopping the record must end both (process group).
    script = "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"
    record = processes.spawn(
        "sleeper", [sys.executable, "-c", script], tmp_path / "log", die_with_parent=True
    )
    assert processes.is_running(record)
    # Same pid, other start time: a reused pid is never mistaken for ours.
    assert not processes.is_running(record.model_copy(update={"start_ticks": record.start_ticks + 1}))
    processes.stop(record, grace=5)
    assert not processes.is_running(record)
    eventually(lambda: not _group_members(record.pid), what="the process group to be empty", timeout_s=10)


def _group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def test_up_state_round_trips(tmp_path: Path) -> None:
    record = processes.ProcessRecord(name="etcd", pid=1, start_ticks=2, executable="/e", log="/l")
    state = UpState(
        state_dir=str(tmp_path), kubeconfig="/k", server="https://127.0.0.1:1", processes=[record]
    )
    assert UpState.model_validate_json(state.model_dump_json()) == state

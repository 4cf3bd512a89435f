"""The bench's cluster side: the test control plane with an audit log, the CRD, the operator's
cluster-wide RBAC and a ServiceAccount kubeconfig, and the operator itself as a subprocess.

Reuses tests/harness (the Go-built etcd + kube-apiserver + kube-controller-manager on loopback).
Everything it starts is stopped by `Bench.close()` (the control plane also dies with this process).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from tests.harness.binaries import HOW_TO_BUILD, bin_dir_from_env, missing_binaries
from tests.harness.controlplane import ControlPlane
from tests.harness.handle import KubeControlPlane
from tests.support.ports import free_port

from ..processes import CPROFILE_DIR_ENV
from .audit import audit_policy

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "actormesh.io_actormeshes.yaml"
OPERATOR_NAMESPACE = "actormesh-system"
SERVICE_ACCOUNT = "actormesh-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{SERVICE_ACCOUNT}"
_RBAC_KINDS = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"}


class Bench:
    """A control plane with the operator's RBAC installed; `start_operator()` runs the operator."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.audit_log = work / "audit.log"
        policy = work / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(audit_policy([OPERATOR_USER])))
        bin_dir = bin_dir_from_env()
        missing = missing_binaries(bin_dir)
        if missing:
            raise SystemExit(f"missing {', '.join(missing)} in {bin_dir}: {HOW_TO_BUILD}")
        self._plane = ControlPlane(
            bin_dir,
            work / "k8s",
            apiserver_args=[
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-mode=blocking",
                # Six Services per mesh: the harness's /24 runs out of ClusterIPs at ~40 meshes (the
                # last flag wins). Inside 198.18.0.0/15, as every address of ours must be.
                "--service-cluster-ip-range=198.18.0.0/16",
            ],
        )
        self.kube: KubeControlPlane | None = None
        self.operator: subprocess.Popen[bytes] | None = None
        self.operator_log = work / "operator.log"

    def start(self, crd_file: Path = CRD_FILE) -> KubeControlPlane:
        """`crd_file`: the CRD of the operator measured (an older operator rejects newer spec fields,
        which the API server would default in)."""
        self.kube = kube = self._plane.start()
        kube.kubectl("apply", "--server-side", "-f", str(crd_file))
        established = '{.status.conditions[?(@.type=="Established")].status}'
        deadline = time.monotonic() + 60
        while (
            kube.kubectl(
                "get", "crd/actormeshes.actormesh.io", "-o", f"jsonpath={established}", check=False
            ).stdout
            != "True"
        ):
            if time.monotonic() > deadline:
                raise SystemExit("the ActorMesh CRD was not established within 60 s")
            time.sleep(0.2)
        rendered = kube.kubectl("kustomize", str(ROOT / "config" / "default")).stdout
        wanted = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] in _RBAC_KINDS]
        kube.kubectl(
            "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": wanted})
        )
        return kube

    def control_plane_pids(self) -> dict[str, int]:
        """etcd, kube-apiserver, kube-controller-manager: name → pid."""
        return {record.name: record.pid for record in self._plane.records}

    def operator_kubeconfig(self) -> Path:
        assert self.kube is not None
        token = self.kube.kubectl(
            "create", "token", SERVICE_ACCOUNT, "-n", OPERATOR_NAMESPACE, "--duration=4h"
        ).stdout.strip()
        admin = yaml.safe_load(self.kube.kubeconfig.read_text())
        cluster = admin["clusters"][0]
        config: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": "operator", "user": {"token": token}}],
            "contexts": [{"name": "operator", "context": {"cluster": cluster["name"], "user": "operator"}}],
            "current-context": "operator",
        }
        path = self.work / "operator.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def start_operator(self, pythonpath: str | None = None) -> int:
        """Run `actormesh_operator.main` cluster-wide as the ServiceAccount; wait for its /healthz.

        `pythonpath` puts another checkout's operator first on the path (the "before" figures)."""
        health = free_port()
        env = {
            **os.environ,
            "ACTORMESH_OPERATOR_METRICS_PORT": "0",
            "ACTORMESH_OPERATOR_HEALTH_PORT": str(health),
            "ACTORMESH_OPERATOR_LOG_FORMAT": "text",
        }
        env.pop("KUBECONFIG", None)
        if pythonpath:
            env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
        argv = [
            sys.executable,
            "-m",
            "actormesh_operator.main",
            "--kubeconfig",
            str(self.operator_kubeconfig()),
        ]
        if profile_dir := os.environ.get(CPROFILE_DIR_ENV):
            # Same switch as the mesh bench's processes: CPU-time cProfile, written when it stops.
            Path(profile_dir).mkdir(parents=True, exist_ok=True)
            argv[1:3] = [
                "-m",
                "bench.cpuprofile",
                str(Path(profile_dir) / "operator.prof"),
                "actormesh_operator.main",
            ]
        log = self.operator_log.open("ab")
        self.operator = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.operator.poll() is not None:
                raise SystemExit(
                    f"the operator exited with {self.operator.returncode}: see {self.operator_log}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{health}/healthz", timeout=1):
                    return self.operator.pid
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"the operator did not become healthy within 60 s: see {self.operator_log}")

    def close(self) -> None:
        if self.operator is not None and self.operator.poll() is None:
            self.operator.send_signal(signal.SIGTERM)
            try:
                self.operator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.operator.kill()
                self.operator.wait()
        self._plane.stop()


def new_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="actormesh-opbench-"))

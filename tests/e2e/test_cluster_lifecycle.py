"""`make cluster-up` / `make cluster-down` leave nothing behind, even when the node crashed first.

Marker `cluster_lifecycle`: it brings its own cluster up and down, so `make e2e` runs it after the
suite's cluster is gone (only one cluster fits on a machine).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import missing_component
from tests.e2e.test_node import web_deployment
from tests.harness.cluster import layout
from tests.harness.cluster.down import leftovers
from tests.harness.cluster.state import load
from tests.harness.handle import KubeControlPlane
from tests.support.eventually import eventually

pytestmark = [pytest.mark.cluster_lifecycle, pytest.mark.timeout(900)]

CRASHED = ("kubelet", "containerd", "kube-apiserver", "kube-proxy")


def cluster_cli(*args: str, state: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, layout.STATE_ENV: str(state)}
    return subprocess.run(
        [sys.executable, "-m", "tests.harness.cluster", *args],
        capture_output=True, text=True, env=env, timeout=timeout, check=False,
    )  # fmt: skip


def test_down_after_a_crash_removes_everything_and_a_second_down_is_a_no_op(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        missing_component("root", "the sealed node needs root (routes, iptables, mounts)")
    if load(layout.state_file()) is not None:
        pytest.fail(f"a cluster is already recorded in {layout.state_file()}: run `make cluster-down` first")
    dirs = layout.NodeDirs.default()
    assert leftovers(dirs.root, dirs.run) == [], "the host is not clean before the test"
    state_path = tmp_path / "cluster.json"

    up = cluster_cli("up", state=state_path)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert up.stdout.strip().splitlines()[-1] == f"export KUBECONFIG={dirs.admin_kubeconfig}"
        again = cluster_cli("up", state=state_path, timeout=60)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already running" in again.stdout, again.stdout

        kube = KubeControlPlane(dirs.admin_kubeconfig, "", layout.NodeDirs.default().k8s_bin, tmp_path)
        kube.kubectl("apply", "-f", "-", input=_as_list(web_deployment(replicas=2)))
        eventually(
            lambda: (
                kube.kubectl("get", "pods", "-l", "app=web", "-o", "name").stdout.count("pod/") == 2
                and "false"
                not in kube.kubectl(
                    "get",
                    "pods",
                    "-l",
                    "app=web",
                    "-o",
                    "jsonpath={.items[*].status.containerStatuses[*].ready}",
                ).stdout
            ),
            what="two web pods Running",
            timeout_s=120,
            interval_s=1.0,
        )
        state = load(state_path)
        assert state is not None
        for record in state.processes:
            if record.name in CRASHED:
                os.kill(record.pid, signal.SIGKILL)
    finally:
        down = cluster_cli("down", state=state_path)
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(dirs.root, dirs.run) == []
    assert not state_path.exists()
    second = cluster_cli("down", state=state_path, timeout=60)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing to do" in second.stdout, second.stdout


def _as_list(items: list[dict[str, object]]) -> str:
    import json

    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})

"""The control plane leaves no process behind: `make k8s-up`/`k8s-down`, and an interrupted test run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import missing_component
from tests.harness.binaries import HOW_TO_BUILD, bin_dir_from_env, missing_binaries
from tests.harness.controlplane import ControlPlane
from tests.harness.readiness import ComponentError
from tests.support.eventually import eventually

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]

REPO = Path(__file__).resolve().parents[2]

# A stand-in for a pytest worker: holds a control plane, reports its pids, waits to be interrupted.
# The holder is interrupted as from a terminal. A process started with SIGINT ignored (what a shell
# does to a background job without job control, e.g. `nohup ... &`) inherits that, and Python then
# installs no KeyboardInterrupt handler: Ctrl-C must be restored first, or SIGINT would do nothing.
_HOLDER = """
import json, signal, sys, time
from pathlib import Path
from tests.harness.controlplane import ControlPlane

signal.signal(signal.SIGINT, signal.default_int_handler)

plane = ControlPlane(Path(sys.argv[1]))
with plane:
    print(json.dumps({"pids": [r.pid for r in plane.records], "state_dir": str(plane.state_dir)}), flush=True)
    time.sleep(600)
"""


@pytest.fixture
def bin_dir() -> Path:
    path = bin_dir_from_env()
    if missing_binaries(path):
        missing_component(f"Kubernetes test binaries in {path}", HOW_TO_BUILD)
    return path


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in {"Z", "X"}


@pytest.fixture
def python_env(bin_dir: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {**os.environ, "ACTORMESH_K8S_BIN": str(bin_dir), "ACTORMESH_K8S_STATE": str(tmp_path / "up.json")}
    yield env
    # If an assertion failed half-way, still stop whatever `up` recorded.
    if (tmp_path / "up.json").exists():
        subprocess.run([sys.executable, "-m", "tests.harness.controlplane", "down"], env=env, cwd=REPO)


def _run(env: dict[str, str], verb: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "tests.harness.controlplane", verb]
    return subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=240, check=True)


def test_up_prints_kubeconfig_and_down_stops_exactly_its_processes(
    python_env: dict[str, str], bin_dir: Path
) -> None:
    out = _run(python_env, "up").stdout.strip().splitlines()
    assert out[-1].startswith("export KUBECONFIG=")
    kubeconfig = out[-1].removeprefix("export KUBECONFIG=")
    state = json.loads(Path(python_env["ACTORMESH_K8S_STATE"]).read_text())
    pids = [p["pid"] for p in state["processes"]]
    assert len(pids) == 3
    assert all(_alive(pid) for pid in pids)

    # A second `up` reuses the running control plane instead of starting another.
    assert _run(python_env, "up").stdout.strip().splitlines()[-1] == out[-1]
    kubectl = [str(bin_dir / "kubectl"), f"--kubeconfig={kubeconfig}", "get", "namespace", "default"]
    subprocess.run(kubectl, capture_output=True, check=True, timeout=60, env={**python_env, "KUBERC": "off"})

    _run(python_env, "down")
    eventually(
        lambda: not any(_alive(pid) for pid in pids), what="the control plane processes to exit", timeout_s=30
    )
    assert not Path(state["state_dir"]).exists()
    assert not Path(python_env["ACTORMESH_K8S_STATE"]).exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_interrupted_holder_leaves_no_process_behind(bin_dir: Path, sig: signal.Signals) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(bin_dir)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline()
        assert line, "the holder exited before its control plane was up"
        started = json.loads(line)
        assert len(started["pids"]) == 3
        holder.send_signal(sig)
        holder.wait(timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    eventually(
        lambda: not any(map(_alive, started["pids"])),
        what=f"all components to exit after {sig.name}",
        timeout_s=30,
    )
    if sig is signal.SIGKILL:
        # A killed holder cannot clean its files (the kernel still killed its processes).
        shutil.rmtree(started["state_dir"], ignore_errors=True)
    else:
        assert not Path(started["state_dir"]).exists()


def test_a_component_failing_at_startup_is_reported_and_nothing_is_left(
    bin_dir: Path, tmp_path: Path
) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("etcd", "kube-controller-manager", "kubectl"):
        (fake / name).symlink_to(bin_dir / name)
    (fake / "kube-apiserver").write_text("#!/bin/sh\necho 'boom: cannot start' >&2\nexit 3\n")
    (fake / "kube-apiserver").chmod(0o755)
    plane = ControlPlane(fake)
    failed = r"(?s)kube-apiserver exited during startup.*boom: cannot start"
    with pytest.raises(ComponentError, match=failed), plane:
        pytest.fail("the control plane must not start without an API server")
    assert plane.records == []
    assert not plane.state_dir.exists()
    etcd_left = [p for p in Path("/proc").glob("[0-9]*/cmdline") if str(plane.state_dir) in _cmdline(p)]
    assert etcd_left == []


def _cmdline(path: Path) -> str:
    try:
        return path.read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""

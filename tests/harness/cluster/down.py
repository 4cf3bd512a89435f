"""`make cluster-down`: undo exactly what `up` recorded, in an order that works after any crash.

Order: the kubelet stops first (so it cannot restart pods), then every pod sandbox is removed through
containerd (which also releases the pods' netns and IPs), then the remaining processes, leftover
shims and container processes, mounts, cgroups, iptables/ipsets, links, routes, the `lo` address,
sysctls, directories, the state file. Every step tolerates "already gone": a second `down` is a no-op.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

from tests.harness import processes
from tests.harness.cluster import hostnet, layout
from tests.harness.cluster.shellrun import run
from tests.harness.cluster.state import ClusterState, load

# Stopped before the pod sandboxes are removed; the rest after.
_NODE_AGENTS = ("kube-router", "kube-proxy", "kubelet")


def down(state_path: Path) -> int:
    state = load(state_path)
    if state is None:
        print("# no cluster recorded by cluster-up: nothing to do")
        return 0
    teardown(state)
    state_path.unlink(missing_ok=True)
    problems = leftovers(Path(state.root), Path(state.run))
    if problems:
        print("cluster-down left behind:\n  " + "\n  ".join(problems))
        return 1
    print("# cluster down; nothing left behind")
    return 0


def teardown(state: ClusterState) -> None:
    by_name = {r.name: r for r in state.processes}
    for name in _NODE_AGENTS:
        if name in by_name:
            processes.stop(by_name[name], grace=10.0)
    root, run_dir = Path(state.root), Path(state.run)
    if "containerd" in by_name and processes.is_running(by_name["containerd"]):
        _remove_sandboxes(root, run_dir)
    for record in reversed(state.processes):
        processes.stop(record, grace=10.0)
    _kill_strays(root)
    _unmount_under((root, run_dir))
    _remove_cgroups()
    hostnet.remove_iptables()
    hostnet.remove_ipsets()
    hostnet.remove_links()
    hostnet.remove_routes_and_address()
    if "sysctls" in state.made:
        hostnet.restore_sysctls(state.sysctls)
    _unmount_under((root, run_dir))
    for directory in (root, run_dir):
        shutil.rmtree(directory, ignore_errors=True)
    _remove_container_log_links(root)
    for name, path in layout.NodeDirs.default().host_paths_outside.items():
        if name in state.made:
            shutil.rmtree(path, ignore_errors=True)


def _remove_container_log_links(root: Path) -> None:
    # The kubelet links /var/log/containers/<pod>_<ns>_<ctr>-<id>.log to our pod-logs dir.
    links = Path("/var/log/containers")
    if links.is_dir():
        for link in links.iterdir():
            with contextlib.suppress(OSError):
                if link.is_symlink() and os.readlink(link).startswith(f"{root}/"):
                    link.unlink()


def _remove_sandboxes(root: Path, run_dir: Path) -> None:
    node_bin = layout.node_bin_dir()
    endpoint = f"unix://{run_dir / 'containerd' / 'containerd.sock'}"
    crictl = [
        str(node_bin / "crictl"),
        f"--runtime-endpoint={endpoint}",
        f"--image-endpoint={endpoint}",
        "--timeout=30s",
    ]
    # All at once (crictl works through them in parallel), then one by one for any that resisted.
    run([*crictl, "rmp", "-fa"], check=False, timeout=180)
    for pod in run([*crictl, "pods", "-q"], check=False, timeout=60).split():
        run([*crictl, "rmp", "-f", pod], check=False, timeout=60)


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def _kubepods_pids() -> set[int]:
    pids: set[int] = set()
    for controller in layout.CGROUP_ROOT.iterdir():
        base = controller / layout.KUBEPODS_CGROUP
        if not base.is_dir():
            continue
        for procs in base.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(p) for p in procs.read_text().split())
    return pids


def _kill_strays(root: Path) -> None:
    """Shims of our containerd (by executable path) and container processes (in our kubepods cgroups)."""
    node_bin = str(layout.node_bin_dir())
    for _ in range(3):
        strays = {
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and _exe(int(p.name)).startswith(node_bin)
        }
        strays |= _kubepods_pids()
        strays.discard(os.getpid())
        if not strays:
            return
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)


def _mountpoints_under(roots: tuple[Path, ...]) -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == str(r) or point.startswith(f"{r}/") for r in roots):
            points.append(point)
    return points


def _unmount_under(roots: tuple[Path, ...]) -> None:
    for _ in range(5):
        points = _mountpoints_under(roots)
        if not points:
            return
        # Deepest first; lazy so a busy mount (a dying process) cannot block teardown.
        for point in sorted(points, key=len, reverse=True):
            run(["umount", "-l", point], check=False)


def _remove_cgroups() -> None:
    for controller in layout.CGROUP_ROOT.iterdir():
        base = controller / layout.KUBEPODS_CGROUP
        if not base.is_dir():
            continue
        for directory in sorted(
            (p for p in base.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        ):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            base.rmdir()


def leftovers(root: Path, run_dir: Path) -> list[str]:
    """Everything of the node still on the host; empty after a clean teardown (tests use this)."""
    found = hostnet.leftovers()
    node_bin = str(layout.node_bin_dir())
    k8s_bin = str(layout.NodeDirs.default().k8s_bin)
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            exe = _exe(int(p.name))
            if exe.startswith(node_bin) or (exe.startswith(k8s_bin) and _is_node_process(int(p.name), root)):
                found.append(f"process {p.name} {exe}")
    found += [f"mount {m}" for m in _mountpoints_under((root, run_dir))]
    found += [
        f"cgroup {c}/{layout.KUBEPODS_CGROUP}"
        for c in layout.CGROUP_ROOT.iterdir()
        if (c / layout.KUBEPODS_CGROUP).exists()
    ]
    found += [f"directory {d}" for d in (root, run_dir) if d.exists()]
    netns = Path("/run/netns")
    if netns.is_dir():
        found += [f"netns {n.name}" for n in netns.iterdir() if n.name.startswith("cni-")]
    return found


def _is_node_process(pid: int, root: Path) -> bool:
    # Other engineers' control planes run the same etcd/apiserver binaries; ours mention our root.
    try:
        return str(root) in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return False

"""Runs a real etcd + kube-apiserver + kube-controller-manager on loopback for tests and for a shell.

In-process use (the `kube_control_plane` fixture in tests/support/k8s.py):

    with ControlPlane(bin_dir) as cp:        # yields a KubeControlPlane
        cp.kubectl("get", "ns")

Shell use (`make k8s-up` / `make k8s-down`): `python -m tests.harness.controlplane up|down`; see
tests/harness/shell.py. Components run in their own process groups; in-process they also die with the
Python process, and `stop()` runs on normal exit, exceptions, atexit and SIGTERM.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, TracebackType

from tests.harness import components, processes
from tests.harness.components import Layout, Ports
from tests.harness.handle import KubeControlPlane
from tests.harness.kubeconfig import write_kubeconfig
from tests.harness.pki import Pki, generate_pki
from tests.harness.processes import ProcessRecord
from tests.harness.readiness import ComponentError, client_context, http_ok, wait_until_healthy
from tests.support.ports import free_ports

_PORT_CLASH_RETRIES = 3


class ControlPlane:
    """Owns the processes and (unless given one) the temp state directory of one control plane."""

    def __init__(
        self,
        bin_dir: Path,
        state_dir: Path | None = None,
        *,
        detached: bool = False,
        timeout: float = 180.0,
        apiserver_args: Sequence[str] = (),
    ) -> None:
        self.bin_dir = bin_dir
        self._owns_state = state_dir is None
        self.state_dir = state_dir or Path(tempfile.mkdtemp(prefix="actormesh-k8s-"))
        # detached: the processes must outlive this Python process (`make k8s-up`).
        self.detached = detached
        self.timeout = timeout
        self.apiserver_args = tuple(apiserver_args)
        self.records: list[ProcessRecord] = []

    def start(self) -> KubeControlPlane:
        pki = generate_pki(self.state_dir / "pki")
        for attempt in range(1, _PORT_CLASH_RETRIES + 1):
            try:
                return self._start_once(pki)
            except ComponentError as exc:
                self._stop_processes()
                # A free port can be taken between picking and binding; only that is worth a retry.
                if not exc.port_clash or attempt == _PORT_CLASH_RETRIES:
                    raise
            except BaseException:
                self._stop_processes()
                raise
        raise AssertionError("unreachable")

    def _start_once(self, pki: Pki) -> KubeControlPlane:
        ports = Ports(*free_ports(4, components.LOOPBACK))
        layout = Layout(bin_dir=self.bin_dir, state_dir=self.state_dir, ports=ports, pki=pki)
        shutil.rmtree(self.state_dir / "etcd", ignore_errors=True)

        etcd = self._spawn("etcd", components.etcd_argv(layout))
        wait_until_healthy(etcd, lambda: http_ok(f"{layout.etcd_url}/health"), self.timeout)

        admin_tls = client_context(pki.ca, pki.admin)
        apiserver = self._spawn("kube-apiserver", components.apiserver_argv(layout, self.apiserver_args))
        wait_until_healthy(apiserver, lambda: http_ok(f"{layout.server}/readyz", admin_tls), self.timeout)

        write_kubeconfig(layout.admin_kubeconfig, layout.server, pki.ca.cert, pki.admin, "admin")
        write_kubeconfig(
            layout.controller_manager_kubeconfig,
            layout.server,
            pki.ca.cert,
            pki.controller_manager,
            "system:kube-controller-manager",
        )
        kcm = self._spawn("kube-controller-manager", components.controller_manager_argv(layout))
        kcm_health = f"https://{components.LOOPBACK}:{ports.controller_manager}/healthz"
        wait_until_healthy(kcm, lambda: http_ok(kcm_health, client_context()), self.timeout)
        return KubeControlPlane(
            kubeconfig=layout.admin_kubeconfig,
            server=layout.server,
            bin_dir=self.bin_dir,
            state_dir=self.state_dir,
        )

    def _spawn(self, name: str, argv: list[str]) -> ProcessRecord:
        log = self.state_dir / f"{name}.log"
        record = processes.spawn(name, argv, log, die_with_parent=not self.detached)
        self.records.append(record)
        return record

    def _stop_processes(self) -> None:
        # Reverse start order: the controller manager and API server go before their storage.
        while self.records:
            processes.stop(self.records.pop())

    def stop(self) -> None:
        """Stop every process this object started and remove the state dir if it created it."""
        self._stop_processes()
        if self._owns_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> KubeControlPlane:
        atexit.register(self.stop)
        _exit_on_sigterm()
        try:
            return self.start()
        except BaseException:
            self.stop()
            atexit.unregister(self.stop)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        atexit.unregister(self.stop)


def _raise_system_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _exit_on_sigterm() -> None:
    """Turn a default (fatal, atexit-skipping) SIGTERM into SystemExit so cleanup code runs."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_system_exit)


if __name__ == "__main__":
    from tests.harness.shell import main

    sys.exit(main(sys.argv[1:]))

"""Fixtures for the operator's integration tests: the CRD, and the operator running in-process.

Each test gets its own namespace (`kube_namespace`) and its own operator instance watching only that
namespace, in a background thread with its own event loop (the tests themselves stay synchronous and
use kubectl). The operator authenticates as the `actormesh-operator` ServiceAccount bound to the Role
from config/namespaced, so every test also proves the shipped least-privilege RBAC is enough.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from actormesh_operator.main import run
from actormesh_operator.reconcile.kube import KubeCredentials, load_kubeconfig
from actormesh_operator.settings import OperatorSettings
from tests.support.eventually import eventually
from tests.support.k8s import KubeControlPlane

ROOT = Path(__file__).resolve().parents[3]
NAMESPACED_INSTALL = ROOT / "config" / "namespaced"
SERVICE_ACCOUNT = "actormesh-operator"


@pytest.fixture
def crd(actormesh_crd: KubeControlPlane) -> KubeControlPlane:
    return actormesh_crd


def install_namespaced_rbac(kube: KubeControlPlane, namespace: str) -> str:
    """Apply config/namespaced's ServiceAccount, Role and RoleBinding in `namespace`; return a token."""
    rendered = kube.kubectl("kustomize", str(NAMESPACED_INSTALL)).stdout
    wanted = []
    for doc in yaml.safe_load_all(rendered):
        if doc and doc["kind"] in {"ServiceAccount", "Role", "RoleBinding"}:
            doc["metadata"]["namespace"] = namespace
            for subject in doc.get("subjects") or []:
                subject["namespace"] = namespace
            wanted.append(doc)
    kube.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": wanted}))
    return kube.kubectl("create", "token", SERVICE_ACCOUNT, "-n", namespace, "--duration=2h").stdout.strip()


def token_credentials(kube: KubeControlPlane, token: str, namespace: str | None = None) -> KubeCredentials:
    """Credentials for this control plane with a ServiceAccount token instead of the admin's certificate."""
    admin = load_kubeconfig(kube.kubeconfig)
    return KubeCredentials(
        server=admin.server, ca_path=admin.ca_path, ca_data=admin.ca_data, token=token, namespace=namespace
    )


class OperatorThread:
    """One operator (namespaced mode) on its own event loop in a daemon thread; `stop()` is graceful."""

    def __init__(self, settings: OperatorSettings, creds: KubeCredentials) -> None:
        self.settings = settings
        self.creds = creds
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"operator-{settings.namespace}", daemon=True)

    def _main(self) -> None:
        try:
            operator = run(
                self.settings,
                self.creds,
                stop_flag=self._stop,
                ready_flag=self._ready,
                listen_host="127.0.0.1",
            )
            asyncio.run(operator)
        except BaseException as exc:  # reported to the test by start()/stop()
            self._error = exc

    def start(self) -> OperatorThread:
        self._thread.start()
        eventually(
            lambda: self._ready.is_set() or self._error is not None, what="operator ready", timeout_s=60
        )
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "operator did not stop within 60s"
        if self._error is not None:
            raise self._error


class OperatorFactory:
    """Starts operators for one namespace with the namespaced RBAC's credentials; stops them at the end."""

    def __init__(self, kube: KubeControlPlane, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.creds = token_credentials(kube, install_namespaced_rbac(kube, namespace), namespace)
        self.running: list[OperatorThread] = []

    def start(self, creds: KubeCredentials | None = None, **overrides: Any) -> OperatorThread:
        """An operator for this namespace; `namespace=None` in overrides runs it cluster-wide."""
        values: dict[str, Any] = {
            "namespace": self.namespace,
            "metrics_port": 0,
            "health_port": 0,
            "log_format": "text",
            # Fast resync and retries so recovery paths finish within a test's deadline.
            "resync_interval_s": 2.0,
            "resync_jitter_s": 0.5,
            "retry_backoff_s": 0.5,
            "retry_backoff_max_s": 2.0,
        }
        settings = OperatorSettings(**{**values, **overrides})
        operator = OperatorThread(settings, creds or self.creds).start()
        self.running.append(operator)
        return operator

    def stop_all(self) -> None:
        while self.running:
            self.running.pop().stop()


@pytest.fixture
def operators(crd: KubeControlPlane, kube_namespace: str) -> Iterator[OperatorFactory]:
    factory = OperatorFactory(crd, kube_namespace)
    try:
        yield factory
    finally:
        factory.stop_all()

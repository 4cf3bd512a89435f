"""Where the Go-built control-plane binaries live, and which of them are missing.

Used by tests/harness/controlplane.py and the pytest fixtures in tests/support/k8s.py. The pins below
must match the Makefile (K8S_VERSION, ETCD_VERSION), which passes the cache dir as ACTORMESH_K8S_BIN.
"""

from __future__ import annotations

import os
from pathlib import Path

K8S_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"
BIN_ENV = "ACTORMESH_K8S_BIN"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
HOW_TO_BUILD = (
    "run `make k8s-bin` to build kube-apiserver, kube-controller-manager, kubectl and etcd from Go "
    "source (needs Go >= 1.26; the first build takes about 10 minutes on 2 cores, later runs are cached)"
)


def default_bin_dir() -> Path:
    return Path.home() / ".cache" / "actormesh" / f"k8s-{K8S_VERSION}-etcd-{ETCD_VERSION}"


def bin_dir_from_env(environ: dict[str, str] | None = None) -> Path:
    """ACTORMESH_K8S_BIN if set and non-empty, else the cache dir `make k8s-bin` fills by default."""
    env = os.environ if environ is None else environ
    value = env.get(BIN_ENV, "").strip()
    return Path(value).expanduser() if value else default_bin_dir()


def missing_binaries(bin_dir: Path) -> list[str]:
    return [name for name in BINARIES if not os.access(bin_dir / name, os.X_OK)]

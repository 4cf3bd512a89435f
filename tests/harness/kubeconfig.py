"""Writes self-contained kubeconfig files (certificates embedded) for the test control plane.

Called by tests/harness/controlplane.py: one for the admin user (tests, `make k8s-up`) and one for
kube-controller-manager. Embedding the PEM data keeps each file usable after it is copied elsewhere.
"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from tests.harness.pki import CertPair


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def kubeconfig_dict(server: str, ca: Path, client: CertPair, user: str) -> dict[str, object]:
    name = "actormesh-test"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(client.cert),
                    "client-key-data": _b64(client.key),
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user, "namespace": "default"}}],
        "current-context": name,
        "preferences": {},
    }


def write_kubeconfig(path: Path, server: str, ca: Path, client: CertPair, user: str) -> Path:
    path.write_text(yaml.safe_dump(kubeconfig_dict(server, ca, client, user), sort_keys=False))
    path.chmod(0o600)
    return path

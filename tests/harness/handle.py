"""`KubeControlPlane`: what a test (or a shell user) gets from a running control plane.

Returned by tests/harness/controlplane.py and yielded by the `kube_control_plane` fixture in
tests/support/k8s.py. It carries paths and a `kubectl` runner pinned to this control plane only.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


class KubectlError(subprocess.CalledProcessError):
    """A kubectl call failed; unlike its base class, the message includes kubectl's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {self.stderr}\nstdout: {self.output}"


@dataclass(frozen=True)
class KubeControlPlane:
    kubeconfig: Path
    server: str
    bin_dir: Path
    state_dir: Path

    @property
    def kubectl_path(self) -> Path:
        return self.bin_dir / "kubectl"

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl against this control plane; raise KubectlError on failure if `check`.

        The user's ~/.kube (config, discovery cache, kuberc) is never read or written.
        """
        argv = [
            str(self.kubectl_path),
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.state_dir / 'kubectl-cache'}",
            *args,
        ]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "KUBERC": "off"}
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
        return result

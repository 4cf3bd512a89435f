"""`E2ECluster`: the cluster an e2e test drives (the sealed node from `make cluster-up`, or kind).

Built by the `cluster` fixture in tests/e2e/conftest.py from E2E_KUBECONFIG. Adds to KubeControlPlane's
`kubectl` what e2e tests need again and again: JSON reads, exec in a pod, waiting with a deadline.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

from tests.harness.handle import KubeControlPlane
from tests.support.eventually import eventually


@dataclass(frozen=True)
class E2ECluster:
    kube: KubeControlPlane
    # True on the sealed node from `make cluster-up`: the host can reach ClusterIPs and pod IPs.
    sealed_node: bool

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        return self.kube.kubectl(*args, input=input, check=check, timeout=timeout)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, doc: dict[str, Any] | list[dict[str, Any]], namespace: str | None = None) -> None:
        items = doc if isinstance(doc, list) else [doc]
        ns = ["-n", namespace] if namespace else []
        self.kubectl(
            "apply", *ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        )

    def exec(
        self, namespace: str, pod: str, *command: str, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        return self.kubectl("exec", "-n", namespace, pod, "--", *command, check=False, timeout=timeout)

    def pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        args = ["pods", "-n", namespace] + (["-l", selector] if selector else [])
        items: list[dict[str, Any]] = self.get(*args)["items"]
        return items

    def wait_pods_ready(self, namespace: str, selector: str = "", timeout: float = 180.0) -> None:
        def ready() -> bool:
            pods = self.pods(namespace, selector)
            return bool(pods) and all(
                pod_ready(p) for p in pods if p["metadata"].get("deletionTimestamp") is None
            )

        eventually(
            ready, what=f"pods {selector or '(all)'} in {namespace} Ready", timeout_s=timeout, interval_s=1.0
        )

    def describe_failure(self, namespace: str) -> str:
        """Pods, events and container logs of a namespace, for a failure message."""
        parts = [
            self.kubectl("get", "pods,svc,netpol,pvc", "-n", namespace, "-o", "wide", check=False).stdout
        ]
        parts.append(
            self.kubectl("get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False).stdout[
                -4000:
            ]
        )
        for pod in self.pods(namespace):
            name = pod["metadata"]["name"]
            log = self.kubectl("logs", "-n", namespace, name, "--all-containers", "--tail=30", check=False)
            parts.append(f"--- {name}\n{log.stdout[-3000:]}{log.stderr[-500:]}")
        return "\n".join(parts)


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

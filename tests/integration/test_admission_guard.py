"""config/policies: the optional ValidatingAdmissionPolicy on the real API server.

The shipped policy, binding and parameter ConfigMap are installed as rendered by kustomize, with only
what keeps the test from touching other tests changed: unique cluster-scoped names, the binding narrowed
to this test's namespace, and the parameters read from that namespace. Then an image outside the allowed
prefixes, a look-alike registry, a priority class and a toleration are refused with messages naming the
field, and an allowed mesh is admitted; switching a parameter on admits what it allows.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.k8s import KubeControlPlane, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]

POLICIES = Path(__file__).resolve().parents[2] / "config" / "policies"


def _mesh(name: str, image: str = "actormesh/actormesh:0.1.0", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "actormesh.io/v1alpha1",
        "kind": "ActorMesh",
        "metadata": {"name": name},
        "spec": {"image": image, **spec},
    }


@pytest.fixture(scope="module")
def guarded(actormesh_crd: KubeControlPlane) -> Iterator[tuple[KubeControlPlane, str]]:
    """The guard installed once for this module, in its own namespace. Installed one object at a time,
    parameters first: recreating all three in one batch hits kubernetes/kubernetes#133827 (the binding
    never finds its parameters), which churn between tests would trigger."""
    kube = actormesh_crd
    suffix = uuid.uuid4().hex[:8]
    ns = f"test-guard-{suffix}"
    kube.kubectl("create", "namespace", ns)
    docs = [d for d in yaml.safe_load_all(kube.kubectl("kustomize", str(POLICIES)).stdout) if d]
    by_kind = {d["kind"]: d for d in docs}
    assert sorted(by_kind) == ["ConfigMap", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    policy, binding, params = (
        by_kind["ValidatingAdmissionPolicy"],
        by_kind["ValidatingAdmissionPolicyBinding"],
        by_kind["ConfigMap"],
    )
    policy["metadata"]["name"] += f"-{suffix}"
    binding["metadata"]["name"] += f"-{suffix}"
    binding["spec"]["policyName"] = policy["metadata"]["name"]
    binding["spec"]["paramRef"]["namespace"] = ns
    binding["spec"]["matchResources"] = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}
    }
    params["metadata"]["namespace"] = ns
    params["data"]["allowedImagePrefixes"] = "registry.example.com/, ghcr.io/acme/actormesh"
    try:
        for doc in (params, policy, binding):
            kube.kubectl("apply", "-f", "-", input=json.dumps(doc))
        # The API server picks a new policy and its parameters up within seconds: wait until it refuses
        # a bad image for that reason (before the parameters are seen it refuses everything).
        wait_for(
            "the policy is enforced with its parameters",
            lambda: (
                "not allowed: docker.io/evil:1" in _create(kube, ns, _mesh("probe", "docker.io/evil:1"))[1]
            ),
        )
        yield kube, ns
    finally:
        for kind, doc in (
            ("validatingadmissionpolicybinding", binding),
            ("validatingadmissionpolicy", policy),
        ):
            kube.kubectl("delete", kind, doc["metadata"]["name"], "--wait=false", check=False)
        kube.kubectl("delete", "namespace", ns, "--wait=false", check=False)


NO_PARAMS = "no params found"
PARAMS_SETTLE_S = 30.0


def _create_once(kube: KubeControlPlane, ns: str, body: dict[str, Any]) -> tuple[int, str]:
    result = kube.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(body), check=False)
    if result.returncode == 0:
        kube.kubectl("delete", "actormesh", body["metadata"]["name"], "-n", ns, "--wait=false", check=False)
    return result.returncode, result.stderr


def _create(kube: KubeControlPlane, ns: str, body: dict[str, Any]) -> tuple[int, str]:
    """Create (then delete) `body`. While the API server's parameter informer catches up after a policy
    change it denies with "no params found" (fail closed); that is retried, every other answer returned."""
    deadline = time.monotonic() + PARAMS_SETTLE_S
    while True:
        code, err = _create_once(kube, ns, body)
        if NO_PARAMS not in err or time.monotonic() > deadline:
            return code, err
        time.sleep(0.5)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(
            {"image": "docker.io/library/evil:1"}, "not allowed: docker.io/library/evil:1", id="image"
        ),
        pytest.param(
            {"image": "registry.example.com.attacker.io/actormesh:1"},
            "not allowed: registry.example.com.attacker.io/actormesh:1",
            id="look-alike-registry",
        ),
        pytest.param(
            {"image": "ghcr.io/acme/actormesh-evil:1"},
            "not allowed: ghcr.io/acme/actormesh-evil:1",
            id="repo-prefix",
        ),
        pytest.param(
            {"image": "registry.example.com/actormesh:1", "nats": {"image": "nats:2.10"}},
            "not allowed: nats:2.10",
            id="nats-image",
        ),
        pytest.param(
            {
                "image": "registry.example.com/actormesh:1",
                "scheduling": {"priorityClassName": "system-node-critical"},
            },
            "spec.scheduling.priorityClassName is not allowed",
            id="priority-class",
        ),
        pytest.param(
            {
                "image": "registry.example.com/actormesh:1",
                "scheduling": {"tolerations": [{"operator": "Exists"}]},
            },
            "spec.scheduling.tolerations is not allowed",
            id="toleration",
        ),
    ],
)
def test_the_guard_refuses(guarded: tuple[KubeControlPlane, str], spec: dict[str, Any], message: str) -> None:
    kube, ns = guarded
    code, err = _create(kube, ns, _mesh("refused", **spec))
    assert code != 0
    assert "ValidatingAdmissionPolicy" in err, err
    assert message in err, err


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"image": "registry.example.com/team/actormesh:0.1.0"}, id="registry"),
        pytest.param({"image": "ghcr.io/acme/actormesh:0.1.0"}, id="repo-tag"),
        pytest.param({"image": "ghcr.io/acme/actormesh@sha256:" + "a" * 64}, id="repo-digest"),
        pytest.param(
            {
                "image": "registry.example.com/actormesh:1",
                "nats": {"image": "registry.example.com/nats:2.10"},
                "redis": {"image": "registry.example.com/redis:7"},
                "scheduling": {"nodeSelector": {"pool": "support"}},
            },
            id="everything-allowed",
        ),
    ],
)
def test_the_guard_admits(guarded: tuple[KubeControlPlane, str], spec: dict[str, Any]) -> None:
    kube, ns = guarded
    code, err = _create(kube, ns, _mesh("admitted", **spec))
    assert code == 0, err


def test_parameters_switch_rules_on_and_a_missing_configmap_denies(
    guarded: tuple[KubeControlPlane, str],
) -> None:
    kube, ns = guarded
    params = get_configmap(kube, ns)
    tolerating = _mesh(
        "tolerating", "registry.example.com/a:1", scheduling={"tolerations": [{"operator": "Exists"}]}
    )
    try:
        kube.kubectl("patch", "configmap", "actormesh-guard", "-n", ns, "--type=merge",
                     "-p", json.dumps({"data": {"allowTolerations": "true"}}))  # fmt: skip
        wait_for("tolerations allowed", lambda: _create(kube, ns, tolerating)[0] == 0)
        kube.kubectl("delete", "configmap", "actormesh-guard", "-n", ns)
        wait_for(
            "fail closed",
            lambda: NO_PARAMS in _create_once(kube, ns, _mesh("any", "registry.example.com/a:1"))[1],
        )
    finally:  # the other tests share the guard
        kube.kubectl("apply", "-f", "-", input=json.dumps(params))
        wait_for("tolerations refused again", lambda: _create(kube, ns, tolerating)[0] != 0)


def get_configmap(kube: KubeControlPlane, ns: str) -> dict[str, Any]:
    live = json.loads(kube.kubectl("get", "configmap", "actormesh-guard", "-n", ns, "-o", "json").stdout)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "actormesh-guard", "namespace": ns},
            "data": live["data"]}  # fmt: skip

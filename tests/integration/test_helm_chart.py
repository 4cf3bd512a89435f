"""The Helm chart: `helm lint --strict` is clean, every rendered object validates against Kubernetes
1.34, and with default values (cluster scope) and with `rbacScope=namespace` it renders the same
objects as the kustomize installs config/default and config/namespaced, so the two cannot drift.
Values that only the chart has (image, resources, extra env, watch namespace, log format, a
ServiceMonitor) are checked in the rendered output.

helm is built from its Go module by `hack/tools/build.sh helm`; kubectl (for `kubectl kustomize`) is the
test control plane's, from `make k8s-bin`.
"""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import missing_component
from tests.harness.binaries import HOW_TO_BUILD, bin_dir_from_env
from tests.support.tools import tool_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "actormesh-operator"
RELEASE = "actormesh-operator"
KUBE_VERSION = "1.34.0"
"""What the chart is rendered and validated for (a `go install`ed helm defaults to an old version)."""
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/instance", "app.kubernetes.io/version")
Key = tuple[str, str]


@pytest.fixture(scope="module")
def helm() -> str:
    return tool_binary("helm")


@pytest.fixture(scope="module")
def kubectl() -> str:
    path = bin_dir_from_env() / "kubectl"
    if not os.access(path, os.X_OK):
        missing_component("kubectl", HOW_TO_BUILD)
    return str(path)


def run(*args: str) -> str:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def render(helm: str, namespace: str, *sets: str, crds: bool = False) -> list[dict[str, Any]]:
    args = [helm, "template", RELEASE, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    args += ["--include-crds"] if crds else []
    for value in sets:
        args += ["--set", value]
    return docs(run(*args))


def _strip_helm_labels(meta: dict[str, Any]) -> None:
    # Policy-scanner skips are written for each source's own findings (e.g. the kustomize image tag).
    annotations = meta.get("annotations") or {}
    for key in [k for k in annotations if k.startswith("checkov.io/")]:
        del annotations[key]
    if "annotations" in meta and not annotations:
        del meta["annotations"]
    labels = meta.get("labels") or {}
    for key in HELM_ONLY_LABELS:
        labels.pop(key, None)
    if labels.get("app.kubernetes.io/managed-by") == "Helm":
        del labels["app.kubernetes.io/managed-by"]


def normalized(objs: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    """By (kind, name), without the chart's bookkeeping labels (kustomize has no release to name)."""
    out: dict[Key, dict[str, Any]] = {}
    for obj in objs:
        obj = copy.deepcopy(obj)
        _strip_helm_labels(obj["metadata"])
        template = obj.get("spec", {}).get("template")
        if isinstance(template, dict):
            _strip_helm_labels(template["metadata"])
        out[(obj["kind"], obj["metadata"]["name"])] = obj
    return out


def kustomize(kubectl: str, directory: str) -> dict[Key, dict[str, Any]]:
    objs = docs(run(kubectl, "kustomize", str(ROOT / "config" / directory)))
    return normalized([o for o in objs if o["kind"] != "Namespace"])  # helm --create-namespace does that


def test_helm_lint_is_clean(helm: str) -> None:
    out = run(helm, "lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    assert "[WARNING]" not in out


@pytest.mark.parametrize(
    ("directory", "namespace", "sets", "crds"),
    [
        pytest.param("default", "actormesh-system", ["image.tag=latest"], True, id="cluster"),
        pytest.param(
            "namespaced", "actormesh", ["image.tag=latest", "rbacScope=namespace"], False, id="namespaced"
        ),
    ],
)
def test_chart_renders_what_kustomize_installs(
    helm: str, kubectl: str, directory: str, namespace: str, sets: list[str], crds: bool
) -> None:
    chart = normalized(render(helm, namespace, *sets, crds=crds))
    installed = kustomize(kubectl, directory)
    assert set(chart) == set(installed)
    for key, obj in installed.items():
        assert chart[key] == obj, f"{key[0]}/{key[1]} differs between the chart and config/{directory}"


@pytest.mark.parametrize(
    "sets",
    [
        pytest.param([], id="defaults"),
        pytest.param(["rbacScope=namespace", "watchNamespace=team-a"], id="namespaced"),
        pytest.param(["metrics.serviceMonitor.enabled=true"], id="service-monitor"),
    ],
)
def test_rendered_objects_validate_against_kubernetes(helm: str, sets: list[str]) -> None:
    validate_all(render(helm, "ops", *sets, crds=True))


def validate_all(objs: list[dict[str, Any]]) -> None:
    for obj in objs:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # not a built-in kind; its schema is the Prometheus Operator's
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")


def _deployment(objs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [o for o in objs if o["kind"] == "Deployment"]
    return deployment


def test_values_reach_the_operator(helm: str) -> None:
    objs = render(
        helm,
        "ops",
        "image.repository=registry.example.com/actormesh/operator",
        "image.tag=0.2.0",
        "logFormat=text",
        "resources.limits.memory=512Mi",
        "extraEnv[0].name=ACTORMESH_OPERATOR_RESYNC_INTERVAL_S",
        "extraEnv[0].value=120",  # a number on the command line; the chart makes it a string
        "extraEnv[1].name=HTTPS_PROXY",
        "extraEnv[1].valueFrom.secretKeyRef.name=proxy",
        "extraEnv[1].valueFrom.secretKeyRef.key=url",
        "rbacScope=namespace",
        "watchNamespace=team-a",
        "metrics.serviceMonitor.enabled=true",
        "metrics.serviceMonitor.labels.release=prom",
    )
    validate_all(objs)
    container = _deployment(objs)["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/actormesh/operator:0.2.0"
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["ACTORMESH_OPERATOR_LOG_FORMAT"] == "text"
    assert env["ACTORMESH_OPERATOR_RESYNC_INTERVAL_S"] == "120"
    assert env["ACTORMESH_OPERATOR_NAMESPACE"] == "team-a"
    assert env["HTTPS_PROXY"] == {"secretKeyRef": {"name": "proxy", "key": "url"}}
    assert container["resources"]["limits"]["memory"] == "512Mi"
    kinds = {(o["kind"], o["metadata"].get("namespace")) for o in objs}
    assert ("Role", "team-a") in kinds
    assert ("RoleBinding", "team-a") in kinds
    assert not {k for k, _ in kinds} & {"ClusterRole", "ClusterRoleBinding"}
    (monitor,) = [o for o in objs if o["kind"] == "ServiceMonitor"]
    assert monitor["metadata"]["labels"]["release"] == "prom"
    (service,) = [o for o in objs if o["kind"] == "Service"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        pytest.param(["rbacScope=everything"], "rbacScope must be cluster or namespace", id="scope"),
        pytest.param(["logFormat=xml"], "logFormat must be json or text", id="log-format"),
        pytest.param(["watchNamespace=team-a"], "watchNamespace needs rbacScope: namespace", id="watch"),
    ],
)
def test_bad_values_fail_with_a_message_naming_the_value(helm: str, sets: list[str], message: str) -> None:
    args = [helm, "template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION]
    for value in sets:
        args += ["--set", value]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert message in result.stderr

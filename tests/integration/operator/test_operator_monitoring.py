"""spec.monitoring on a real API server: without the Prometheus Operator CRDs the mesh says so in its
MonitoringReady condition (and is otherwise reconciled as usual); with minimal monitoring.coreos.com
CRDs written for this test, the ServiceMonitor, metrics Service and PrometheusRule are applied, owned
by the mesh, and pruned when turned off."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.operator.conftest import OperatorFactory
from tests.integration.operator.kubeapi import apply, condition, merge_patch, minimal_mesh, try_get
from tests.support.k8s import KubeControlPlane, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]

KINDS = {
    "ServiceMonitor": "servicemonitors",
    "PodMonitor": "podmonitors",
    "PrometheusRule": "prometheusrules",
}
CRD_NAMES = [f"{plural}.monitoring.coreos.com" for plural in KINDS.values()]


def minimal_crd(kind: str, plural: str) -> dict[str, Any]:
    """Just enough of the Prometheus Operator's CRD to be served (the schema keeps every field)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }


@pytest.fixture
def monitoring_crds(operators: OperatorFactory) -> Iterator[KubeControlPlane]:
    """Installs the CRDs on demand (`install()`), and always removes them again: the control plane is
    shared by every k8s test."""
    kube = operators.kube
    try:
        yield kube
    finally:
        kube.kubectl("delete", "crd", *CRD_NAMES, "--ignore-not-found", "--wait=true", check=False)


def install(kube: KubeControlPlane) -> None:
    items = [minimal_crd(kind, plural) for kind, plural in KINDS.items()]
    kube.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in CRD_NAMES))


MONITORING = {
    "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
    "prometheusRule": {"enabled": True},
    "scrapeNamespace": "monitoring",
}


def test_monitoring_without_then_with_the_prometheus_operator_crds(
    operators: OperatorFactory, monitoring_crds: KubeControlPlane, kube_namespace: str
) -> None:
    kube, ns, mesh = monitoring_crds, kube_namespace, "watched"
    operators.start()
    apply(kube, ns, minimal_mesh(mesh, monitoring=MONITORING))

    def monitoring_condition() -> dict[str, Any]:
        live = try_get(kube, ns, "actormesh", mesh)
        return condition(live, "MonitoringReady") if live else {}

    wait_for("MonitoringCRDsMissing", lambda: monitoring_condition().get("reason") == "MonitoringCRDsMissing")
    cond = monitoring_condition()
    assert cond["status"] == "False"
    assert "servicemonitors.monitoring.coreos.com" in cond["message"]
    assert "prometheusrules.monitoring.coreos.com" in cond["message"]
    live = try_get(kube, ns, "actormesh", mesh)
    assert live is not None
    assert condition(live, "Stalled")["status"] == "False", "missing monitoring CRDs must not stall the mesh"
    # Everything else was applied, including the scrape NetworkPolicy.
    assert try_get(kube, ns, "deployment", f"{mesh}-gateway") is not None
    assert try_get(kube, ns, "networkpolicy", f"{mesh}-allow-metrics-scrape") is not None

    operators.stop_all()
    install(kube)
    operators.start()  # a fresh discovery (a running operator re-checks within a minute)
    wait_for("MonitoringConfigured", lambda: monitoring_condition().get("reason") == "MonitoringConfigured")
    assert monitoring_condition()["status"] == "True"

    monitor = try_get(kube, ns, "servicemonitor", f"{mesh}-metrics")
    rule = try_get(kube, ns, "prometheusrule", f"{mesh}-alerts")
    service = try_get(kube, ns, "service", f"{mesh}-metrics")
    assert monitor is not None
    assert rule is not None
    assert service is not None
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["metadata"]["ownerReferences"][0]["name"] == mesh
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"ActorMeshLagGrowing", "ActorMeshDeadLetters", "ActorMeshNotReady"} <= alerts

    merge_patch(
        kube, ns, f"actormesh/{mesh}", {"spec": {"monitoring": {"serviceMonitor": {"enabled": False}}}}
    )
    wait_for(
        "the ServiceMonitor and metrics Service pruned",
        lambda: (
            try_get(kube, ns, "servicemonitor", f"{mesh}-metrics") is None
            and try_get(kube, ns, "service", f"{mesh}-metrics") is None
        ),
    )
    assert try_get(kube, ns, "prometheusrule", f"{mesh}-alerts") is not None

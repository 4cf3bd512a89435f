"""spec.gateway.httpRoute on a real API server: without the Gateway API CRDs the mesh says so in its
HTTPRouteReady condition and is otherwise reconciled as usual; with the upstream HTTPRoute CRD (Gateway
API v1.6.3, from its Go module, validated by its own schema and CEL rules) the route is applied, owned by
the mesh, its condition follows what a Gateway's controller writes into the route's status, and it is
pruned when switched off."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.operator.conftest import OperatorFactory
from tests.integration.operator.kubeapi import apply, condition, merge_patch, minimal_mesh, try_get
from tests.support.eventually import eventually
from tests.support.k8s import KubeControlPlane
from tests.support.tools import gateway_api_crd

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]

CRD_NAME = "httproutes.gateway.networking.k8s.io"
ROUTE = {
    "enabled": True,
    "parentRefs": [{"name": "public", "namespace": "infra", "sectionName": "https"}],
    "hostnames": ["support.example.com"],
    "pathPrefix": "/support",
}


@pytest.fixture
def route_crd(operators: OperatorFactory) -> Iterator[Path]:
    """The upstream HTTPRoute CRD file, not installed yet; removed again at the end (the control plane is
    shared by every k8s test). Fetched first, so a missing Go fails (CI) or skips before anything runs."""
    crd = gateway_api_crd("httproutes")
    kube = operators.kube
    kube.kubectl("delete", "crd", CRD_NAME, "--ignore-not-found", "--wait=true", check=False)
    try:
        yield crd
    finally:
        kube.kubectl("delete", "crd", CRD_NAME, "--ignore-not-found", "--wait=true", check=False)


def _established(kube: KubeControlPlane) -> bool:
    """`kubectl wait` fails outright while the new CRD has no conditions yet: poll instead."""
    crd = json.loads(kube.kubectl("get", "crd", CRD_NAME, "-o", "json").stdout)
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def _route_condition(kube: KubeControlPlane, ns: str, mesh: str) -> dict[str, Any]:
    live = try_get(kube, ns, "actormesh", mesh)
    return condition(live, "HTTPRouteReady") if live else {}


def _wait_reason(kube: KubeControlPlane, ns: str, mesh: str, reason: str) -> dict[str, Any]:
    eventually(lambda: _route_condition(kube, ns, mesh).get("reason") == reason, what=reason, timeout_s=60)
    return _route_condition(kube, ns, mesh)


def _gateway_says(kube: KubeControlPlane, ns: str, name: str, accepted: str, reason: str) -> None:
    """What a Gateway controller (none runs here) would write into the route's status."""
    status = {
        "parents": [
            {
                "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public",
                              "namespace": "infra", "sectionName": "https"},
                "controllerName": "example.com/gateway-controller",
                "conditions": [
                    {"type": "Accepted", "status": accepted, "reason": reason, "message": f"test: {reason}",
                     "lastTransitionTime": "2026-12-05T12:00:00Z", "observedGeneration": 1},
                    {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs", "message": "",
                     "lastTransitionTime": "2026-12-05T12:00:00Z", "observedGeneration": 1},
                ],
            }
        ]
    }  # fmt: skip
    kube.kubectl(
        "patch", "httproute", name, "-n", ns, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip


def test_http_route_without_then_with_the_gateway_api_crds(
    operators: OperatorFactory, route_crd: Path, kube_namespace: str
) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "routed"
    operators.start()
    apply(kube, ns, minimal_mesh(mesh, gateway={"httpRoute": ROUTE}))

    cond = _wait_reason(kube, ns, mesh, "GatewayAPICRDsMissing")
    assert cond["status"] == "False"
    assert CRD_NAME in cond["message"]
    live = try_get(kube, ns, "actormesh", mesh)
    assert live is not None
    assert condition(live, "Stalled")["status"] == "False", "missing Gateway API CRDs must not stall the mesh"
    assert try_get(kube, ns, "service", f"{mesh}-gateway") is not None

    operators.stop_all()
    kube.kubectl("apply", "--server-side", "-f", str(route_crd))
    eventually(lambda: _established(kube), what=f"{CRD_NAME} established", timeout_s=60)
    operators.start()  # a fresh discovery (a running operator re-checks within a minute)

    cond = _wait_reason(kube, ns, mesh, "HTTPRoutePending")
    assert "infra/public" in cond["message"]
    route = try_get(kube, ns, "httproute", f"{mesh}-gateway")
    assert route is not None
    assert route["metadata"]["ownerReferences"][0]["name"] == mesh
    assert route["spec"]["hostnames"] == ["support.example.com"]
    assert route["spec"]["rules"][0]["matches"][0]["path"] == {"type": "PathPrefix", "value": "/support/api"}
    assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == f"{mesh}-gateway"

    _gateway_says(kube, ns, f"{mesh}-gateway", "False", "NotAllowedByListeners")
    cond = _wait_reason(kube, ns, mesh, "HTTPRouteNotAccepted")
    assert "infra/public listener https: Accepted=False (NotAllowedByListeners)" in cond["message"]
    _gateway_says(kube, ns, f"{mesh}-gateway", "True", "Accepted")
    assert _wait_reason(kube, ns, mesh, "HTTPRouteAccepted")["status"] == "True"

    merge_patch(kube, ns, f"actormesh/{mesh}", {"spec": {"gateway": {"httpRoute": {"enabled": False}}}})
    eventually(
        lambda: try_get(kube, ns, "httproute", f"{mesh}-gateway") is None,
        what="the HTTPRoute pruned",
        timeout_s=60,
    )
    assert _wait_reason(kube, ns, mesh, "HTTPRouteNotRequested")["status"] == "True"


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"enabled": True}, "spec.gateway.httpRoute.parentRefs needs at least one Gateway"),
        ({"pathPrefix": "/support/"}, "spec.gateway.httpRoute.pathPrefix"),
        ({"hostnames": ["Support.example.com"]}, "spec.gateway.httpRoute.hostnames[0]"),
    ],
    ids=["no-parent", "trailing-slash", "upper-case-host"],
)
def test_bad_http_route_is_rejected_naming_the_field(
    operators: OperatorFactory, kube_namespace: str, route: dict[str, Any], message: str
) -> None:
    kube = operators.kube
    body = minimal_mesh("badroute", gateway={"httpRoute": route})
    result = kube.kubectl("apply", "-n", kube_namespace, "-f", "-", input=json.dumps(body), check=False)
    assert result.returncode != 0
    assert message in result.stderr

"""spec.gateway.httpRoute: the HTTPRoute to the gateway Service (only when the Gateway API is served), its
validation, and the HTTPRouteReady condition computed from the route's status.parents."""

from __future__ import annotations

from typing import Any

import pytest

from actormesh_operator.api.observed import ObservedHTTPRoute, ObservedState
from actormesh_operator.api.spec import InvalidSpec
from actormesh_operator.builders import build_children
from actormesh_operator.builders.gateway import INGRESS_PATHS
from actormesh_operator.status import compute_status
from tests.unit.builder_helpers import SETTINGS, make_mesh
from tests.unit.status_helpers import T0

ROUTE = {"enabled": True, "parentRefs": [{"name": "public", "namespace": "infra", "sectionName": "https"}]}


def _route(route: dict[str, Any], *, served: bool = True, **gateway: Any) -> dict[str, Any] | None:
    mesh = make_mesh({"gateway": {"httpRoute": route, **gateway}})
    objs = build_children(mesh, SETTINGS, keda_available=False, gateway_api_available=served)
    return next((o for o in objs if o["kind"] == "HTTPRoute"), None)


def test_route_points_every_public_path_at_the_gateway_service() -> None:
    route = _route({**ROUTE, "hostnames": ["support.example.com", "*.shop.example"]}, service={"port": 8080})
    assert route is not None
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["metadata"]["name"] == "demo-gateway"
    assert route["metadata"]["ownerReferences"][0]["kind"] == "ActorMesh"
    spec = route["spec"]
    assert spec["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public", "namespace": "infra",
         "sectionName": "https"}
    ]  # fmt: skip
    assert spec["hostnames"] == ["support.example.com", "*.shop.example"]
    assert [r["matches"] for r in spec["rules"]] == [
        [{"path": {"type": "PathPrefix", "value": p}}] for p in INGRESS_PATHS
    ]
    assert all(r["backendRefs"] == [{"name": "demo-gateway", "port": 8080}] for r in spec["rules"])
    assert all("filters" not in r for r in spec["rules"])


def test_a_path_prefix_is_matched_and_stripped_before_the_gateway() -> None:
    route = _route({**ROUTE, "pathPrefix": "/support"})
    assert route is not None
    rules = route["spec"]["rules"]
    assert [r["matches"][0]["path"]["value"] for r in rules] == [f"/support{p}" for p in INGRESS_PATHS]
    assert [r["filters"] for r in rules] == [
        [
            {
                "type": "URLRewrite",
                "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": p}},
            }
        ]
        for p in INGRESS_PATHS
    ]
    assert "hostnames" not in route["spec"]


@pytest.mark.parametrize(
    ("route", "served"), [({"enabled": False}, True), (ROUTE, False)], ids=["off", "crds-missing"]
)
def test_no_route_when_off_or_not_served(route: dict[str, Any], served: bool) -> None:
    assert _route(route, served=served) is None


def test_ingress_and_route_may_run_together_during_a_migration() -> None:
    mesh = make_mesh({"gateway": {"httpRoute": ROUTE, "ingress": {"enabled": True, "host": "a.example.com"}}})
    kinds = [
        o["kind"] for o in build_children(mesh, SETTINGS, keda_available=False, gateway_api_available=True)
    ]
    assert "Ingress" in kinds
    assert "HTTPRoute" in kinds


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"enabled": True}, "spec.gateway.httpRoute.parentRefs needs at least one Gateway"),
        ({"hostnames": ["Support.Example.com"]}, "spec.gateway.httpRoute.hostnames.0"),
        ({"hostnames": ["10.0.0.1:80"]}, "spec.gateway.httpRoute.hostnames.0"),
        ({"pathPrefix": "/support/"}, "spec.gateway.httpRoute.pathPrefix"),
        ({"pathPrefix": "support"}, "spec.gateway.httpRoute.pathPrefix"),
        ({"parentRefs": [{"name": "gw", "port": 0}]}, "spec.gateway.httpRoute.parentRefs.0.port"),
    ],
    ids=["no-parent", "upper-case-host", "ip-and-port", "trailing-slash", "relative-prefix", "port-0"],
)
def test_bad_routes_name_the_field(route: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message.replace(".", r"\.")):
        make_mesh({"gateway": {"httpRoute": route}})


def _parents(*entries: tuple[str, str, str]) -> dict[str, Any]:
    """A live route whose status.parents report (gateway name, Accepted status, reason)."""
    return {
        "metadata": {"name": "demo-gateway", "namespace": "shop"},
        "status": {
            "parents": [
                {
                    # A controller echoes the spec's parentRef (ROUTE's names a listener).
                    "parentRef": {"name": name, "namespace": "infra", "sectionName": "https"},
                    "controllerName": "example.com/gateway",
                    "conditions": [
                        {
                            "type": "Accepted",
                            "status": status,
                            "reason": reason,
                            "message": "listener says so",
                        },
                        {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs"},
                    ],
                }
                for name, status, reason in entries
            ]
        },
    }


@pytest.mark.parametrize(
    ("route", "served", "live", "status", "reason", "words"),
    [
        ({"enabled": False}, False, None, "True", "HTTPRouteNotRequested", ""),
        (ROUTE, False, None, "False", "GatewayAPICRDsMissing", "httproutes.gateway.networking.k8s.io"),
        (ROUTE, True, None, "False", "HTTPRoutePending", "not applied"),
        (ROUTE, True, {"metadata": {"name": "demo-gateway"}}, "False", "HTTPRoutePending", "infra/public"),
        (ROUTE, True, _parents(("public", "True", "Accepted")), "True", "HTTPRouteAccepted", "infra/public"),
        (
            ROUTE,
            True,
            _parents(("public", "False", "NotAllowedByListeners")),
            "False",
            "HTTPRouteNotAccepted",
            "infra/public listener https: Accepted=False (NotAllowedByListeners): listener says so",
        ),
        (ROUTE, True, _parents(("other", "True", "Accepted")), "False", "HTTPRoutePending", "infra/public"),
    ],
    ids=["off", "crds-missing", "not-applied", "no-verdict", "accepted", "refused", "another-gateway"],
)
def test_http_route_condition(
    route: dict[str, Any], served: bool, live: dict[str, Any] | None, status: str, reason: str, words: str
) -> None:
    mesh = make_mesh({"gateway": {"httpRoute": route}})
    observed = ObservedState(
        gateway_api_served=served, gateway_route=ObservedHTTPRoute.from_object(live) if live else None
    )
    conditions = compute_status(mesh, observed, None, T0)["conditions"]
    cond = next(c for c in conditions if c["type"] == "HTTPRouteReady")
    assert (cond["status"], cond["reason"]) == (status, reason)
    assert words in cond["message"]
    ready = next(c for c in conditions if c["type"] == "Stalled")
    assert ready["status"] == "False", "a route problem never stalls the mesh"


def test_one_gateway_twice_keeps_each_listeners_verdict() -> None:
    """Two parentRefs to one Gateway (two listeners) get one status.parents entry each; a refusal by
    one must not be hidden by the other's acceptance (they were keyed by the Gateway alone)."""
    mesh = make_mesh(
        {
            "gateway": {
                "httpRoute": {
                    "enabled": True,
                    "parentRefs": [
                        {"name": "public", "namespace": "infra", "sectionName": "http"},
                        {"name": "public", "namespace": "infra", "sectionName": "https"},
                    ],
                }
            }
        }
    )
    live = _parents(("public", "False", "NotAllowedByListeners"), ("public", "True", "Accepted"))
    for entry, section in zip(live["status"]["parents"], ("http", "https"), strict=True):
        entry["parentRef"]["sectionName"] = section
    observed = ObservedState(gateway_api_served=True, gateway_route=ObservedHTTPRoute.from_object(live))
    conditions = compute_status(mesh, observed, None, T0)["conditions"]
    cond = next(c for c in conditions if c["type"] == "HTTPRouteReady")
    assert (cond["status"], cond["reason"]) == ("False", "HTTPRouteNotAccepted")
    assert cond["message"].startswith("infra/public listener http: Accepted=False")
    assert "listener https" not in cond["message"]

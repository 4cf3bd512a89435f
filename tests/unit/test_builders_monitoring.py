"""spec.monitoring: the monitors select exactly the pods that serve /metrics, are emitted only for served
kinds (the status says what is missing), the scrape NetworkPolicy admits the configured namespace only,
and the PrometheusRule carries every alert with the spec's thresholds, limited to this mesh."""

from __future__ import annotations

from typing import Any

import pytest

from actormesh_operator.api.observed import ObservedState
from actormesh_operator.api.spec import InvalidSpec
from actormesh_operator.builders import build_children
from actormesh_operator.builders.alerts import alert_groups
from actormesh_operator.status import compute_status
from tests.unit.builder_helpers import SETTINGS, make_mesh, pod_templates
from tests.unit.status_helpers import T0
from tests.unit.test_builders_network import Pod, allowed

ALL_KINDS = frozenset({"servicemonitors", "podmonitors", "prometheusrules"})
NS = "shop"


def render(
    monitoring: dict[str, Any], available: frozenset[str] = ALL_KINDS, **spec: Any
) -> list[dict[str, Any]]:
    mesh = make_mesh({"monitoring": monitoring, **spec})
    return build_children(mesh, SETTINGS, keda_available=False, monitoring_available=available)


def of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    return all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []))


def _metrics_port(template: dict[str, Any]) -> bool:
    ports = template["spec"]["containers"][0].get("ports", [])
    return any(p.get("name") == "http" for p in ports)


def test_nothing_by_default() -> None:
    objs = render({})
    assert not [o for o in objs if o["apiVersion"].startswith("monitoring.coreos.com")]
    assert not [o for o in objs if o["metadata"]["name"].endswith("-metrics")]


def test_pod_monitor_selects_every_pod_serving_metrics_and_nothing_else() -> None:
    objs = render({"podMonitor": {"enabled": True, "labels": {"release": "prom"}, "interval": "15s"}})
    (monitor,) = of_kind(objs, "PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NS]}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("http", "/metrics", "15s")
    assert {r["targetLabel"] for r in endpoint["relabelings"]} == {"mesh", "component"}
    selected = {
        name
        for name, t in pod_templates(objs)
        if _selects(monitor["spec"]["selector"], t["metadata"]["labels"])
    }
    serving = {name for name, t in pod_templates(objs) if _metrics_port(t)}
    assert selected == serving - {"demo-mocks"}
    assert {"demo-gateway", "demo-history", "demo-sentiment-analyzer"} <= selected
    assert not {"demo-nats", "demo-redis", "demo-mocks"} & selected


def test_service_monitor_selects_the_metrics_service_which_covers_the_runtime_pods() -> None:
    objs = render({"serviceMonitor": {"enabled": True}})
    (monitor,) = of_kind(objs, "ServiceMonitor")
    services = [
        s for s in of_kind(objs, "Service") if _selects(monitor["spec"]["selector"], s["metadata"]["labels"])
    ]
    assert [s["metadata"]["name"] for s in services] == ["demo-metrics"]
    service = services[0]
    assert service["spec"]["clusterIP"] == "None"
    assert [p["name"] for p in service["spec"]["ports"]] == [monitor["spec"]["endpoints"][0]["port"]]
    covered = {
        name
        for name, t in pod_templates(objs)
        if _selects({"matchLabels": service["spec"]["selector"]}, t["metadata"]["labels"])
    }
    assert {"demo-gateway", "demo-history", "demo-intent-analyzer"} <= covered
    assert not {"demo-nats", "demo-redis"} & covered


def test_both_monitors_at_once_are_rejected_naming_the_fields() -> None:
    with pytest.raises(
        InvalidSpec, match=r"spec\.monitoring\.serviceMonitor\.enabled and spec\.monitoring\.podMonitor"
    ):
        make_mesh({"monitoring": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}})


@pytest.mark.parametrize("kind", sorted(ALL_KINDS))
def test_a_kind_that_is_not_served_is_left_out(kind: str) -> None:
    spec = {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}
    if kind == "podmonitors":
        spec = {"podMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}
    objs = render(spec, available=ALL_KINDS - {kind})
    plurals = {o["kind"].lower() + "s" for o in objs if o["apiVersion"].startswith("monitoring.coreos.com")}
    assert kind not in plurals
    assert len(plurals) == 1


def _monitoring_condition(monitoring: dict[str, Any], served: frozenset[str]) -> dict[str, Any]:
    mesh = make_mesh({"monitoring": monitoring})
    status = compute_status(mesh, ObservedState(monitoring_served=served), None, T0)
    return next(c for c in status["conditions"] if c["type"] == "MonitoringReady")


def test_missing_crds_are_a_condition_naming_them() -> None:
    cond = _monitoring_condition(
        {"podMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}, frozenset({"podmonitors"})
    )
    assert (cond["status"], cond["reason"]) == ("False", "MonitoringCRDsMissing")
    assert "prometheusrules.monitoring.coreos.com" in cond["message"]
    assert "podmonitors.monitoring.coreos.com" not in cond["message"]


def test_monitoring_condition_when_served_or_not_asked() -> None:
    served = _monitoring_condition({"podMonitor": {"enabled": True}}, ALL_KINDS)
    assert (served["status"], served["reason"]) == ("True", "MonitoringConfigured")
    idle = _monitoring_condition({}, frozenset())
    assert (idle["status"], idle["reason"]) == ("True", "MonitoringNotRequested")


def test_missing_monitoring_does_not_touch_ready() -> None:
    mesh = make_mesh({"monitoring": {"podMonitor": {"enabled": True}}})
    with_crds = compute_status(mesh, ObservedState(monitoring_served=ALL_KINDS), None, T0)
    without = compute_status(mesh, ObservedState(), None, T0)
    ours = ("Ready", "Reconciling", "Stalled")
    assert [c for c in with_crds["conditions"] if c["type"] in ours] == [
        c for c in without["conditions"] if c["type"] in ours
    ]
    assert with_crds["phase"] == without["phase"]


# --- who may scrape ---------------------------------------------------------------------------------


def _runtime_pod(component: str) -> Pod:
    return Pod(
        NS,
        {
            "app.kubernetes.io/name": "actormesh",
            "app.kubernetes.io/instance": "demo",
            "app.kubernetes.io/managed-by": "actormesh-operator",
            "app.kubernetes.io/component": component,
        },
    )


PROMETHEUS = Pod("monitoring", {"app": "prometheus"})
STRANGER = Pod("other", {"app": "prometheus"})


def test_the_scrape_namespace_reaches_the_metrics_ports_and_nothing_more() -> None:
    policies = of_kind(render({"scrapeNamespace": "monitoring"}), "NetworkPolicy")
    for component in ("history", "sentiment-analyzer", "response-generator"):
        target = _runtime_pod(component)
        assert allowed(policies, PROMETHEUS, target, 8080), component
        assert not allowed(policies, STRANGER, target, 8080), component
    assert allowed(policies, PROMETHEUS, _runtime_pod("gateway"), 8000)
    assert not allowed(policies, PROMETHEUS, _runtime_pod("nats"), 4222)


def test_without_a_scrape_namespace_the_actor_metrics_port_stays_closed() -> None:
    policies = of_kind(render({}), "NetworkPolicy")
    assert not allowed(policies, PROMETHEUS, _runtime_pod("sentiment-analyzer"), 8080)


def test_no_scrape_policy_when_network_policies_are_off() -> None:
    objs = render({"scrapeNamespace": "monitoring"}, networkPolicy={"enabled": False})
    assert not of_kind(objs, "NetworkPolicy")


# --- alerts -------------------------------------------------------------------------------------------

ALERTS = {
    "ActorMeshLagGrowing",
    "ActorMeshDeadLetters",
    "ActorMeshActorErrors",
    "ActorMeshGatewaySlow",
    "ActorMeshGatewayErrors",
    "ActorMeshNatsDown",
    "ActorMeshRedisDown",
    "ActorMeshNotReady",
    "ActorMeshNatsServerDown",
    "ActorMeshNatsStorageFilling",
}


def test_prometheus_rule_has_every_alert_with_the_spec_thresholds() -> None:
    rule = {
        "enabled": True,
        "labels": {"role": "alert-rules"},
        "lagGrowingMinutes": 7,
        "gatewayP99Seconds": 3.5,
    }
    objs = render({"prometheusRule": rule})
    (prom_rule,) = of_kind(objs, "PrometheusRule")
    assert prom_rule["metadata"]["labels"]["role"] == "alert-rules"
    rules = {r["alert"]: r for g in prom_rule["spec"]["groups"] for r in g["rules"]}
    assert set(rules) == ALERTS
    assert rules["ActorMeshLagGrowing"]["for"] == "7m"
    assert rules["ActorMeshGatewaySlow"]["expr"].endswith("> 3.5")
    for name, r in rules.items():
        assert r["labels"]["severity"] in {"warning", "critical"}, name
        assert r["annotations"]["summary"], name
        limited = (
            'namespace="shop", mesh="demo"' in r["expr"] or 'mesh_namespace="shop", mesh="demo"' in r["expr"]
        )
        assert limited, f"{name} is not limited to this mesh"


def test_no_redis_alert_without_redis() -> None:
    groups = alert_groups(make_mesh({"redis": {"enabled": False}}))
    assert "ActorMeshRedisDown" not in {r["alert"] for g in groups for r in g["rules"]}


def test_prometheus_rule_needs_its_kind_served() -> None:
    assert not of_kind(render({"prometheusRule": {"enabled": True}}, available=frozenset()), "PrometheusRule")
    assert of_kind(render({"prometheusRule": {"enabled": True}}), "PrometheusRule")

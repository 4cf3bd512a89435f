"""`spec.monitoring` → a metrics Service, a ServiceMonitor or PodMonitor, and the scrape NetworkPolicy.

Called by `build_children`. Every runtime pod (actors, history, gateway) serves /metrics on its
container port named `http`; NATS has no Prometheus endpoint of its own (docs/monitoring.md). Targets
get `mesh` and `component` labels from the pod labels, which the alert rules (`builders/alerts.py`)
and the Grafana dashboard select on. The Prometheus Operator objects are emitted only for kinds the
API server serves (`available`); a missing one is reported by `status.py`, not here.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from actormesh_operator.api.monitoring import ScrapeSpec
from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import labels, names
from actormesh_operator.builders.kinds import POD_MONITOR, SERVICE_MONITOR
from actormesh_operator.builders.meta import Manifest, manifest, object_meta
from actormesh_operator.builders.network import actor_components, pods, tcp
from actormesh_runtime.catalog import Ports

METRICS_PORT = "http"
"""Container port name of /metrics on every runtime pod."""


def scraped_components(mesh: ActorMesh) -> list[str]:
    """Component labels of the pods that serve /metrics: every enabled actor, history, the gateway."""
    return [*actor_components(mesh), labels.HISTORY, labels.GATEWAY]


def target_relabelings() -> list[dict[str, Any]]:
    """`mesh` and `component` target labels from the pod's labels (what the alert rules select on)."""
    return [
        {
            "sourceLabels": [f"__meta_kubernetes_pod_label_{_meta_name(labels.INSTANCE)}"],
            "targetLabel": "mesh",
        },
        {
            "sourceLabels": [f"__meta_kubernetes_pod_label_{_meta_name(labels.COMPONENT)}"],
            "targetLabel": "component",
        },
    ]


def _meta_name(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label)


def _endpoint(scrape: ScrapeSpec, port_key: str, port: str) -> dict[str, Any]:
    return {
        port_key: port,
        "path": "/metrics",
        "interval": scrape.interval,
        "relabelings": target_relabelings(),
    }


def _monitor_meta(mesh: ActorMesh, scrape: ScrapeSpec) -> dict[str, Any]:
    meta = object_meta(mesh, names.metrics(mesh.name), labels.MONITORING)
    meta["labels"] = {**scrape.labels, **meta["labels"]}
    return meta


def build_metrics_service(mesh: ActorMesh) -> Manifest:
    """Headless Service over every runtime pod's metrics port (mocks have no `http` port: left out)."""
    return manifest(
        "v1",
        "Service",
        object_meta(mesh, names.metrics(mesh.name), labels.METRICS),
        spec={
            "clusterIP": "None",
            "selector": {labels.NAME: labels.APP, labels.INSTANCE: names.instance_label(mesh.name)},
            "ports": [{"name": "metrics", "port": Ports.ACTOR_HTTP, "targetPort": METRICS_PORT}],
        },
    )


def build_service_monitor(mesh: ActorMesh) -> Manifest:
    scrape = mesh.spec.monitoring.service_monitor
    selector = {labels.INSTANCE: names.instance_label(mesh.name), labels.COMPONENT: labels.METRICS}
    spec = {
        "selector": {"matchLabels": selector},
        "namespaceSelector": {"matchNames": [mesh.namespace]},
        "endpoints": [_endpoint(scrape, "port", "metrics")],
    }
    return manifest(SERVICE_MONITOR.api_version, SERVICE_MONITOR.kind, _monitor_meta(mesh, scrape), spec=spec)


def build_pod_monitor(mesh: ActorMesh) -> Manifest:
    scrape = mesh.spec.monitoring.pod_monitor
    spec = {
        "selector": pods(mesh, scraped_components(mesh)),
        "namespaceSelector": {"matchNames": [mesh.namespace]},
        "podMetricsEndpoints": [_endpoint(scrape, "port", METRICS_PORT)],
    }
    return manifest(POD_MONITOR.api_version, POD_MONITOR.kind, _monitor_meta(mesh, scrape), spec=spec)


def build_scrape_network_policy(mesh: ActorMesh) -> Manifest | None:
    """Let Prometheus in `spec.monitoring.scrapeNamespace` reach the actor and history metrics port
    (the gateway's port is open to everyone already); None when unset or NetworkPolicies are off."""
    namespace = mesh.spec.monitoring.scrape_namespace
    if namespace is None or not mesh.spec.network_policy.enabled:
        return None
    source = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
    components = [c for c in scraped_components(mesh) if c != labels.GATEWAY]
    spec = {
        "podSelector": pods(mesh, components),
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [source], "ports": tcp(Ports.ACTOR_HTTP)}],
    }
    meta = object_meta(mesh, names.network_policy(mesh.name, "allow-metrics-scrape"), labels.NETWORK)
    return manifest("networking.k8s.io/v1", "NetworkPolicy", meta, spec=spec)


def build_monitoring(mesh: ActorMesh, available: Collection[str]) -> list[Manifest]:
    """The metrics Service and monitors the spec asks for, limited to the kinds served (`available`)."""
    monitoring = mesh.spec.monitoring
    out: list[Manifest] = []
    if monitoring.service_monitor.enabled and SERVICE_MONITOR.plural in available:
        out += [build_metrics_service(mesh), build_service_monitor(mesh)]
    if monitoring.pod_monitor.enabled and POD_MONITOR.plural in available:
        out.append(build_pod_monitor(mesh))
    return out

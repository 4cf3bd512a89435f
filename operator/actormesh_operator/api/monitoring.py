"""`spec.monitoring`: wiring the mesh into a Prometheus Operator stack (all off by default).

Part of the spec model (re-exported by `api/spec.py`). The builders in `builders/monitoring.py` and
`builders/alerts.py` read it; the reconcile layer asks the API server whether the monitoring.coreos.com
kinds exist and, when one that is asked for does not, `status.py` says so in the `Monitoring`
condition instead of failing the reconcile (the mesh itself works without its monitoring).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from actormesh_operator.api.addresses import CheckedString, url_pattern
from actormesh_operator.api.types import DNS1123_LABEL, ApiModel, LabelKey, LabelValue, SecretKeyRef

DURATION_PATTERN = r"^[0-9]+(ms|s|m|h)$"
OTLP_URL_PATTERN = "^" + url_pattern("https?", r"(/[^\s?#]*)?") + "$"
OtlpUrl = Annotated[
    str,
    CheckedString(
        OTLP_URL_PATTERN,
        "must be an http:// or https:// URL: a host name or [IPv6 address], an optional port up to 65535 and"
        " path, no query, e.g. http://otel-collector.observability:4318",
        max_length=2048,
    ),
]
BOTH_MONITORS = (
    "spec.monitoring.serviceMonitor.enabled and spec.monitoring.podMonitor.enabled cannot both be true"
    " (every target would be scraped twice); pick one"
)


class ScrapeSpec(ApiModel):
    """A ServiceMonitor or PodMonitor for the runtime's /metrics (actors, history, gateway)."""

    enabled: bool = False
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=32)
    """Labels the Prometheus' `serviceMonitorSelector`/`podMonitorSelector` matches, e.g.
    `release: kube-prometheus`."""
    interval: str = Field("30s", pattern=DURATION_PATTERN)
    """Scrape interval. The queue gauges refresh every 15 s, so shorter buys nothing."""


class PrometheusRuleSpec(ApiModel):
    """A PrometheusRule with the mesh's alerts (thresholds below; docs/monitoring.md lists the alerts)."""

    enabled: bool = False
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=32)
    """Labels the Prometheus' `ruleSelector` matches."""
    lag_growing_minutes: int = Field(10, ge=1, le=1440)
    """ActorMeshLagGrowing: an actor's backlog has grown for this long."""
    lag_min_messages: int = Field(10, ge=0)
    """...and holds at least this many messages (a backlog of 2 is not an incident)."""
    error_ratio: float = Field(0.05, gt=0, le=1)
    """ActorMeshActorErrors: failed attempts over all attempts of an actor, for 10 minutes."""
    gateway_p99_seconds: float = Field(10.0, gt=0, le=600)
    """ActorMeshGatewaySlow: p99 of /api/chat above this for 10 minutes (LLM replies take seconds)."""
    not_ready_minutes: int = Field(15, ge=1, le=1440)
    """ActorMeshNotReady: the mesh's Ready condition has been false this long."""


HEADERS_NEED_ENDPOINT = "spec.monitoring.tracing.headersSecretRef needs spec.monitoring.tracing.endpoint"


class TracingSpec(ApiModel):
    """OpenTelemetry trace export (the OTEL_* variables) from every actor, the gateway and history."""

    # With NetworkPolicies on, `allow-tracing` lets the runtime pods reach the collector. Anything
    # finer (headers, TLS, other OTEL_* variables) goes in spec.gateway.env / spec.actors.<name>.env,
    # which win over the ConfigMap (docs/tracing.md).

    endpoint: OtlpUrl | None = None
    """OTLP/HTTP (protobuf) base URL of the collector, e.g. `http://otel-collector.observability:4318`
    (`/v1/traces` is appended). Unset: no export (trace ids still appear in the logs)."""
    sampler_ratio: float = Field(1.0, ge=0, le=1)
    """Share of new traces recorded (`parentbased_traceidratio`); a caller's sampled flag is followed."""
    headers_secret_ref: SecretKeyRef | None = None
    """A Secret key holding the export headers (`OTEL_EXPORTER_OTLP_HEADERS`: `key=value,...`, e.g.
    `authorization=Bearer%20...` for a hosted backend); every traced pod reads it."""
    collector_namespace: str | None = Field(None, max_length=63, pattern=DNS1123_LABEL)
    """Namespace of an in-cluster collector: the NetworkPolicy lets the pods reach that namespace on the
    endpoint's port. Unset: the endpoint's port on any address outside `spec.networkPolicy.egressExcept`
    (a collector outside the cluster)."""

    @model_validator(mode="after")
    def _headers_need_endpoint(self) -> TracingSpec:
        if self.headers_secret_ref is not None and self.endpoint is None:
            raise ValueError(HEADERS_NEED_ENDPOINT)
        return self


class MonitoringSpec(ApiModel):
    """Prometheus Operator objects for the mesh, who may scrape it, and trace export."""

    service_monitor: ScrapeSpec = Field(default_factory=ScrapeSpec)
    pod_monitor: ScrapeSpec = Field(default_factory=ScrapeSpec)
    prometheus_rule: PrometheusRuleSpec = Field(default_factory=PrometheusRuleSpec)
    scrape_namespace: str | None = Field(None, max_length=63, pattern=DNS1123_LABEL)
    """Namespace whose pods (Prometheus) may reach the metrics ports through the mesh's default-deny
    NetworkPolicies (unset: only the gateway's port is open, as always)."""
    tracing: TracingSpec = Field(default_factory=TracingSpec)

    @model_validator(mode="after")
    def _one_monitor(self) -> MonitoringSpec:
        if self.service_monitor.enabled and self.pod_monitor.enabled:
            raise ValueError(BOTH_MONITORS)
        return self

    def requested_kinds(self) -> list[str]:
        """Plurals of the monitoring.coreos.com kinds the spec asks for."""
        wanted = {
            "servicemonitors": self.service_monitor.enabled,
            "podmonitors": self.pod_monitor.enabled,
            "prometheusrules": self.prometheus_rule.enabled,
        }
        return [plural for plural, on in wanted.items() if on]

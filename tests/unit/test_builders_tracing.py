"""spec.monitoring.tracing: the standard OTEL_* variables reach every runtime pod that traces (and the
runtime's own settings read them as an exporting configuration), nothing changes without an endpoint,
and the NetworkPolicy lets exactly the runtime pods reach the collector's port."""

from __future__ import annotations

from typing import Any

import pytest

from actormesh_operator.api.spec import InvalidSpec
from actormesh_operator.builders import referenced_secrets
from tests.unit.builder_helpers import children, container, index, make_mesh
from tests.unit.test_builders_network import Pod, _mesh, allowed
from tests.unit.test_builders_runtime_contract import SECRET_PLACEHOLDER, runtime_pods

IN_CLUSTER = {"endpoint": "http://otel-collector.observability:4318", "collectorNamespace": "observability"}
HOSTED = {
    "endpoint": "https://otlp.example.com/otlp",
    "samplerRatio": 0.25,
    "headersSecretRef": {"name": "otlp", "key": "headers"},
}
RUNTIME = ["sentiment-analyzer", "intent-analyzer", "response-aggregator", "gateway", "history"]


def tracing_spec(tracing: dict[str, Any]) -> dict[str, Any]:
    return {"monitoring": {"tracing": tracing}}


def configmap(spec: dict[str, Any]) -> dict[str, str]:
    data: dict[str, str] = index(children(spec))[("ConfigMap", "demo-runtime-config")]["data"]
    return data


def test_the_runtime_configmap_carries_the_standard_variables() -> None:
    data = configmap(tracing_spec(HOSTED))
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://otlp.example.com/otlp"
    assert data["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert data["OTEL_TRACES_SAMPLER_ARG"] == "0.25"
    assert configmap(tracing_spec(IN_CLUSTER))["OTEL_TRACES_SAMPLER_ARG"] == "1"


def test_without_an_endpoint_nothing_changes() -> None:
    plain = children({})
    assert children(tracing_spec({"samplerRatio": 0.5})) == plain, "no endpoint: same objects, same hashes"
    assert not [k for k in configmap({}) if k.startswith("OTEL_")]
    assert ("NetworkPolicy", "demo-allow-tracing") not in index(plain)


def test_every_runtime_process_exports_as_the_spec_says(monkeypatch: pytest.MonkeyPatch) -> None:
    pods = {
        p.workload["metadata"]["name"]: p.settings for p in runtime_pods(tracing_spec(HOSTED), monkeypatch)
    }
    tracing = {name: s for name, s in pods.items() if name != "demo-mocks"}
    assert len(tracing) == 11, sorted(pods)  # nine actors, the gateway and history
    for name, settings in tracing.items():
        assert settings.otlp_traces_endpoint() == "https://otlp.example.com/otlp/v1/traces", name
        assert settings.otel_exporter_otlp_headers == SECRET_PLACEHOLDER, name
        assert (settings.otel_traces_sampler, settings.otel_traces_sampler_arg) == (
            "parentbased_traceidratio",
            0.25,
        )


@pytest.mark.parametrize("source", RUNTIME)
def test_runtime_pods_reach_an_in_cluster_collector_and_nothing_else(source: str) -> None:
    policies, pods = _mesh(tracing_spec(IN_CLUSTER))
    collector = Pod("observability", {"app": "otel-collector"})
    assert allowed(policies, pods[source], collector, 4318)
    assert not allowed(policies, pods[source], collector, 4317)
    assert not allowed(policies, pods[source], Pod("elsewhere", {"app": "otel-collector"}), 4318)
    assert not allowed(policies, pods[source], pods["internet"], 4318)


def test_a_hosted_collector_is_reached_outside_the_cluster_only() -> None:
    policies, pods = _mesh(tracing_spec(HOSTED))
    assert allowed(policies, pods["gateway"], pods["internet"], 443)
    assert not allowed(policies, pods["gateway"], pods["private-vm"], 443)
    assert not allowed(policies, pods["gateway"], pods["metadata"], 443)
    assert not allowed(policies, pods["mocks"], pods["internet"], 443), "mocks are not traced"
    assert not allowed(policies, pods["redis"], pods["internet"], 443)


@pytest.mark.parametrize(
    "endpoint", ["otel-collector:4318", "grpc://otel:4317", "http://", "http://otel:4318?x=1"]
)
def test_an_endpoint_that_is_not_an_http_url_is_refused_naming_the_field(endpoint: str) -> None:
    with pytest.raises(InvalidSpec, match=r"spec\.monitoring\.tracing\.endpoint"):
        make_mesh(tracing_spec({"endpoint": endpoint}))


def test_the_export_headers_come_from_their_secret_and_are_checked() -> None:
    objs = children(tracing_spec(HOSTED))
    workloads = [o for o in objs if o["kind"] in {"Deployment", "StatefulSet"}]
    reading = {
        o["metadata"]["name"]
        for o in workloads
        for var in container(o).get("env", [])
        if var["name"] == "OTEL_EXPORTER_OTLP_HEADERS"
        and var["valueFrom"]["secretKeyRef"] == {"name": "otlp", "key": "headers"}
    }
    assert len(reading) == 11, "nine actors, the gateway and history"
    assert "demo-mocks" not in reading
    refs = {(r.field_path, r.name, r.key) for r in referenced_secrets(make_mesh(tracing_spec(HOSTED)))}
    assert ("spec.monitoring.tracing.headersSecretRef", "otlp", "headers") in refs


def test_headers_without_an_endpoint_are_refused() -> None:
    with pytest.raises(InvalidSpec, match=r"spec\.monitoring\.tracing\.headersSecretRef needs"):
        make_mesh(tracing_spec({"headersSecretRef": {"name": "otlp", "key": "headers"}}))

"""The PrometheusRule's alerts, checked by the real rule checker: `promtool check rules` on the rendered
rules, then `promtool test rules` firing every alert from sample series (and not firing it for a
healthy series, before its `for:` has passed, or for another mesh's series).

promtool is built from its Go module by `hack/tools/build.sh promtool` (cached; `make tools-bin`).
Annotations are checked by `check rules` (template syntax); the firing tests compare labels only.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from actormesh_operator.builders.alerts import alert_groups
from tests.support.tools import tool_binary
from tests.unit.builder_helpers import make_mesh

pytestmark = pytest.mark.integration

MESH = 'namespace="shop", mesh="demo"'
OTHER = 'namespace="shop", mesh="other"'
LABELS = {"namespace": "shop", "mesh": "demo"}


def series(metric: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f"{metric}{{{labels}}}", "values": values}


def fires(alert: str, at: str, *expected: dict[str, str]) -> dict[str, Any]:
    return {"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": e} for e in expected]}


def silent(alert: str, at: str) -> dict[str, Any]:
    return {"eval_time": at, "alertname": alert, "exp_alerts": []}


CASES: dict[str, tuple[list[dict[str, str]], list[dict[str, Any]]]] = {
    "ActorMeshLagGrowing": (
        [
            series("actormesh_queue_pending_messages", f'{MESH}, consumer="intent_analyzer"', "0+5x40"),
            series("actormesh_queue_pending_messages", f'{MESH}, consumer="decision_router"', "500x40"),
            series("actormesh_queue_pending_messages", f'{MESH}, consumer="history_writer"', "0+5x40"),
            series("actormesh_queue_pending_messages", f'{OTHER}, consumer="intent_analyzer"', "0+1x40"),
        ],
        [
            silent("ActorMeshLagGrowing", "8m"),
            fires(
                "ActorMeshLagGrowing",
                "20m",
                {**LABELS, "consumer": "intent_analyzer", "severity": "warning"},
            ),
        ],
    ),
    "ActorMeshDeadLetters": (
        [
            series(
                "actormesh_messages_dead_lettered_total",
                f'{MESH}, actor="context_retriever", reason="exhausted", pod="a"',
                "0x5 1x40",
            ),
        ],
        [
            silent("ActorMeshDeadLetters", "3m"),
            fires(
                "ActorMeshDeadLetters",
                "10m",
                {**LABELS, "actor": "context_retriever", "reason": "exhausted", "severity": "warning"},
            ),
            silent("ActorMeshDeadLetters", "40m"),
        ],
    ),
    "ActorMeshActorErrors": (
        [
            series(
                "actormesh_messages_failed_total", f'{MESH}, actor="response_generator", pod="a"', "0+6x30"
            ),
            series(
                "actormesh_messages_processed_total",
                f'{MESH}, actor="response_generator", pod="a"',
                "0+60x30",
            ),
            series("actormesh_messages_failed_total", f'{MESH}, actor="intent_analyzer", pod="a"', "0+1x30"),
            series(
                "actormesh_messages_processed_total", f'{MESH}, actor="intent_analyzer", pod="a"', "0+60x30"
            ),
        ],
        [
            silent("ActorMeshActorErrors", "8m"),
            fires(
                "ActorMeshActorErrors",
                "20m",
                {**LABELS, "actor": "response_generator", "severity": "warning"},
            ),
        ],
    ),
    "ActorMeshGatewaySlow": (
        [
            series(
                "actormesh_gateway_request_seconds_bucket",
                f'{MESH}, route="/api/chat", method="POST", status="200", le="{le}"',
                values,
            )
            for le, values in (("5.0", "0x30"), ("10.0", "0x30"), ("30.0", "0+10x30"), ("+Inf", "0+10x30"))
        ],
        [
            silent("ActorMeshGatewaySlow", "8m"),
            fires("ActorMeshGatewaySlow", "20m", {**LABELS, "severity": "warning"}),
        ],
    ),
    "ActorMeshGatewayErrors": (
        [
            series(
                "actormesh_gateway_requests_total",
                f'{MESH}, route="/api/chat", method="POST", status="500"',
                "0+10x30",
            ),
            series(
                "actormesh_gateway_requests_total",
                f'{MESH}, route="/api/chat", method="POST", status="200"',
                "0+10x30",
            ),
            series(
                "actormesh_gateway_requests_total",
                f'{OTHER}, route="/api/chat", method="POST", status="200"',
                "0+10x30",
            ),
        ],
        [
            silent("ActorMeshGatewayErrors", "8m"),
            fires("ActorMeshGatewayErrors", "20m", {**LABELS, "severity": "warning"}),
        ],
    ),
    "ActorMeshNatsDown": (
        [
            series("actormesh_nats_up", f'{MESH}, pod="demo-history-0"', "1x5 0x20"),
            series("actormesh_nats_up", f'{OTHER}, pod="other-history-0"', "1x25"),
        ],
        [
            silent("ActorMeshNatsDown", "4m"),
            silent("ActorMeshNatsDown", "7m"),  # down for 1 minute: not yet
            fires("ActorMeshNatsDown", "10m", {**LABELS, "severity": "critical"}),
        ],
    ),
    "ActorMeshRedisDown": (
        [
            series("actormesh_cache_redis_up", f'{MESH}, store="cache", pod="a"', "1x3 0x20"),
            series("actormesh_cache_redis_up", f'{MESH}, store="cache", pod="b"', "1x3 0x20"),
            series("actormesh_cache_redis_up", f'{MESH}, store="sessions", pod="g"', "1x23"),
        ],
        [
            silent("ActorMeshRedisDown", "3m"),
            fires("ActorMeshRedisDown", "10m", {**LABELS, "store": "cache", "severity": "warning"}),
        ],
    ),
    "ActorMeshNatsServerDown": (
        [
            series(
                "actormesh_nats_server_up", f'{MESH}, server="demo-nats-1", pod="demo-history-0"', "1x3 0x20"
            ),
            series("actormesh_nats_server_up", f'{MESH}, server="demo-nats-0", pod="demo-history-0"', "1x23"),
            series("actormesh_nats_server_up", f'{OTHER}, server="other-nats-0", pod="h"', "0x23"),
        ],
        [
            silent("ActorMeshNatsServerDown", "6m"),  # down for 3 minutes: not yet
            fires(
                "ActorMeshNatsServerDown", "15m", {**LABELS, "server": "demo-nats-1", "severity": "warning"}
            ),
        ],
    ),
    "ActorMeshNatsStorageFilling": (
        [
            series(
                "actormesh_nats_jetstream_storage_used_bytes",
                f'{MESH}, server="demo-nats-0", pod="h"',
                "900x30",
            ),
            series(
                "actormesh_nats_jetstream_storage_limit_bytes",
                f'{MESH}, server="demo-nats-0", pod="h"',
                "1000x30",
            ),
            series(
                "actormesh_nats_jetstream_storage_used_bytes",
                f'{MESH}, server="demo-nats-1", pod="h"',
                "500x30",
            ),
            series(
                "actormesh_nats_jetstream_storage_limit_bytes",
                f'{MESH}, server="demo-nats-1", pod="h"',
                "1000x30",
            ),
        ],
        [
            silent("ActorMeshNatsStorageFilling", "5m"),
            fires(
                "ActorMeshNatsStorageFilling",
                "20m",
                {**LABELS, "server": "demo-nats-0", "severity": "warning"},
            ),
        ],
    ),
    # interval 30m in RULES_SPEC: stale after 3600 s without a snapshot (promtool's clock starts at 0).
    "ActorMeshHistoryBackupStale": (
        [
            series("actormesh_history_backup_last_success_timestamp_seconds", f'{MESH}, pod="h"', "0x100"),
            series(
                "actormesh_history_backup_last_success_timestamp_seconds", f'{OTHER}, pod="o"', "0+60x100"
            ),
        ],
        [
            silent("ActorMeshHistoryBackupStale", "50m"),
            silent("ActorMeshHistoryBackupStale", "70m"),  # stale since 60m: `for` not over yet
            fires("ActorMeshHistoryBackupStale", "90m", {**LABELS, "severity": "warning"}),
        ],
    ),
    "ActorMeshLLMRejected": (
        [
            series(
                "actormesh_llm_requests_total",
                f'{MESH}, actor="intent_analyzer", outcome="configuration", pod="a"',
                "0x5 0+3x30",
            ),
            series(
                "actormesh_llm_requests_total",
                f'{MESH}, actor="intent_analyzer", outcome="ok", pod="b"',
                "0+9x40",
            ),
            series(
                "actormesh_llm_requests_total",
                f'{MESH}, actor="response_generator", outcome="timeout", pod="a"',
                "0+3x40",
            ),
            series(
                "actormesh_llm_requests_total",
                f'{OTHER}, actor="intent_analyzer", outcome="configuration", pod="o"',
                "0x40",
            ),
        ],
        [
            silent("ActorMeshLLMRejected", "5m"),
            silent("ActorMeshLLMRejected", "8m"),  # rejected for 2 minutes: `for` not over yet
            fires("ActorMeshLLMRejected", "15m", {**LABELS, "severity": "warning"}),
        ],
    ),
    "ActorMeshNotReady": (
        [
            series("actormesh_operator_mesh_ready", 'mesh_namespace="shop", mesh="demo", pod="op"', "0x30"),
            series("actormesh_operator_mesh_ready", 'mesh_namespace="shop", mesh="other", pod="op"', "0x30"),
        ],
        [
            silent("ActorMeshNotReady", "10m"),
            fires(
                "ActorMeshNotReady",
                "20m",
                {"mesh_namespace": "shop", "mesh": "demo", "severity": "warning"},
            ),
        ],
    ),
}


RULES_SPEC: dict[str, Any] = {
    "monitoring": {"prometheusRule": {"enabled": True}},
    "history": {"backup": {"enabled": True, "interval": "30m"}},
    "llm": {"model": "gpt-4o-mini"},
}
"""The mesh whose rules are tested: every optional alert on (the backup alert needs backups, the LLM
alert an LLM)."""


@pytest.fixture(scope="module")
def promtool() -> str:
    return tool_binary("promtool")


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    mesh = make_mesh(RULES_SPEC, name="demo", namespace="shop")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": alert_groups(mesh)}))
    return path


def run(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def test_promtool_checks_the_rendered_rules(promtool: str, rules_file: Path) -> None:
    result = run(promtool, "check", "rules", "--lint-fatal", str(rules_file), cwd=rules_file.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(CASES)} rules found" in result.stdout + result.stderr


def test_every_alert_has_a_firing_case() -> None:
    rendered = alert_groups(make_mesh(RULES_SPEC))
    assert {r["alert"] for g in rendered for r in g["rules"]} == set(CASES)


def test_optional_alerts_follow_the_spec() -> None:
    def alerts(spec: dict[str, Any]) -> set[str]:
        return {r["alert"] for g in alert_groups(make_mesh(spec)) for r in g["rules"]}

    assert "ActorMeshHistoryBackupStale" not in alerts({})
    assert "ActorMeshLLMRejected" not in alerts({})
    external = alerts({"nats": {"external": {"url": "nats://n.infra:4222"}}})
    assert not {"ActorMeshNatsServerDown", "ActorMeshNatsStorageFilling"} & external


@pytest.mark.parametrize("alert", sorted(CASES))
def test_alert_fires_from_sample_series(promtool: str, rules_file: Path, alert: str) -> None:
    # Labels-only comparison: drop annotations from the copy promtool tests (check rules covered them).
    groups = yaml.safe_load(rules_file.read_text())["groups"]
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (rules_file.parent / "bare.yaml").write_text(yaml.safe_dump({"groups": groups}))
    input_series, checks = CASES[alert]
    test = {
        "rule_files": ["bare.yaml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": input_series, "alert_rule_test": checks}],
    }
    (rules_file.parent / "test.yaml").write_text(yaml.safe_dump(test, sort_keys=False))
    result = run(promtool, "test", "rules", "test.yaml", cwd=rules_file.parent)
    assert result.returncode == 0, result.stdout + result.stderr

"""`spec.monitoring.prometheusRule` → a PrometheusRule with the mesh's alerts.

Called by `build_children` (only when the API server serves PrometheusRules). Every expression is
limited to this mesh's series by `namespace` (set by the Prometheus Operator from the monitor) and
`mesh` (the target label `builders/monitoring.py` adds), so two meshes never share an alert. The
readiness alert reads the operator's own `actormesh_operator_mesh_ready` gauge. Thresholds come from
the spec. tests/integration/test_alert_rules.py runs `promtool check rules` and `promtool test rules`
on this output and fires every alert from sample series; docs/monitoring.md lists the alerts.
"""

from __future__ import annotations

from typing import Any

from actormesh_operator.api.monitoring import PrometheusRuleSpec
from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import labels, names
from actormesh_operator.builders.kinds import PROMETHEUS_RULE
from actormesh_operator.builders.meta import Manifest, manifest, object_meta

CHAT_ROUTE = "/api/chat"
RUNBOOK = "https://github.com/actormesh/actormesh/blob/main/docs/monitoring.md#alerts"


def selector(mesh: ActorMesh) -> str:
    """PromQL label matchers for this mesh's runtime series."""
    return f'namespace="{mesh.namespace}", mesh="{names.instance_label(mesh.name)}"'


def _alert(
    name: str, expr: str, *, for_: str, severity: str, summary: str, description: str
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{RUNBOOK}-{name.lower()}",
        },
    }


def _queue_alerts(sel: str, rule: PrometheusRuleSpec) -> list[dict[str, Any]]:
    by = "namespace, mesh"
    pending = f'actormesh_queue_pending_messages{{{sel}, consumer!="history_writer"}}'
    return [
        _alert(
            "ActorMeshLagGrowing",
            f"(deriv({pending}[5m]) > 0) and ({pending} >= {rule.lag_min_messages})",
            for_=f"{rule.lag_growing_minutes}m",
            severity="warning",
            summary="An actor falls behind its queue",
            description="{{ $labels.consumer }} in {{ $labels.namespace }}/{{ $labels.mesh }} has a backlog"
            " of {{ $value }} messages that kept growing: add replicas or look for a slow dependency.",
        ),
        _alert(
            "ActorMeshDeadLetters",
            f"sum by ({by}, actor, reason)"
            f" (increase(actormesh_messages_dead_lettered_total{{{sel}}}[15m])) > 0",
            for_="0m",
            severity="warning",
            summary="Envelopes are being dead-lettered",
            description="{{ $labels.actor }} dead-lettered messages ({{ $labels.reason }}) in the last 15"
            " minutes; inspect them with `actormesh dlq list`.",
        ),
        _alert(
            "ActorMeshActorErrors",
            f"sum by ({by}, actor) (rate(actormesh_messages_failed_total{{{sel}}}[5m]))"
            f" / (sum by ({by}, actor) (rate(actormesh_messages_processed_total{{{sel}}}[5m]))"
            f" + sum by ({by}, actor) (rate(actormesh_messages_failed_total{{{sel}}}[5m])))"
            f" > {rule.error_ratio}",
            for_="10m",
            severity="warning",
            summary="An actor fails too many attempts",
            description="{{ $labels.actor }} failed {{ $value | humanizePercentage }} of its attempts.",
        ),
    ]


def _gateway_alerts(sel: str, rule: PrometheusRuleSpec) -> list[dict[str, Any]]:
    by = "namespace, mesh"
    chat = f'{sel}, route="{CHAT_ROUTE}"'
    return [
        _alert(
            "ActorMeshGatewaySlow",
            f"histogram_quantile(0.99, sum by ({by}, le)"
            f" (rate(actormesh_gateway_request_seconds_bucket{{{chat}}}[5m]))) > {rule.gateway_p99_seconds}",
            for_="10m",
            severity="warning",
            summary="Chat replies are slow",
            description="p99 of POST /api/chat is {{ $value | humanizeDuration }}.",
        ),
        _alert(
            "ActorMeshGatewayErrors",
            f'sum by ({by}) (rate(actormesh_gateway_requests_total{{{sel}, status=~"5.."}}[5m]))'
            f" / sum by ({by}) (rate(actormesh_gateway_requests_total{{{sel}}}[5m])) > {rule.error_ratio}",
            for_="10m",
            severity="warning",
            summary="The gateway answers with server errors",
            description="{{ $value | humanizePercentage }} of gateway requests end in 5xx.",
        ),
    ]


def _dependency_alerts(mesh: ActorMesh, sel: str, rule: PrometheusRuleSpec) -> list[dict[str, Any]]:
    by = "namespace, mesh"
    ready = f'actormesh_operator_mesh_ready{{mesh_namespace="{mesh.namespace}", mesh="{mesh.name}"}}'
    alerts = [
        _alert(
            "ActorMeshNatsDown",
            f"max by ({by}) (actormesh_nats_up{{{sel}}}) == 0",
            for_="2m",
            severity="critical",
            summary="NATS JetStream does not answer",
            description="The history service cannot read JetStream in {{ $labels.namespace }}/"
            "{{ $labels.mesh }}: no envelope moves.",
        ),
        _alert(
            "ActorMeshNotReady",
            f"max by (mesh_namespace, mesh) ({ready}) == 0",
            for_=f"{rule.not_ready_minutes}m",
            severity="warning",
            summary="The mesh is not Ready",
            description="ActorMesh {{ $labels.mesh_namespace }}/{{ $labels.mesh }} has not been Ready for"
            f" {rule.not_ready_minutes} minutes: see `kubectl describe actormesh`.",
        ),
    ]
    if mesh.spec.redis.enabled:
        alerts.append(
            _alert(
                "ActorMeshRedisDown",
                f"min by ({by}, store) (actormesh_cache_redis_up{{{sel}}}) == 0",
                for_="2m",
                severity="warning",
                summary="Redis does not answer",
                description="{{ $labels.store }} runs without Redis (degraded: in-process fallback).",
            )
        )
    return alerts


NATS_STORAGE_RATIO = 0.85
"""ActorMeshNatsStorageFilling: JetStream's file store this full (of max_file_store) on one server."""


def _nats_server_alerts(mesh: ActorMesh, sel: str) -> list[dict[str, Any]]:
    """From the NATS server metrics the history service reads (managed NATS only)."""
    if not mesh.spec.nats.managed:
        return []
    by = "namespace, mesh, server"
    used = f"actormesh_nats_jetstream_storage_used_bytes{{{sel}}}"
    limit = f"actormesh_nats_jetstream_storage_limit_bytes{{{sel}}}"
    return [
        _alert(
            "ActorMeshNatsServerDown",
            f"max by ({by}) (actormesh_nats_server_up{{{sel}}}) == 0",
            for_="5m",
            severity="warning",
            summary="A NATS server's monitoring endpoint does not answer",
            description="{{ $labels.server }} in {{ $labels.namespace }}/{{ $labels.mesh }} has not answered"
            " for 5 minutes (with 3 replicas JetStream keeps working on the other two).",
        ),
        _alert(
            "ActorMeshNatsStorageFilling",
            f"max by ({by}) ({used} / {limit}) > {NATS_STORAGE_RATIO}",
            for_="10m",
            severity="warning",
            summary="JetStream's file store is nearly full",
            description="{{ $labels.server }} uses {{ $value | humanizePercentage }} of its JetStream file"
            " store: when full, publishes fail. Look for a growing backlog or dead letters, or raise"
            " spec.nats.jetstream.maxFileStore (and the volume).",
        ),
    ]


def _backup_alerts(mesh: ActorMesh, sel: str) -> list[dict[str, Any]]:
    backup = mesh.spec.history.backup
    if not backup.enabled:
        return []
    limit = 2 * backup.interval_seconds()
    last = f"max by (namespace, mesh) (actormesh_history_backup_last_success_timestamp_seconds{{{sel}}})"
    return [
        _alert(
            "ActorMeshHistoryBackupStale",
            f"time() - {last} > {limit}",
            for_="15m",
            severity="warning",
            summary="No recent snapshot of the conversation history",
            description="The newest history snapshot of {{ $labels.namespace }}/{{ $labels.mesh }} is older"
            f" than two intervals ({backup.interval} each): see `history snapshot failed` in the history"
            " pod's log and actormesh_history_backup_failures_total.",
        )
    ]


def _llm_alerts(mesh: ActorMesh, sel: str) -> list[dict[str, Any]]:
    """Only with `spec.llm`: the endpoint rejects the mesh's LLM settings (the runtime's outcome
    `configuration`: a bad key, no access, an unknown model). Every message is still answered, from rules
    and templates, so nothing else would show it."""
    if mesh.spec.llm is None:
        return []
    rejected = f'actormesh_llm_requests_total{{{sel}, outcome="configuration"}}'
    return [
        _alert(
            "ActorMeshLLMRejected",
            f"sum by (namespace, mesh) (increase({rejected}[10m])) > 0",
            for_="5m",
            severity="warning",
            summary="The LLM endpoint rejects the mesh's LLM settings",
            description="LLM calls of {{ $labels.namespace }}/{{ $labels.mesh }} are refused as configured"
            " (401/403/404 or a model name litellm cannot route): every reply comes from rules and"
            " templates. Check spec.llm.model, spec.llm.apiBase and the key in spec.llm.apiKeySecretRef;"
            " the LLM actors log `the LLM endpoint rejects the configuration`.",
        )
    ]


def alert_groups(mesh: ActorMesh) -> list[dict[str, Any]]:
    """The rule groups (what promtool reads under `groups:`)."""
    rule = mesh.spec.monitoring.prometheus_rule
    sel = selector(mesh)
    rules = [
        *_queue_alerts(sel, rule),
        *_gateway_alerts(sel, rule),
        *_dependency_alerts(mesh, sel, rule),
        *_nats_server_alerts(mesh, sel),
        *_backup_alerts(mesh, sel),
        *_llm_alerts(mesh, sel),
    ]
    return [{"name": f"actormesh.{mesh.namespace}.{mesh.name}", "rules": rules}]


def build_prometheus_rule(mesh: ActorMesh) -> Manifest:
    rule = mesh.spec.monitoring.prometheus_rule
    meta = object_meta(mesh, names.alerts(mesh.name), labels.MONITORING)
    meta["labels"] = {**rule.labels, **meta["labels"]}
    return manifest(
        PROMETHEUS_RULE.api_version, PROMETHEUS_RULE.kind, meta, spec={"groups": alert_groups(mesh)}
    )

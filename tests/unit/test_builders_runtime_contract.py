"""The pods the builders render run the runtime as the runtime expects: checked against the runtime itself.

For every runtime workload (each actor, gateway, history, mocks) of a mesh using every feature, this
parses the container's `actormesh` arguments with the runtime's own command parsers, builds the
runtime's `RuntimeSettings` from exactly the environment the pod gets (runtime ConfigMap + container
env, Secrets replaced by placeholders), and checks what that process would do against the manifest:
the address and port it listens on against the container ports, the probe paths against the runtime's
HTTP routes, the URLs against the mesh's Services, the files it writes against the writable mounts of
a read-only root filesystem, and its shutdown budget against terminationGracePeriodSeconds. A renamed
setting, a changed default port or a longer drain on either side fails here, not in a cluster.
"""

from __future__ import annotations

import argparse
import importlib
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest

from actormesh_runtime.bus.health import HealthServer
from actormesh_runtime.catalog import ACTORS, Env, Ports
from actormesh_runtime.cli import COMMANDS
from actormesh_runtime.settings import GUIDE_ALIASES, RuntimeSettings
from tests.unit.builder_helpers import RICH_SPEC, children, container, index

ROOT = Path(__file__).resolve().parents[2]
SECRET_PLACEHOLDER = "from-a-secret-long-enough-for-an-hs256-key"
FULL_SPEC: dict[str, Any] = {
    **RICH_SPEC,
    "nats": {"replicas": 3, "tls": {"secretName": "nats-cert"}},
    "actors": {
        "defaults": {"replicas": 2, "concurrency": 5},
        "intentAnalyzer": {"logLevel": "WARNING", "processingTimeoutSeconds": 45},
    },
    # Every spec.runtime setting the runtime reads today, none at its default (the gateway limits are
    # left out until the reliability branch's RuntimeSettings fields land; see test_api_runtime.py).
    "runtime": {
        "logLevel": "DEBUG",
        "logFormat": "text",
        "cacheTtlSeconds": 60,
        "apiTimeoutSeconds": 2.5,
        "requestTimeoutSeconds": 90,
        "conversationDeadlineSeconds": 300,
        "processingTimeoutSeconds": 30,
        "maxMessageChars": 2000,
        "escalationConfidenceThreshold": 0.6,
    },
    "history": {
        "backup": {
            "enabled": True,
            "interval": "2h",
            "retention": 4,
            "preMigrationRetention": 2,
            "preMigrationMaxAgeDays": 7.5,
        }
    },
}
MANAGED_REDIS_PASSWORD_SPEC: dict[str, Any] = {"redis": {"passwordSecretRef": {"name": "ra", "key": "pw"}}}
EXTERNAL_REDIS_SPEC: dict[str, Any] = {
    "redis": {"external": {"url": "redis://r.infra:6379/0", "passwordSecretRef": {"name": "rp", "key": "pw"}}}
}


@dataclass(frozen=True)
class Pod:
    """One rendered runtime workload, its parsed command line and the settings its process would build."""

    workload: dict[str, Any]
    container: dict[str, Any]
    command: str
    args: argparse.Namespace
    settings: RuntimeSettings

    @property
    def pod_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.workload["spec"]["template"]["spec"]
        return spec


def _parse(argv: list[str]) -> tuple[str, argparse.Namespace]:
    """What `actormesh ARGV` would parse, with the runtime's own per-command parser (cli.main's path)."""
    name = argv[0]
    assert name in COMMANDS, f"`actormesh {name}` is not a runtime command"
    module = importlib.import_module(f"actormesh_runtime.commands.{COMMANDS[name][0]}")
    parser = argparse.ArgumentParser(prog=f"actormesh {name}")
    module.add_arguments(parser)
    return name, parser.parse_args(argv[1:])


_AGREED_NOT_YET_READ = {
    name
    for name in (
        Env.JWT_PREVIOUS_SECRET, Env.JWT_ISSUER, Env.JWT_AUDIENCE, Env.GATEWAY_ANONYMOUS, Env.NATS_USER,
        Env.NATS_PASSWORD, Env.NATS_TLS_CA,
    )
    if name.lower() not in RuntimeSettings.model_fields
}  # fmt: skip
"""Issue 11's auth variables (INTERFACES.md, security <-> secop), which the runtime side adds to
RuntimeSettings on its own branch; empty once both are merged, so the check is then exact again."""


def _pod_env(objs: dict[tuple[str, str], dict[str, Any]], c: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        env.update(objs[("ConfigMap", source["configMapRef"]["name"])]["data"])
    for var in c.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            assert set(var["valueFrom"]) == {"secretKeyRef"}, var
            env[var["name"]] = SECRET_PLACEHOLDER
    return env


def runtime_pods(spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> list[Pod]:
    objs = index(children(spec))
    pods = []
    for obj in objs.values():
        if obj["kind"] not in {"Deployment", "StatefulSet"}:
            continue
        c = container(obj)
        if c.get("command") != ["actormesh"]:
            continue  # NATS, Redis
        env = _pod_env(objs, c)
        unknown = {k for k in env if k.lower() not in RuntimeSettings.model_fields} - _AGREED_NOT_YET_READ
        assert not unknown, f"{obj['metadata']['name']}: env vars the runtime does not read: {unknown}"
        with monkeypatch.context() as m:
            for field in [*RuntimeSettings.model_fields, *GUIDE_ALIASES]:  # nothing from our own environment
                m.delenv(field.upper(), raising=False)
            for key, value in env.items():
                m.setenv(key, value)
            settings = RuntimeSettings()
        command, args = _parse(c["args"])
        pods.append(Pod(obj, c, command, args, settings))
    return pods


def _listening_ports(pod: Pod) -> set[int]:
    """The TCP ports the process binds, as its command would compute them."""
    if pod.command == "gateway":
        return {pod.args.port or pod.settings.port}
    if pod.command in {"actor", "history"}:
        return {pod.args.http_port or pod.settings.actor_http_port}
    assert pod.command == "mocks"
    return {pod.args.customers_port, pod.args.orders_port, pod.args.tracking_port}


def _answers(pod: Pod, port: int, path: str) -> bool:
    """Whether the process answers GET `path` on `port` with a route (not 404/405), without sockets:
    the actor/history health server's pure `respond`, or the FastAPI apps through a TestClient (no
    lifespan, so no NATS: /api/ready then says 503, which is still a served route)."""
    if pod.command in {"actor", "history"}:
        assert port == pod.settings.actor_http_port
        return HealthServer(lambda: []).respond("GET", path)[0] == 200
    from fastapi.testclient import TestClient

    if pod.command == "gateway":
        from actormesh_runtime.gateway.app import create_app

        assert port == pod.settings.port
        app = create_app(pod.settings)
    else:
        from actormesh_runtime.mocks.apps import build_apps

        apps = build_apps()
        by_port = {
            pod.args.customers_port: apps.customers,
            pod.args.orders_port: apps.orders,
            pod.args.tracking_port: apps.tracking,
        }
        app = by_port[port]
    status = TestClient(app).get(path).status_code
    return status not in {404, 405}


def _services(objs: list[dict[str, Any]]) -> dict[str, set[int]]:
    """In-cluster DNS name → ports of every Service the mesh renders."""
    return {
        f"{o['metadata']['name']}.{o['metadata']['namespace']}.svc.cluster.local": {
            p["port"] for p in o["spec"]["ports"]
        }
        for o in objs
        if o["kind"] == "Service"
    }


def _assert_served(url: str, services: dict[str, set[int]], what: str) -> None:
    parts = urlsplit(url)
    assert parts.hostname in services, f"{what}: {url} names no Service of the mesh"
    assert parts.port in services[parts.hostname], f"{what}: {url} port not on the Service"


@pytest.mark.parametrize(
    "spec",
    [{}, FULL_SPEC, EXTERNAL_REDIS_SPEC, MANAGED_REDIS_PASSWORD_SPEC],
    ids=["minimal", "full", "ext-redis", "redis-password"],
)
def test_every_runtime_pod_runs_a_real_command_with_settings_that_validate(
    spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    pods = runtime_pods(spec, monkeypatch)
    commands = sorted(p.command for p in pods)
    assert commands == sorted(["actor"] * len(ACTORS) + ["gateway", "history", "mocks"])
    assert {p.args.name for p in pods if p.command == "actor"} == {a.name.value for a in ACTORS}
    for pod in pods:
        s = pod.settings
        assert s.host == "0.0.0.0", "pods must listen on the pod IP, not loopback"
        assert s.log_format == spec.get("runtime", {}).get("logFormat", "json")  # JSON unless asked
        assert s.mesh_name == "demo"


@pytest.mark.parametrize("spec", [{}, FULL_SPEC], ids=["minimal", "full"])
def test_container_ports_and_probes_match_what_the_process_serves(
    spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for pod in runtime_pods(spec, monkeypatch):
        name = pod.workload["metadata"]["name"]
        ports = {p["name"]: p["containerPort"] for p in pod.container["ports"]}
        assert set(ports.values()) == _listening_ports(pod), name
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = pod.container[kind]["httpGet"]
            port = ports[probe["port"]]
            assert _answers(pod, port, probe["path"]), f"{name} {kind}: {probe['path']} not served on {port}"
        assert not _answers(pod, next(iter(ports.values())), "/no-such-probe-path"), "check is vacuous"


def test_expected_ports_and_probe_paths() -> None:
    """The contract spelled out (so a change on both sides at once is still a visible decision)."""
    objs = index(children())
    gateway = container(objs[("Deployment", "demo-gateway")])
    assert gateway["ports"][0]["containerPort"] == Ports.GATEWAY == 8000
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/api/ready"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/api/health"
    for name in ("demo-history", "demo-sentiment-analyzer"):
        kind = "StatefulSet" if name == "demo-history" else "Deployment"
        c = container(objs[(kind, name)])
        assert c["ports"][0]["containerPort"] == 8080
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    mocks = container(objs[("Deployment", "demo-mocks")])
    assert sorted(p["containerPort"] for p in mocks["ports"]) == [8001, 8002, 8003]


@pytest.mark.parametrize("spec", [{}, FULL_SPEC], ids=["minimal", "full"])
def test_urls_point_at_the_mesh_services(spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    services = _services(children(spec))
    for pod in runtime_pods(spec, monkeypatch):
        s = pod.settings
        _assert_served(s.nats_url, services, "NATS_URL")
        assert urlsplit(s.nats_url).port == Ports.NATS_CLIENT
        assert s.redis_url is not None
        _assert_served(s.redis_url, services, "REDIS_URL")
        for url in (s.customer_api_url, s.orders_api_url, s.tracking_api_url):
            _assert_served(url, services, "commerce API URL")


def test_secrets_reach_the_settings_that_read_them(monkeypatch: pytest.MonkeyPatch) -> None:
    by_name = {p.workload["metadata"]["name"]: p for p in runtime_pods(FULL_SPEC, monkeypatch)}
    assert by_name["demo-gateway"].settings.jwt_secret == SECRET_PLACEHOLDER
    for actor in ACTORS:
        s = by_name[f"demo-{actor.k8s_name}"].settings
        assert s.llm_api_key == (SECRET_PLACEHOLDER if actor.uses_llm else None), actor.name
        assert s.actor_concurrency == 5
        if actor.uses_llm:
            assert s.litellm_model == "gpt-4o-mini"
            assert s.llm_api_base == "https://llm.example.com/v1"
    ext = {p.workload["metadata"]["name"]: p for p in runtime_pods(EXTERNAL_REDIS_SPEC, monkeypatch)}
    assert ext["demo-gateway"].settings.redis_password == SECRET_PLACEHOLDER
    assert ext["demo-gateway"].settings.redis_url == "redis://r.infra:6379/0"
    assert ext["demo-execution-coordinator"].settings.redis_password == SECRET_PLACEHOLDER
    assert ext["demo-response-aggregator"].settings.redis_password is None
    managed = {
        p.workload["metadata"]["name"]: p for p in runtime_pods(MANAGED_REDIS_PASSWORD_SPEC, monkeypatch)
    }
    assert managed["demo-gateway"].settings.redis_password == SECRET_PLACEHOLDER
    assert managed["demo-context-retriever"].settings.redis_password == SECRET_PLACEHOLDER
    assert managed["demo-decision-router"].settings.redis_password is None


def _writable(pod: Pod) -> list[PurePosixPath]:
    return [PurePosixPath(m["mountPath"]) for m in pod.container.get("volumeMounts", [])]


def _image_home() -> str | None:
    dockerfile = ROOT / "Dockerfile.runtime"
    if not dockerfile.exists():
        return None
    match = re.search(r"\bHOME=(\S+)", dockerfile.read_text())
    return match.group(1) if match else None


def test_every_path_the_runtime_writes_is_a_writable_mount(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read-only root filesystem: /tmp (Python, SQLite temp files), HOME (litellm and other caches) and
    the SQLite directory must be volumes."""
    home = _image_home()
    for pod in runtime_pods(FULL_SPEC, monkeypatch):
        name = pod.workload["metadata"]["name"]
        assert pod.container["securityContext"]["readOnlyRootFilesystem"] is True
        writable = _writable(pod)
        must_write = [PurePosixPath("/tmp")]
        if home is not None:
            must_write.append(PurePosixPath(home))
        if pod.command == "history":
            must_write.append(PurePosixPath(pod.args.db or pod.settings.sqlite_db_path).parent)
            if pod.settings.history_backup_dir is not None:
                must_write.append(PurePosixPath(pod.settings.history_backup_dir))
        for path in must_write:
            assert any(path == w or w in path.parents for w in writable), f"{name}: {path} is read-only"
        volumes = {v["name"] for v in pod.pod_spec["volumes"]}
        claims = {t["metadata"]["name"] for t in pod.workload["spec"].get("volumeClaimTemplates", [])}
        assert {m["name"] for m in pod.container["volumeMounts"]} <= volumes | claims


def test_history_keeps_sqlite_on_the_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    [history] = [p for p in runtime_pods({}, monkeypatch) if p.command == "history"]
    db_dir = PurePosixPath(history.settings.sqlite_db_path).parent
    [claim] = history.workload["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: PurePosixPath(m["mountPath"]) for m in history.container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == db_dir


@pytest.mark.parametrize("spec", [{}, FULL_SPEC], ids=["minimal", "full"])
def test_termination_grace_exceeds_the_runtime_shutdown_budget(
    spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for pod in runtime_pods(spec, monkeypatch):
        grace = pod.pod_spec["terminationGracePeriodSeconds"]
        name = pod.workload["metadata"]["name"]
        if pod.command == "gateway":
            # After its preStop sleep, commands/gateway.py lets in-flight chats finish for
            # request_timeout_s + 5 s.
            pre_stop = pod.container["lifecycle"]["preStop"]["sleep"]["seconds"]
            assert pre_stop >= 1, "endpoints need a moment to drop a terminating gateway"
            assert grace > pre_stop + pod.settings.request_timeout_s + 5, name
        else:
            assert grace > pod.settings.drain_grace_s, name


def test_spec_runtime_reaches_the_settings_of_the_pods_that_read_it(monkeypatch: pytest.MonkeyPatch) -> None:
    pods = {p.workload["metadata"]["name"]: p.settings for p in runtime_pods(FULL_SPEC, monkeypatch)}
    gateway, router = pods["demo-gateway"], pods["demo-decision-router"]
    context, intent = pods["demo-context-retriever"], pods["demo-intent-analyzer"]
    assert (gateway.request_timeout_s, gateway.conversation_deadline_s, gateway.max_message_chars) == (
        90,
        300,
        2000,
    )
    assert (gateway.log_level, gateway.log_format) == ("DEBUG", "text")
    assert router.escalation_confidence_threshold == 0.6
    assert (context.cache_ttl, context.api_timeout_s, context.processing_timeout_s) == (60, 2.5, 30)
    assert (intent.log_level, intent.processing_timeout_s) == ("WARNING", 45)  # its own override wins


@pytest.mark.parametrize(("nats", "expected"), [({}, None), ({"replicas": 3}, "3"), ({"replicas": 1}, None)])
def test_stream_replicas_follow_the_managed_nats_replicas(nats: dict[str, Any], expected: str | None) -> None:
    # Found on the e2e cluster: three NATS pods formed a JetStream cluster, but the runtime created
    # R1 streams, so losing the one pod holding a stream lost the mesh's bus.
    configmap = index(children({"nats": nats}))[("ConfigMap", "demo-runtime-config")]
    assert configmap["data"].get(Env.NATS_STREAM_REPLICAS) == expected


@pytest.mark.parametrize("direct_hops", [True, False], ids=["on", "off"])
def test_direct_hops_reach_every_actor_process_alike(
    direct_hops: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`spec.actors.directHops` is mesh-wide: a lone actor and a group's process read the same value."""
    groups = [{"name": "routers", "actors": ["decisionRouter", "escalationRouter"]}]
    spec = {"actors": {"directHops": direct_hops, "groups": groups}}
    actors = [p for p in runtime_pods(spec, monkeypatch) if p.command == "actor"]
    assert {p.workload["metadata"]["name"] for p in actors} >= {"demo-routers", "demo-sentiment-analyzer"}
    assert len(actors) == len(ACTORS) - 1
    assert {p.settings.direct_hops for p in actors} == {direct_hops}


def test_spec_history_backup_reaches_the_history_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    [history] = [p.settings for p in runtime_pods(FULL_SPEC, monkeypatch) if p.command == "history"]
    assert (history.history_backup_retention, history.history_backup_pre_migration_retention) == (4, 2)
    assert history.history_backup_pre_migration_max_age_days == 7.5

"""The managed NATS and Redis the builders render actually run: real nats-server and redis-server.

The rendered nats.conf passes `nats-server -t` for one and three replicas, and a one-replica server
started from it (paths and ports moved to a tmp dir and free loopback ports, nothing else changed)
serves JetStream, reports the pod name as its server_name, answers the StatefulSet's three probes,
and leaves in lame-duck mode when the preStop command runs; three servers from the three-replica config
(routes pointed at loopback ports instead of the headless Service's pod names) form a JetStream cluster
and pass the probes. redis-server started with the rendered command line (the generated password, a
user's, an awkward one: always read from the init container's file, never from argv) answers the
readiness probe's command, refuses clients without the password, and writes its append-only file to
the data dir.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from actormesh_operator.api.types import quantity_bytes
from actormesh_operator.builders import nats, redis
from actormesh_operator.builders.generated import REDIS_PASSWORD_BYTES
from actormesh_operator.reconcile.generated import random_value
from actormesh_runtime.catalog import Ports
from tests.conftest import require_binary
from tests.support.eventually import eventually
from tests.support.nats_auth import server_env
from tests.support.ports import free_port
from tests.support.rendered_nats import POD_NAME, nats_binary, relocated_config
from tests.unit.builder_helpers import SETTINGS, children, container, index, make_mesh

pytestmark = [pytest.mark.integration]


def _check(binary: str, config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "-t", "-c", str(config)], capture_output=True, text=True, timeout=60, env=env, check=False
    )


@pytest.mark.parametrize("replicas", [1, 3])
def test_rendered_nats_conf_passes_the_config_test(replicas: int, tmp_path: Path) -> None:
    binary = nats_binary()
    config = tmp_path / nats.CONFIG_FILE
    config.write_text(relocated_config(replicas, tmp_path))
    sts = index(children({"nats": {"replicas": replicas}}))[("StatefulSet", "demo-nats")]
    env, _ = server_env(container(sts), POD_NAME)
    result = _check(binary, config, env)
    assert result.returncode == 0, result.stdout + result.stderr
    if replicas == 3:
        assert "routes: [nats://demo-nats-0." in config.read_text()
    # Not vacuous: $POD_NAME must come from the environment (the StatefulSet's downward-API env var),
    # and a broken file is refused.
    without_pod_name = {k: v for k, v in env.items() if k != "POD_NAME"}
    assert _check(binary, config, without_pod_name).returncode != 0
    # The passwords come only from the environment (the generated Secret), never from the ConfigMap.
    without_password = {k: v for k, v in env.items() if k != nats.password_variable("gateway")}
    assert _check(binary, config, without_password).returncode != 0
    config.write_text(config.read_text() + "jetstream {\n")
    assert _check(binary, config, env).returncode != 0


@pytest.fixture
def nats_from_rendered_config(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    binary = nats_binary()
    monitor = free_port()
    config = tmp_path / nats.CONFIG_FILE
    config.write_text(relocated_config(1, tmp_path, client=free_port(), monitor=monitor))
    args = container(_nats_statefulset())["args"]
    assert args == ["--config", f"{nats.CONFIG_DIR}/{nats.CONFIG_FILE}"]
    log = (tmp_path / "nats.log").open("wb")
    env, _ = server_env(container(_nats_statefulset()), POD_NAME)
    proc = subprocess.Popen(  # the image's entrypoint runs `nats-server ARGS`
        [binary, args[0], str(config)], env=env, stdout=log, stderr=log
    )
    try:
        yield proc, monitor, tmp_path
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        log.close()


def _nats_statefulset() -> dict[str, Any]:
    obj: dict[str, Any] = index(children())[("StatefulSet", "demo-nats")]
    return obj


def _answers_200(url: str) -> Callable[[], bool]:
    return lambda: _get(url) == 200


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def test_nats_from_rendered_config_answers_the_probes_and_leaves_in_lame_duck_mode(
    nats_from_rendered_config: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    proc, monitor, tmp_path = nats_from_rendered_config
    c = container(_nats_statefulset())
    base = f"http://127.0.0.1:{monitor}"
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = c[kind]["httpGet"]
        assert probe["port"] == "monitor"
        eventually(
            _answers_200(base + probe["path"]), what=f"{kind} {probe['path']} answers 200", timeout_s=60
        )
    varz = json.loads(httpx.get(f"{base}/varz", timeout=5).text)
    assert varz["server_name"] == POD_NAME
    jsz = json.loads(httpx.get(f"{base}/jsz", timeout=5).text)
    assert jsz["config"]["store_dir"].startswith(str(tmp_path / "store"))
    assert jsz["config"]["max_memory"] == quantity_bytes("256Mi")

    # The preStop hook, with the pid file where the relocated config put it.
    hook = c["lifecycle"]["preStop"]["exec"]["command"]
    assert hook == ["nats-server", f"-sl=ldm={nats.PID_DIR}/nats.pid"]
    pid_file = tmp_path / "pid" / "nats.pid"
    assert int(pid_file.read_text()) == proc.pid
    subprocess.run(
        [nats_binary(), hook[1].replace(nats.PID_DIR, str(tmp_path / "pid"))], check=True, timeout=30
    )
    eventually(lambda: proc.poll() is not None, what="nats-server exits after lame duck", timeout_s=120)
    log = (tmp_path / "nats.log").read_text()
    assert re.search(r"lame duck", log, re.IGNORECASE), log[-2000:]


def _cluster_member_config(ordinal: int, base: Path, cluster_ports: list[int]) -> tuple[str, int]:
    """Server `ordinal` of the rendered 3-replica nats.conf on one machine: each server gets its own
    loopback ports and dirs, and each route names the same ordinal's loopback cluster port instead of
    its pod DNS name under the headless Service. Returns (config, monitor port)."""
    workdir = base / f"n{ordinal}"
    workdir.mkdir()
    monitor = free_port()
    text = relocated_config(3, workdir, client=free_port(), monitor=monitor)
    text = text.replace(f"  port: {Ports.NATS_CLUSTER}\n", f"  listen: 127.0.0.1:{cluster_ports[ordinal]}\n")
    mesh = make_mesh({"nats": {"replicas": 3}})
    for i, route in enumerate(nats.routes(mesh, SETTINGS)):
        assert route.startswith(f"nats://demo-nats-{i}.demo-nats-headless.shop.svc.")
        text = text.replace(route, f"nats://127.0.0.1:{cluster_ports[i]}")
    assert "svc.cluster.local" not in text
    return text, monitor


@pytest.fixture
def nats_cluster_from_rendered_config(tmp_path: Path) -> Iterator[list[int]]:
    binary = nats_binary()
    cluster_ports = [free_port() for _ in range(3)]
    procs: list[subprocess.Popen[bytes]] = []
    monitors = []
    passwords: dict[str, str] = {}  # one Secret for all three pods
    try:
        for ordinal in range(3):
            text, monitor = _cluster_member_config(ordinal, tmp_path, cluster_ports)
            config = tmp_path / f"n{ordinal}" / nats.CONFIG_FILE
            config.write_text(text)
            log = (tmp_path / f"n{ordinal}" / "nats.log").open("wb")
            sts = index(children({"nats": {"replicas": 3}}))[("StatefulSet", "demo-nats")]
            env, passwords = server_env(container(sts), f"demo-nats-{ordinal}", passwords)
            procs.append(subprocess.Popen([binary, "--config", str(config)], env=env, stdout=log, stderr=log))
            log.close()
            monitors.append(monitor)
        yield monitors
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait(timeout=30)


def test_three_servers_from_rendered_config_form_a_jetstream_cluster(
    nats_cluster_from_rendered_config: list[int],
) -> None:
    """Cluster name, routes, server names from the pod name: a JetStream meta group of three forms,
    and every server passes the StatefulSet's probes (the startup probe needs a current meta leader)."""
    c = container(index(children({"nats": {"replicas": 3}}))[("StatefulSet", "demo-nats")])
    for ordinal, monitor in enumerate(nats_cluster_from_rendered_config):
        base = f"http://127.0.0.1:{monitor}"
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            path = c[kind]["httpGet"]["path"]
            eventually(_answers_200(base + path), what=f"server {ordinal} {kind} {path}", timeout_s=60)
        varz = json.loads(httpx.get(f"{base}/varz", timeout=5).text)
        assert varz["server_name"] == f"demo-nats-{ordinal}"
        assert varz["cluster"]["name"] == "demo-nats"
        jsz = json.loads(httpx.get(f"{base}/jsz", timeout=5).text)
        assert jsz["meta_cluster"]["cluster_size"] == 3
        eventually(_routes(base, 2), what=f"server {ordinal} routes to both peers", timeout_s=60)


def _routes(base: str, expected: int) -> Callable[[], bool]:
    def check() -> bool:
        routez = json.loads(httpx.get(f"{base}/routez", timeout=5).text)
        peers = {r.get("remote_name") or r.get("remote_id") for r in routez.get("routes") or []}
        return len(peers) == expected

    return check


def _kubelet_expand(args: list[str], env: dict[str, str]) -> list[str]:
    """`$(VAR)` in container args, expanded from the container's env as the kubelet does."""
    return [
        re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), a) for a in args
    ]


def _run_auth_init_container(sts: dict[str, Any], password: str, tmp_path: Path) -> dict[str, str]:
    """The `auth-config` init container, with its mounts moved under tmp_path: the Secret file in, the
    redis.conf fragment out. Returns {pod path: local path} for the redis container's mounts."""
    [init] = sts["spec"]["template"]["spec"]["initContainers"]
    secret_dir, auth_dir = tmp_path / "secret", tmp_path / "auth"
    secret_dir.mkdir()
    auth_dir.mkdir()
    (secret_dir / "password").write_bytes(password.encode())
    moved = {redis.PASSWORD_DIR: str(secret_dir), redis.AUTH_DIR: str(auth_dir)}
    command = [moved_path(a, moved) for a in init["command"]]
    assert command[0] == redis.RUNTIME_PYTHON
    subprocess.run([sys.executable, *command[1:]], check=True, timeout=30)
    assert (auth_dir / "auth.conf").stat().st_mode & 0o777 == 0o600
    return moved


def moved_path(arg: str, moved: dict[str, str]) -> str:
    for pod_dir, local in moved.items():
        if arg.startswith(pod_dir + "/"):
            return local + arg[len(pod_dir) :]
    return arg


@pytest.mark.parametrize(
    ("secret", "password"),
    [
        (None, random_value(REDIS_PASSWORD_BYTES)),
        ({"name": "ra", "key": "pw"}, "s3cr3t"),
        ({"name": "ra", "key": "pw"}, 'quote" back\\slash sp\u00e9cial\n'),
    ],
    ids=["generated", "users-secret", "awkward-password"],
)
def test_redis_from_the_rendered_command_line_answers_its_probe(
    tmp_path: Path, secret: dict[str, str] | None, password: str
) -> None:
    binary = require_binary("redis-server", "apt-get install redis-server")
    require_binary("redis-cli", "apt-get install redis-tools")
    spec = {} if secret is None else {"redis": {"passwordSecretRef": secret}}
    sts = index(children(spec))[("StatefulSet", "demo-redis")]
    c = container(sts)
    assert c["command"] == ["redis-server"]
    # The container's env with each Secret key resolved (the only one is the password).
    env = {e["name"]: e.get("value", password) for e in c.get("env", [])}
    port = free_port()
    args = _kubelet_expand(list(c["args"]), env)
    moved = _run_auth_init_container(sts, password, tmp_path)
    args = [moved_path(a, moved) for a in args]
    assert not any(password in a for a in args), "the password is on the command line"
    args[args.index("--port") + 1] = str(port)
    assert args[args.index("--dir") + 1] == redis.DATA_DIR
    args[args.index("--dir") + 1] = str(tmp_path)
    log = (tmp_path / "redis.log").open("wb")
    proc = subprocess.Popen([binary, *args, "--bind", "127.0.0.1"], stdout=log, stderr=log, cwd=tmp_path)
    try:
        probe = list(c["readinessProbe"]["exec"]["command"])
        probe[probe.index("-p") + 1] = str(port)

        def pong(probe_env: dict[str, str]) -> bool:
            result = subprocess.run(
                probe,
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
                env={**os.environ, **probe_env},
            )
            return result.stdout.strip() == "PONG"

        eventually(lambda: pong(env), what="redis answers the readiness probe's ping", timeout_s=60)
        assert not pong({}), "the password is not enforced"
        set_key = [probe[0], "-p", str(port), "--no-auth-warning", "-a", password, "set", "k", "v"]
        assert (
            subprocess.run(set_key, capture_output=True, text=True, check=True, timeout=10).stdout.strip()
            == "OK"
        )
        # --appendonly yes: the data survives a restart on the claim mounted at --dir.
        eventually(lambda: any(tmp_path.glob("appendonly*")), what="append-only file written", timeout_s=60)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()

"""The image recipes agree with the manifests that run them, checked without Docker.

`make images` (hack/images/build.sh) and the image smoke test (hack/images/smoke.sh) are manual, not
run by CI (docs/images.md). These tests pin what the cluster and the smoke test rely on: the final
stage's uid and read-only-root environment, the tags the manifests name, the build context, and the
shape of the operator output that hack/images/pod_plan.py turns into `docker run`s.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from actormesh_operator.builders.pod_security import RUN_AS_GROUP, RUN_AS_USER
from actormesh_runtime.catalog import ACTORS, Env
from tests.unit.builder_helpers import children, index

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = ["Dockerfile.runtime", "Dockerfile.operator"]


def _final_stage(dockerfile: str) -> str:
    text = (ROOT / dockerfile).read_text()
    return re.split(r"^FROM ", text, flags=re.M)[-1]


def _version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        version: str = tomllib.load(f)["project"]["version"]
    return version


def _pod_plan() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pod_plan", ROOT / "hack" / "images" / "pod_plan.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_final_stage_runs_as_the_pods_uid_on_a_read_only_root(dockerfile: str) -> None:
    final = _final_stage(dockerfile)
    user = re.search(r"^USER (\d+):(\d+)$", final, flags=re.M)
    assert user is not None, "the final stage needs a numeric USER uid:gid"
    assert user.groups() == (str(RUN_AS_USER), str(RUN_AS_GROUP))
    for setting in ("HOME=/tmp", "TMPDIR=/tmp", "PYTHONDONTWRITEBYTECODE=1"):
        assert setting in final, f"{dockerfile}: final stage lacks {setting}"
    # Build tools and the build-only CA bundle stay in the build stages.
    assert "pip install" not in final
    assert "BUILD_CA_CERTS" not in final


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_build_uses_only_what_both_base_images_provide(dockerfile: str) -> None:
    """python:3.11-slim-bookworm has `python`; the local Debian base has only `python3`."""
    text = (ROOT / dockerfile).read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", text, flags=re.M)
    assert "python3 -m venv" in text
    # A bare `python` (not the venv's /opt/actormesh/bin/python) exists only in the registry base.
    assert not re.search(r"(^|[\s;&|])python\s", text, flags=re.M)


def test_image_tags_and_uid_match_the_manifests() -> None:
    runtime_tag = f"actormesh/actormesh:{_version()}"
    for sample in sorted((ROOT / "config" / "samples").glob("*.yaml")):
        for doc in yaml.safe_load_all(sample.read_text()):
            if doc and doc.get("kind") == "ActorMesh":
                assert doc["spec"]["image"] == runtime_tag, sample.name
    [deployment] = [
        d
        for d in yaml.safe_load_all((ROOT / "config" / "manager" / "manager.yaml").read_text())
        if d and d.get("kind") == "Deployment"
    ]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "actormesh-operator:latest"
    assert pod["securityContext"]["runAsUser"] == RUN_AS_USER
    # build.sh tags the operator as config/e2e renames it (tests/unit/test_config_e2e.py).
    build_sh = (ROOT / "hack" / "images" / "build.sh").read_text()
    assert "actormesh/actormesh:${version}" in build_sh
    assert "actormesh/operator:${version}" in build_sh


def test_build_context_is_exactly_what_the_dockerfiles_copy() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "the context is an allow-list: .git, .venv, tests and caches stay out"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied: set[str] = set()
    for dockerfile in DOCKERFILES:
        for sources in re.findall(r"^COPY (?!--from)(.+?) \S+$", (ROOT / dockerfile).read_text(), flags=re.M):
            copied.update(sources.split())
    assert copied == allowed


def _plan(spec: dict[str, Any]) -> dict[str, Any]:
    body = {"metadata": {"name": "demo", "namespace": "default"}, "spec": {"image": "x:1", **spec}}
    plan: dict[str, Any] = _pod_plan().plan(body)
    return plan


def test_pod_plan_gives_the_smoke_test_every_runtime_container() -> None:
    plan = _plan({"redis": {"enabled": False}})
    commands = [c["args"][0] for c in plan["containers"]]
    assert sorted(set(commands)) == ["actor", "gateway", "history", "mocks"]
    assert sorted(c["args"][1] for c in plan["containers"] if c["args"][0] == "actor") == sorted(
        a.name.value for a in ACTORS
    )
    assert plan["config"][Env.HOST] == "0.0.0.0"
    assert all(c["memory_limit"] for c in plan["containers"])
    # smoke.sh maps every Service name the runtime dials to 127.0.0.1.
    dialled = [plan["config"][k] for k in (Env.NATS_URL, Env.CUSTOMER_API_URL, Env.ORDERS_API_URL)]
    assert {urlsplit(url).hostname for url in dialled} <= set(plan["services"])


def test_pod_plan_gives_the_smoke_test_the_nats_server_and_secret_names() -> None:
    llm = {"model": "m", "apiKeySecretRef": {"name": "s", "key": "k"}}
    plan = _plan({"redis": {"enabled": False}, "llm": llm})
    nats = plan["nats"]
    assert nats["args"]
    assert "jetstream" in nats["config"]
    assert {"config", "pid", "jetstream"} <= set(nats["mounts"])
    with_key = {c["args"][1] for c in plan["containers"] if Env.LLM_API_KEY in c["secrets"]}
    assert with_key == {a.name.value for a in ACTORS if a.uses_llm}


def test_redis_image_fits_the_operators_redis_statefulset() -> None:
    """hack/images/redis.Dockerfile against builders/redis.py: command and probe found through PATH
    (Debian's /usr/bin), the pods' uid, and a data directory where the builder mounts its claim."""
    dockerfile = (ROOT / "hack" / "images" / "redis.Dockerfile").read_text()
    sts = index(children())[("StatefulSet", "demo-redis")]
    pod = sts["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["command"] == ["redis-server"]
    assert container["readinessProbe"]["exec"]["command"][0] == "redis-cli"
    assert re.search(r"apt-get install .*\bredis-server\b", dockerfile)
    assert re.search(rf"^USER {RUN_AS_USER}:{RUN_AS_GROUP}$", dockerfile, flags=re.M)
    data = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "data")
    assert f"chown {RUN_AS_USER}:{RUN_AS_GROUP} {data}" in dockerfile
    assert pod["securityContext"]["fsGroup"] == RUN_AS_GROUP
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_nats_image_fits_the_operators_nats_statefulset() -> None:
    """hack/images/nats.Dockerfile: the pods' uid, and nats-server on PATH for the preStop hook."""
    dockerfile = (ROOT / "hack" / "images" / "nats.Dockerfile").read_text()
    [container] = index(children())[("StatefulSet", "demo-nats")]["spec"]["template"]["spec"]["containers"]
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "nats-server"
    assert "command" not in container, "the builder relies on the image's entrypoint"
    assert re.search(r'^ENTRYPOINT \["nats-server"\]$', dockerfile, flags=re.M)
    assert re.search(r"^ENV PATH=/usr/local/bin$", dockerfile, flags=re.M)
    assert "/usr/local/bin/nats-server" in dockerfile
    assert re.search(rf"^USER {RUN_AS_USER}:{RUN_AS_GROUP}$", dockerfile, flags=re.M)

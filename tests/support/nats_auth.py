"""Run a nats-server the way the rendered StatefulSet would: its env, with Secrets filled in.

`server_env(container, pod_name)` resolves the NATS container's env list as the kubelet would — the
downward-API pod name, and every secretKeyRef from a fake Secret whose values come from the operator's
own generator (`reconcile.generated.random_value`) — and returns the env plus the password per Secret key
(the NATS user), so a test can connect as any component.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from actormesh_operator.builders.generated import NATS_PASSWORD_BYTES
from actormesh_operator.reconcile.generated import random_value


def server_env(
    container: Mapping[str, Any], pod_name: str, passwords: dict[str, str] | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    passwords = dict(passwords or {})
    env = dict(os.environ)
    for var in container.get("env") or []:
        source = var.get("valueFrom") or {}
        if "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "metadata.name", var
            env[var["name"]] = pod_name
        elif "secretKeyRef" in source:
            key = source["secretKeyRef"]["key"]
            passwords.setdefault(key, random_value(NATS_PASSWORD_BYTES))
            env[var["name"]] = passwords[key]
        else:
            env[var["name"]] = var["value"]
    return env, passwords

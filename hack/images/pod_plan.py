"""Prints, as JSON, what the operator would run for one ActorMesh: each runtime container's name, args,
environment (the runtime ConfigMap plus the container's literal env) and memory limit; the managed
NATS server's args, nats.conf and mount paths; and the Service host names.

Run by hack/images/smoke.sh inside the operator image (this file mounted read-only, the ActorMesh YAML
on stdin), so the smoke mesh gets exactly the operator's configuration, not a hand-written copy.
Secret-backed variables (valueFrom) are listed by name only, under `secrets`; the caller fills them.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml

from actormesh_operator.api.spec import ActorMesh
from actormesh_operator.builders import build_children, names
from actormesh_operator.settings import OperatorSettings


def runtime_container(name: str, c: dict[str, Any]) -> dict[str, Any]:
    env = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
    return {
        "name": name,
        "args": c.get("args", []),
        "env": env,
        "secrets": [e["name"] for e in c.get("env", []) if "valueFrom" in e],
        "memory_limit": c.get("resources", {}).get("limits", {}).get("memory"),
    }


def nats_server(c: dict[str, Any], config: str) -> dict[str, Any]:
    return {
        "args": c.get("args", []),
        "config": config,
        "mounts": {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])},
        "memory_limit": c.get("resources", {}).get("limits", {}).get("memory"),
    }


def plan(body: dict[str, Any]) -> dict[str, Any]:
    mesh = ActorMesh.from_body(body)
    settings = OperatorSettings()
    children = build_children(mesh, settings, keda_available=False)
    config: dict[str, str] = {}
    nats_conf = ""
    containers: list[dict[str, Any]] = []
    nats: dict[str, Any] | None = None
    services: list[str] = []
    for child in children:
        kind, meta = child["kind"], child["metadata"]
        if kind == "ConfigMap" and meta["name"] == names.runtime_config(mesh.name):
            config = dict(child["data"])
        elif kind == "ConfigMap" and meta["name"] == names.nats_config(mesh.name):
            nats_conf = next(iter(child["data"].values()))
        elif kind == "Service":
            services.append(f"{meta['name']}.{mesh.namespace}.svc.{settings.cluster_domain}")
        elif kind in ("Deployment", "StatefulSet"):
            first = child["spec"]["template"]["spec"]["containers"][0]
            if first.get("command") == ["actormesh"]:
                containers.append(runtime_container(meta["name"], first))
            elif meta["name"] == names.nats(mesh.name):
                nats = nats_server(first, "")
    if nats is not None:
        nats["config"] = nats_conf
    return {"config": config, "containers": containers, "nats": nats, "services": services}


def main() -> None:
    json.dump(plan(yaml.safe_load(sys.stdin)), sys.stdout, indent=1)


if __name__ == "__main__":
    main()

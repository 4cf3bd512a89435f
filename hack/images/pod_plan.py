"""Prints, as JSON, what the operator would run for one ActorMesh: each runtime container's name, args,
environment (the runtime ConfigMap plus the container's literal env) and memory limit, and the Service
host names.

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
from actormesh_operator.builders import build_children
from actormesh_operator.settings import OperatorSettings


def plan(body: dict[str, Any]) -> dict[str, Any]:
    mesh = ActorMesh.from_body(body)
    settings = OperatorSettings()
    children = build_children(mesh, settings, keda_available=False)
    config: dict[str, str] = {}
    containers: list[dict[str, Any]] = []
    services: list[str] = []
    for child in children:
        kind, meta = child["kind"], child["metadata"]
        if kind == "ConfigMap" and "data" in child and "NATS_URL" in child["data"]:
            config = dict(child["data"])
        elif kind == "Service":
            services.append(f"{meta['name']}.{mesh.namespace}.svc.{settings.cluster_domain}")
        elif kind in ("Deployment", "StatefulSet"):
            for c in child["spec"]["template"]["spec"]["containers"]:
                if c.get("command") == ["actormesh"]:
                    env = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
                    secrets = [e["name"] for e in c.get("env", []) if "valueFrom" in e]
                    memory = c.get("resources", {}).get("limits", {}).get("memory")
                    containers.append(
                        {
                            "name": meta["name"],
                            "args": c.get("args", []),
                            "env": env,
                            "secrets": secrets,
                            "memory_limit": memory,
                        }
                    )
    return {"config": config, "containers": containers, "services": services}


def main() -> None:
    body = yaml.safe_load(sys.stdin)
    json.dump(plan(body), sys.stdout, indent=1)


if __name__ == "__main__":
    main()

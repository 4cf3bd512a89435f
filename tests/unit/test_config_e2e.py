"""config/e2e, the install the e2e suite applies (`kubectl apply -k config/e2e`), is config/default with
only image references changed: the operator's image and pull policy, and the operator's default NATS and
Redis images, all naming what `make images-tar` builds. Rendered with the kubectl `make k8s-bin` builds
(kustomize is built into kubectl), so the test sees what the cluster gets.
"""

from __future__ import annotations

import copy
import re
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import missing_component
from tests.harness.binaries import HOW_TO_BUILD, bin_dir_from_env

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = ("Deployment", "actormesh-system", "actormesh-operator")
IMAGE_ENV = {"ACTORMESH_OPERATOR_NATS_IMAGE", "ACTORMESH_OPERATOR_REDIS_IMAGE"}
"""The operator settings (operator/actormesh_operator/settings.py) that name default images."""


def _version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        version: str = tomllib.load(f)["project"]["version"]
    return version


@cache
def _render(overlay: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    kubectl = bin_dir_from_env() / "kubectl"
    if not kubectl.exists():
        missing_component(f"kubectl ({kubectl})", HOW_TO_BUILD)
    out = subprocess.run(
        [str(kubectl), "kustomize", str(ROOT / "config" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    objects = {}
    for doc in yaml.safe_load_all(out):
        meta = doc["metadata"]
        objects[(doc["kind"], meta.get("namespace", ""), meta["name"])] = doc
    return objects


def _manager(objects: dict[tuple[str, str, str], dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = objects[OPERATOR]["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "manager"
    return container


def test_overlay_changes_only_image_references() -> None:
    default, e2e = _render("default"), _render("e2e")
    assert e2e.keys() == default.keys(), "the overlay adds or drops objects"
    for key in default.keys() - {OPERATOR}:
        assert e2e[key] == default[key], f"{key} differs"
    # The operator Deployment: equal once the image fields and the image env entries are set aside.
    stripped = []
    for objects in (default, e2e):
        deployment = copy.deepcopy(objects[OPERATOR])
        manager = _manager({OPERATOR: deployment})
        for field in ("image", "imagePullPolicy"):
            manager.pop(field)
        manager["env"] = [e for e in manager["env"] if e["name"] not in IMAGE_ENV]
        stripped.append(deployment)
    assert stripped[0] == stripped[1]


def test_overlay_names_the_locally_built_images() -> None:
    manager = _manager(_render("e2e"))
    assert manager["image"] == f"actormesh/operator:{_version()}"
    # Never pull: a missing image must fail as ErrImageNeverPull, not reach for a registry.
    assert manager["imagePullPolicy"] == "Never"
    env = {e["name"]: e["value"] for e in manager["env"] if e["name"] in IMAGE_ENV}
    assert set(env) == IMAGE_ENV
    # Tags hack/images/build.sh makes: nats-server's and redis-server's upstream versions.
    assert re.fullmatch(r"actormesh/nats:\d+\.\d+\.\d+", env["ACTORMESH_OPERATOR_NATS_IMAGE"])
    assert re.fullmatch(r"actormesh/redis:\d+\.\d+\.\d+", env["ACTORMESH_OPERATOR_REDIS_IMAGE"])
    # The default install keeps its own images: the overlay is the only place that switches them.
    assert not IMAGE_ENV & {e["name"] for e in _manager(_render("default"))["env"]}

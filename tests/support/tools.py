"""Go-built command-line tools the tests run (promtool, helm), located through `hack/tools/build.sh`, and
files the tests take from Go modules (the Gateway API's CRDs).

The script is the one place that pins each tool's version: with a warm cache it prints the binary's
path at once; with a cold one it builds it first (minutes, niced), which is what a fresh machine needs.
Without Go the tool is a missing component: skipped locally, a failure in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import missing_component

BUILD = Path(__file__).resolve().parents[2] / "hack" / "tools" / "build.sh"


def tool_binary(name: str) -> str:
    result = subprocess.run([str(BUILD), name], capture_output=True, text=True, timeout=3600, check=False)
    path = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    if result.returncode != 0 or not path or not Path(path).is_file():
        missing_component(
            f"`{name}`", f"`make tools-bin` builds it from its Go module: {result.stderr[-500:]}"
        )
    return path


GATEWAY_API_MODULE = "sigs.k8s.io/gateway-api"
GATEWAY_API_VERSION = "v1.6.3"
"""The Gateway API release whose standard-channel CRDs the tests install (never committed: the Go module
cache holds them, downloaded from the Go module proxy at test time)."""


def gateway_api_crd(kind_plural: str) -> Path:
    """The upstream standard-channel CRD file for `kind_plural` (e.g. `httproutes`), from the Go module."""
    go = shutil.which("go")
    if go is None:
        missing_component("`go`", f"the Gateway API CRDs come from the Go module {GATEWAY_API_MODULE}")
        raise AssertionError("unreachable")
    result = subprocess.run(
        [go, "mod", "download", "-json", f"{GATEWAY_API_MODULE}@{GATEWAY_API_VERSION}"],
        capture_output=True, text=True, timeout=600, check=False, cwd=Path(__file__).parent,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )  # fmt: skip
    directory = json.loads(result.stdout or "{}").get("Dir") if result.returncode == 0 else None
    crd = Path(directory or "/nonexistent") / "config" / "crd" / "standard"
    crd = crd / f"gateway.networking.k8s.io_{kind_plural}.yaml"
    if not crd.is_file():
        missing_component(
            f"the Gateway API CRD {kind_plural} ({GATEWAY_API_MODULE}@{GATEWAY_API_VERSION})",
            f"`go mod download` failed: {(result.stderr or result.stdout)[-500:]}",
        )
    return crd

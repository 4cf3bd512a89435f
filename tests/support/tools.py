"""Go-built command-line tools the tests run (promtool, helm), located through `hack/tools/build.sh`.

The script is the one place that pins each tool's version: with a warm cache it prints the binary's
path at once; with a cold one it builds it first (minutes, niced), which is what a fresh machine needs.
Without Go the tool is a missing component: skipped locally, a failure in CI.
"""

from __future__ import annotations

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

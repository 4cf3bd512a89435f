"""What `make cluster-up` made, recorded before each change so `make cluster-down` can undo it.

The state file (default ~/.cache/actormesh/cluster-up.json) is written first, before anything on the
host changes, and again after every step; a crash at any point leaves a record `down` can act on.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from tests.harness.processes import ProcessRecord


class ClusterState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: str
    run: str
    kubeconfig: str = ""
    # sysctl name -> value before `up` touched it (restored by `down`).
    sysctls: dict[str, str] = Field(default_factory=dict)
    # Host changes `up` made, by name; `down` undoes exactly these (see hostnet.py).
    made: list[str] = Field(default_factory=list)
    processes: list[ProcessRecord] = Field(default_factory=list)
    uplink: str = ""


def load(path: Path) -> ClusterState | None:
    if not path.exists():
        return None
    return ClusterState.model_validate_json(path.read_text())


def save(state: ClusterState, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(state.model_dump_json(indent=2))
    tmp.replace(path)

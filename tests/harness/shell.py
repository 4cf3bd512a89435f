"""`make k8s-up` / `make k8s-down`: a control plane that outlives the command that started it.

Entry point: `python -m tests.harness.controlplane up|down`. `up` records the exact processes and the
temp state dir in a state file and prints `export KUBECONFIG=<path>` as its last line; `down` stops
exactly those processes (checked by pid *and* start time) and removes the state.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from tests.harness import processes
from tests.harness.binaries import HOW_TO_BUILD, bin_dir_from_env, missing_binaries
from tests.harness.controlplane import ControlPlane
from tests.harness.processes import ProcessRecord

STATE_ENV = "ACTORMESH_K8S_STATE"


class UpState(BaseModel):
    """What `up` leaves behind for `down` (and for a second `up`, which reuses a live control plane)."""

    model_config = ConfigDict(extra="forbid")

    state_dir: str
    kubeconfig: str
    server: str
    processes: list[ProcessRecord]


def state_file() -> Path:
    override = os.environ.get(STATE_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "actormesh" / "k8s-up.json"


def _load() -> UpState | None:
    path = state_file()
    if not path.exists():
        return None
    return UpState.model_validate_json(path.read_text())


def _teardown(state: UpState) -> None:
    for record in reversed(state.processes):
        processes.stop(record)
    shutil.rmtree(state.state_dir, ignore_errors=True)
    state_file().unlink(missing_ok=True)


def up() -> int:
    previous = _load()
    if previous is not None:
        if all(processes.is_running(r) for r in previous.processes):
            print(f"# control plane already running at {previous.server}")
            print(f"export KUBECONFIG={previous.kubeconfig}")
            return 0
        _teardown(previous)
    bin_dir = bin_dir_from_env()
    missing = missing_binaries(bin_dir)
    if missing:
        print(f"missing {', '.join(missing)} in {bin_dir}: {HOW_TO_BUILD}", file=sys.stderr)
        return 2
    plane = ControlPlane(bin_dir, detached=True)
    try:
        handle = plane.start()
    except BaseException:
        plane.stop()
        raise
    state = UpState(
        state_dir=str(plane.state_dir),
        kubeconfig=str(handle.kubeconfig),
        server=handle.server,
        processes=plane.records,
    )
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(state.model_dump_json(indent=2))
    print(f"# control plane running at {handle.server}; logs in {plane.state_dir}; stop: make k8s-down")
    print(f"export KUBECONFIG={handle.kubeconfig}")
    return 0


def down() -> int:
    state = _load()
    if state is None:
        print("no control plane started by `make k8s-up` is recorded", file=sys.stderr)
        return 0
    _teardown(state)
    print(f"stopped the control plane at {state.server}")
    return 0


def main(argv: list[str]) -> int:
    if argv == ["up"]:
        return up()
    if argv == ["down"]:
        return down()
    print("usage: python -m tests.harness.controlplane up|down", file=sys.stderr)
    return 2

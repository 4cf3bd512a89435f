"""Start and stop control-plane processes, each in its own process group, identified beyond its pid.

Called by tests/harness/controlplane.py. A process is recorded as (pid, start time, executable) so that
`make k8s-down`, running long after `make k8s-up` exited, never signals an unrelated process that
happens to have reused the pid.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

_PR_SET_PDEATHSIG = 1


class ProcessRecord(BaseModel):
    """What is needed to find a started process again and to be sure it is still the same one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    pid: int
    start_ticks: int
    executable: str
    log: str


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime); the command name (field 2) may hold spaces, so split after its ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if the test process is killed outright (SIGKILL, OOM),
    # the kernel kills the component too, so nothing outlives an interrupted test run.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(name: str, argv: Sequence[str], log: Path, *, die_with_parent: bool) -> ProcessRecord:
    """Start `argv` in a new session (so a terminal Ctrl-C reaches us, not it), output to `log`."""
    preexec: Callable[[], None] | None = _die_with_parent if die_with_parent else None
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
        )
    ticks = _start_ticks(proc.pid)
    return ProcessRecord(
        name=name,
        pid=proc.pid,
        start_ticks=ticks if ticks is not None else -1,
        executable=str(Path(argv[0]).resolve()),
        log=str(log),
    )


def is_running(record: ProcessRecord) -> bool:
    """True only while the very process we started is alive (not a zombie, not a reused pid)."""
    try:
        state = Path(f"/proc/{record.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    if state in {"Z", "X"}:
        _reap(record.pid)
        return False
    return _start_ticks(record.pid) == record.start_ticks


def _reap(pid: int) -> None:
    # Only our own children can be reaped; for the rest init does it, so ignore ECHILD.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _signal_group(record: ProcessRecord, sig: signal.Signals) -> None:
    # The component leads its own session, so its pid is its process group id.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pid, sig)


def stop(record: ProcessRecord, grace: float = 10.0) -> None:
    """SIGTERM the process group, wait up to `grace` seconds, then SIGKILL it."""
    if not is_running(record):
        return
    _signal_group(record, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(record.pid)
        if not is_running(record):
            return
        time.sleep(0.05)
    _signal_group(record, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while is_running(record) and time.monotonic() < deadline:
        time.sleep(0.05)


def log_tail(record: ProcessRecord, lines: int = 25) -> str:
    try:
        text = Path(record.log).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])

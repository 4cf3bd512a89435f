"""The `actormesh` command as a subprocess, shared by the tests that run it the way a user does
(`actormesh dev` in test_dev_command, the traced chat in test_tracing), and the processes it leaves."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

ACTORMESH = [sys.executable, "-m", "actormesh_runtime.cli"]


def terminate(proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> int:
    """SIGTERM, as Kubernetes or Ctrl-C would, and the exit code; a process that hangs is killed."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


async def aterminate(proc: asyncio.subprocess.Process, timeout_s: float = 60.0) -> int:
    """`terminate` for an asyncio subprocess: SIGTERM and the exit code; one that hangs is killed."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.wait(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise


async def acommunicate(proc: asyncio.subprocess.Process, timeout_s: float) -> tuple[bytes, bytes]:
    """`proc.communicate()` within `timeout_s`; a process that hangs is killed, never left behind."""
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return out or b"", err or b""


def widget_url(out: Path, proc: subprocess.Popen[bytes]) -> str | None:
    """The chat URL `actormesh dev` prints, once it has printed it."""
    text = out.read_text() if out.exists() else ""
    assert proc.poll() is None, f"actormesh dev exited with {proc.returncode}: {text}"
    lines = [line for line in text.splitlines() if "/widget" in line]
    return lines[0][lines[0].index("http://") :].split()[0] if lines else None


def children(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_leftovers(pids: list[int]) -> list[int]:
    """The processes among `pids` still running, killed: a test reports them but never leaves them."""
    leftover = [pid for pid in pids if alive(pid)]
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)
    return leftover

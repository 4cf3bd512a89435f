"""Run host commands (ip, iptables, sysctl, ctr, crictl) with their output in the error message."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence


class HostCommandError(RuntimeError):
    pass


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 60.0, input: str | None = None) -> str:
    result = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, check=False, input=input
    )
    if check and result.returncode != 0:
        raise HostCommandError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def ok(argv: Sequence[str], timeout: float = 60.0) -> bool:
    try:
        return subprocess.run(list(argv), capture_output=True, timeout=timeout, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False

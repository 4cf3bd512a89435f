"""Child processes of the soak: started, killed with SIGKILL, restarted, and never left behind.

Every child runs in its own session (a Ctrl-C on the terminal reaches only the soak, which then
stops the children in order) and with `PR_SET_PDEATHSIG = SIGKILL`, so even a soak that is itself
killed with SIGKILL takes its children with it. Children are spawned from the event loop's thread:
the death signal follows the thread that forked, and a worker thread may exit at any time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before prctl ran
        os._exit(1)


class Child:
    """One named child process; `start()` may be called again after `kill()` (a restart)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        if self.alive:
            raise RuntimeError(f"{self.name} is already running")
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start #{self.starts} at {time.time():.3f}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def kill(self) -> None:
        """SIGKILL, like a crashed pod or an OOM kill; waits for the exit."""
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(timeout=10)

    def pause(self) -> None:
        if self.alive and self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.alive and self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (a graceful drain), SIGKILL after `timeout_s`."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
            process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(process.wait, timeout_s)
        self.kill()


class Children:
    """Every child of one soak, so a single `stop_all` (or the interrupt handler) ends them all."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.by_name: dict[str, Child] = {}

    def add(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        child = Child(name, argv, env, self.log_dir)
        self.by_name[name] = child
        return child

    def kill_all(self) -> None:
        for child in self.by_name.values():
            child.kill()

    async def stop_all(self, order: Callable[[Child], int] | None = None, timeout_s: float = 10.0) -> None:
        """Stop children, lowest `order` first (all at once within one order value)."""
        groups: dict[int, list[Child]] = {}
        for child in self.by_name.values():
            groups.setdefault(order(child) if order else 0, []).append(child)
        for key in sorted(groups):
            await asyncio.gather(*(c.stop(timeout_s) for c in groups[key]))

    def pids(self) -> list[int]:
        return [c.pid for c in self.by_name.values() if c.alive and c.pid is not None]

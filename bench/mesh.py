"""The real mesh as a benchmark target on an existing nats-server, rules mode, with the mock APIs
in a process of their own (`bench.processes.MocksProcess`) as in production.

`MeshTarget(kind="mesh")` runs the real actors on a fixed mix of realistic messages, in one of two
layouts: `LocalMesh` (all nine actors in one event loop on one shared connection, hop fusion as
configured: what `actormesh dev` runs), or `layout="processes"`, one `actormesh actor NAME` process
per actor (the Kubernetes layout, where nothing fuses).
`MeshTarget(kind="host-only")` runs the same `ActorHost`s with actors that do nothing (the
aggregator only answers the caller): the gap between it and the relay is the host's own cost
(pydantic envelope, progress events, metrics, trace), the gap to "mesh" is the actors' logic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from tests.support.ports import free_port
from tests.support.redis import RedisServer

from actormesh_runtime.actors.base import Actor
from actormesh_runtime.bus.connection import open_bus
from actormesh_runtime.bus.publish import submit
from actormesh_runtime.bus.request import reply_to
from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.envelope import Envelope, Screening
from actormesh_runtime.local.mesh import LocalMesh
from actormesh_runtime.resources import ActorDeps
from actormesh_runtime.screening import screen
from actormesh_runtime.settings import RuntimeSettings

from .load import Pending
from .processes import Children, MocksProcess, actor_command, wait_bound

JOHN, JANE, BOB = "john.doe@example.com", "jane.smith@example.com", "bob.wilson@example.com"

MIX: tuple[tuple[str, str, str], ...] = (
    ("order_status", JOHN, "Where is my order ORD-10002? I ordered it last week."),
    ("delivery_issue", JOHN, "My package ORD-10002 still has not arrived, it is late and I need it"),
    ("cancellation", BOB, "Please cancel my order ORD-30001, I changed my mind."),
    ("return", JOHN, "I want to return the headphones from ORD-10001, they don't fit well."),
    ("billing", BOB, "I was charged twice for ORD-30001, I need a refund for the extra charge"),
    ("escalation", JOHN, "This is ridiculous, I want to speak to a manager right now!"),
    ("order_status_vip", JANE, "Hi, can you tell me when ORD-20002 will arrive?"),
    ("product_issue", JOHN, "The headphones from ORD-10001 arrived broken, the left side is silent."),
    ("general", JOHN, "What is your return policy for electronics?"),
    ("compliment", JANE, "Thank you, your service is great and I love the keyboard!"),
)
"""Fixed mix: default route (7 hops), action route (+execution_coordinator, 8 hops), escalation (6)."""


@dataclass(frozen=True)
class Prepared:
    kind: str
    email: str
    text: str
    screening: Screening


class _Noop:
    name: ClassVar[ActorName]

    def __init__(self, deps: ActorDeps) -> None:
        self.deps = deps

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def handle(self, envelope: Envelope) -> None:
        if self.name is ActorName.RESPONSE_AGGREGATOR and envelope.reply.result_subject:
            body = json.dumps({"message_id": envelope.message_id}).encode()
            await self.deps.publisher.publish_core(envelope.reply.result_subject, body)


def noop_factory(name: ActorName, deps: ActorDeps) -> Actor:
    cls = type(f"Noop_{name.value}", (_Noop,), {"name": name})
    actor: Actor = cls(deps)
    return actor


class MeshTarget:
    def __init__(
        self,
        nats_url: str,
        *,
        kind: Literal["mesh", "host-only"] = "mesh",
        progress: bool = True,
        label: str | None = None,
        settings: RuntimeSettings | None = None,
        layout: Literal["one-process", "processes", "groups"] = "one-process",
        event_loop: str = "asyncio",
    ) -> None:
        self.name: str = label or kind
        self.kind_name = kind
        self.layout = layout
        self.event_loop = event_loop
        mesh_name = f"bench{uuid.uuid4().hex[:8]}"
        base = settings or RuntimeSettings()
        self.settings = base.model_copy(update={"mesh_name": mesh_name, "nats_url": nats_url})
        self.subjects = Subjects(mesh_name)
        self.mocks = MocksProcess() if kind == "mesh" else None
        self.mesh: LocalMesh | ActorProcesses | None = None
        self.pending = Pending()
        self.reply = reply_to(self.subjects)
        if not progress:
            self.reply = self.reply.model_copy(update={"progress_subject": None})
        self.mix = [Prepared(k, e, *screen(t)) for k, e, t in MIX]
        self._client = NATS()
        self.captured: dict[str, bytes] = {}
        """Per mix kind: one real envelope as response_aggregator receives it (the relay's payload)."""

    def kind(self, seq: int) -> str:
        return self.mix[seq % len(self.mix)].kind

    async def send(self, seq: int, message_id: str) -> None:
        item = self.mix[seq % len(self.mix)]
        envelope = Envelope.start(
            session_id=f"sess-bench-{seq % 50}",
            customer_email=item.email,
            message=item.text,
            screening=item.screening,
            budget_s=60,
            reply=self.reply,
            message_id=message_id,
        )
        await submit(self._js, self.subjects, envelope)

    def cpu_s(self) -> float | None:
        """CPU seconds of the actor processes so far (processes layout), else None: this process."""
        return self.mesh.children.cpu_s() if isinstance(self.mesh, ActorProcesses) else None

    def cpu_by_process(self) -> dict[str, float]:
        return self.mesh.children.cpu_by_process() if isinstance(self.mesh, ActorProcesses) else {}

    async def start(self) -> MeshTarget:
        if self.mocks is not None:
            await self.mocks.start(self.event_loop)
            self.settings = self.settings.model_copy(update={k.lower(): v for k, v in self.mocks.env.items()})
        if self.layout != "one-process":
            groups = GROUPS if self.layout == "groups" else [[a] for a in ActorName]
            noop = self.kind_name == "host-only"
            self.mesh = ActorProcesses(self.settings, self.event_loop, groups, noop=noop)
        else:
            factory = noop_factory if self.kind_name == "host-only" else None
            extra: dict[str, Any] = {"factory": factory} if factory else {}
            self.mesh = LocalMesh(self.settings, nats_url=self.settings.nats_url, mocks=False, **extra)
        await self.mesh.start()
        await self._client.connect(self.settings.nats_url, name=f"{self.name}-client")
        self._js = self._client.jetstream()

        async def on_result(msg: Msg) -> None:
            self.pending.resolve(json.loads(msg.data)["message_id"])

        async def on_aggregator_inbox(msg: Msg) -> None:
            envelope = json.loads(msg.data)
            seq = int(str(envelope["message_id"]).rsplit("-", 1)[1])
            self.captured.setdefault(self.kind(seq), msg.data)

        assert self.reply.result_subject is not None
        await self._client.subscribe(self.reply.result_subject, cb=on_result)
        if self.kind_name == "mesh":
            # A core subscription sees what JetStream stores on that subject, without consuming it.
            inbox = self.subjects.actor(ActorName.RESPONSE_AGGREGATOR)
            self._capture = await self._client.subscribe(inbox, cb=on_aggregator_inbox)
        await self._client.flush()
        return self

    async def stop_capture(self) -> None:
        if self.kind_name == "mesh":
            await self._capture.unsubscribe()

    async def stop(self) -> None:
        """Stop whatever `start` got to (it may have failed half-way)."""
        with contextlib.suppress(Exception):  # never connected if start failed before that
            await self._client.close()
        try:
            if self.mesh is not None:
                await self.mesh.stop()
        finally:
            if self.mocks is not None:
                await self.mocks.stop()


GROUPS: list[list[ActorName]] = [
    [ActorName.SENTIMENT_ANALYZER, ActorName.INTENT_ANALYZER],
    [ActorName.CONTEXT_RETRIEVER, ActorName.DECISION_ROUTER, ActorName.EXECUTION_COORDINATOR],
    [ActorName.RESPONSE_GENERATOR, ActorName.GUARDRAIL_VALIDATOR, ActorName.ESCALATION_ROUTER,
     ActorName.RESPONSE_AGGREGATOR],
]  # fmt: skip
"""`mesh-groups`: three processes of co-located actors (`actormesh actor A,B,...`): analysis,
commerce (one HTTP pool and one context cache), reply. Steps within a group are fused."""


class ActorProcesses:
    """The actors as `actormesh actor NAME[,NAME...]` processes: one per actor (the Kubernetes
    layout), or one per group of co-located actors."""

    def __init__(
        self, settings: RuntimeSettings, event_loop: str, groups: list[list[ActorName]], *, noop: bool = False
    ) -> None:
        """`noop`: actors that do nothing (`bench.noop_actor`) instead of `actormesh actor`."""
        self.settings = settings
        self.noop = noop
        self.event_loop = event_loop
        self.groups = groups
        self.subjects = Subjects(settings.mesh_name)
        self.children = Children()
        # The context cache of processes per actor is Redis, as in Kubernetes (storage/cache.py).
        self._redis_dir = tempfile.TemporaryDirectory(prefix="bench-redis-")
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: apt-get install -y redis-server (.ci/run does it)")
        self.redis = RedisServer(binary, Path(self._redis_dir.name), free_port())

    async def start(self) -> None:
        nc = await open_bus(self.settings, name="bench-mp-setup")
        try:
            await asyncio.to_thread(self.redis.start)
            env = {
                "MESH_NAME": self.settings.mesh_name, "NATS_URL": self.settings.nats_url,
                "CUSTOMER_API_URL": self.settings.customer_api_url,
                "ORDERS_API_URL": self.settings.orders_api_url,
                "TRACKING_API_URL": self.settings.tracking_api_url,
                "ACTOR_HTTP_PORT": "0", "LOG_LEVEL": "WARNING", "EVENT_LOOP": self.event_loop,
                "REDIS_URL": self.redis.url, "DIRECT_HOPS": str(self.settings.direct_hops).lower(),
            }  # fmt: skip
            command = actor_command(noop=self.noop)
            for group in self.groups:
                names = ",".join(a.value for a in group)
                await self.children.spawn(*command, names, env=env, label=f"actor {names}")
            durables = [self.subjects.consumer(a) for a in ActorName]
            await wait_bound(nc.jetstream(), self.subjects.stream, durables)
        except BaseException:
            await self.stop()
            raise
        finally:
            await nc.close()

    async def stop(self) -> None:
        await self.children.stop()
        await asyncio.to_thread(self.redis.kill)
        self._redis_dir.cleanup()


def relay_payloads(captured: dict[str, bytes]) -> list[tuple[str, dict[str, Any]]]:
    """The relay's payloads in mix order: the real, fully enriched envelopes (largest per hop)."""
    return [(kind, json.loads(captured[kind])) for kind, _, _ in MIX if kind in captured]

"""The baseline: a bare JetStream relay chain of N hops with no logic.

Each hop is shaped like the actor host (`bus/host.py`) so that only the work differs: a durable
pull consumer (explicit ack, same ack_wait/max_ack_pending as the mesh), batch fetches bounded by
an in-flight limit, one task per message. Per message a hop does: JSON decode, JSON encode, an
acked JetStream publish to the next hop carrying `Nats-Msg-Id`, then the ack. The last hop
publishes the payload to the caller's reply subject (core NATS), like response_aggregator.
The stream has the mesh's settings (work-queue retention, file storage, duplicate window).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import uuid
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from .load import Pending
from .processes import Children, wait_bound

MSG_ID_HEADER = "Nats-Msg-Id"


class RelayHop:
    def __init__(
        self,
        js: JetStreamContext,
        nc: NATS,
        subject: str,
        next_subject: str | None,
        *,
        concurrency: int,
        batch: int,
        index: int,
    ) -> None:
        self.js, self.nc = js, nc
        self.subject, self.next_subject = subject, next_subject
        self.concurrency, self.batch, self.index = concurrency, batch, index
        self._sub: JetStreamContext.PullSubscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self.stream = ""

    async def start(self, stream: str, durable: str) -> None:
        self.stream = stream
        self._sub = await self.js.pull_subscribe_bind(durable=durable, stream=stream)
        self._loop = asyncio.create_task(self._fetch_loop())

    async def stop(self) -> None:
        self._stopping.set()
        if self._loop is not None:
            await asyncio.gather(self._loop, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)

    async def _fetch_loop(self) -> None:
        assert self._sub is not None
        while not self._stopping.is_set():
            free = self.concurrency - len(self._tasks)
            if free <= 0:
                stopped = asyncio.ensure_future(self._stopping.wait())
                await asyncio.wait({*self._tasks, stopped}, return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                continue
            try:
                msgs = await self._sub.fetch(min(self.batch, free), timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                continue
            for msg in msgs:
                task = asyncio.create_task(self._relay(msg))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _relay(self, msg: Msg) -> None:
        doc: dict[str, Any] = json.loads(msg.data)
        data = json.dumps(doc).encode()
        if self.next_subject is not None:
            msg_id = f"{doc['message_id']}:{self.index + 1}"
            await self.js.publish(
                self.next_subject, data, stream=self.stream, headers={MSG_ID_HEADER: msg_id}
            )
        else:
            await self.nc.publish(doc["reply"]["result_subject"], data)
        await msg.ack()


class RelayChain:
    """`hops` relay hops on one shared connection (like LocalMesh), plus a client connection; or,
    with `processes=True`, each hop in a process of its own on its own connection (`-mp`)."""

    def __init__(
        self,
        nats_url: str,
        hops: int,
        payloads: list[tuple[str, dict[str, Any]]],
        *,
        concurrency: int = 8,
        batch: int = 8,
        duplicate_window_s: float = 120.0,
        ack_wait_s: float = 30.0,
        processes: bool = False,
        event_loop: str = "asyncio",
    ) -> None:
        self.name = f"relay-{hops}" + ("-mp" if processes else "")
        self.processes = processes
        self.event_loop = event_loop
        self.children = Children()
        self.nats_url = nats_url
        self.hops = hops
        self.payloads = payloads
        self.concurrency, self.batch = concurrency, batch
        self.duplicate_window_s, self.ack_wait_s = duplicate_window_s, ack_wait_s
        run = uuid.uuid4().hex[:8]
        self.stream = f"RELAY-{hops}-{run}"
        self.prefix = f"bench.relay.{run}"
        self.reply_subject = f"{self.prefix}.reply"
        self.pending = Pending()
        self._hosts_nc = NATS()
        self._client_nc = NATS()
        self._hops: list[RelayHop] = []

    def subject(self, i: int) -> str:
        return f"{self.prefix}.hop.{i}"

    def kind(self, seq: int) -> str:
        return self.payloads[seq % len(self.payloads)][0]

    async def send(self, seq: int, message_id: str) -> None:
        _, template = self.payloads[seq % len(self.payloads)]
        doc = {**template, "message_id": message_id, "reply": {"result_subject": self.reply_subject}}
        await self._client_js.publish(
            self.subject(0), json.dumps(doc).encode(), headers={MSG_ID_HEADER: f"{message_id}:0"}
        )

    async def start(self) -> RelayChain:
        await self._hosts_nc.connect(self.nats_url, name=f"{self.name}-hosts")
        await self._client_nc.connect(self.nats_url, name=f"{self.name}-client")
        self._client_js = self._client_nc.jetstream()
        js = self._hosts_nc.jetstream()
        await js.add_stream(
            StreamConfig(
                name=self.stream,
                subjects=[f"{self.prefix}.hop.*"],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                discard=DiscardPolicy.OLD,
                duplicate_window=self.duplicate_window_s,
            )
        )
        for i in range(self.hops):
            durable = f"hop{i}"
            await js.add_consumer(
                self.stream,
                ConsumerConfig(
                    name=durable,
                    durable_name=durable,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=self.ack_wait_s,
                    max_deliver=6,
                    filter_subject=self.subject(i),
                    max_ack_pending=max(1000, self.concurrency * 64),
                ),
            )
            nxt = self.subject(i + 1) if i + 1 < self.hops else None
            if self.processes:
                argv = [self.nats_url, self.stream, durable, self.subject(i), nxt or "-", str(i),
                        str(self.concurrency), str(self.batch), self.event_loop]  # fmt: skip
                await self.children.spawn(sys.executable, "-m", "bench.relay", *argv, env={}, label=f"hop{i}")
                continue
            hop = RelayHop(
                js,
                self._hosts_nc,
                self.subject(i),
                nxt,
                concurrency=self.concurrency,
                batch=self.batch,
                index=i,
            )
            await hop.start(self.stream, durable)
            self._hops.append(hop)

        if self.processes:
            await wait_bound(js, self.stream, [f"hop{i}" for i in range(self.hops)])

        async def on_reply(msg: Msg) -> None:
            self.pending.resolve(json.loads(msg.data)["message_id"])

        await self._client_nc.subscribe(self.reply_subject, cb=on_reply)
        await self._client_nc.flush()
        return self

    def cpu_s(self) -> float | None:
        """CPU seconds of the hop processes so far (`processes`), else None: this process."""
        return self.children.cpu_s() if self.processes else None

    def cpu_by_process(self) -> dict[str, float]:
        return self.children.cpu_by_process()

    async def stop(self) -> None:
        await self.children.stop()
        await asyncio.gather(*(h.stop() for h in self._hops))
        with contextlib.suppress(Exception):
            await self._hosts_nc.jetstream().delete_stream(self.stream)
        for nc in (self._client_nc, self._hosts_nc):
            # close, not drain: the hops are stopped, and a drain would wait out their last pull request.
            with contextlib.suppress(Exception):
                await nc.close()


async def _serve_hop(argv: list[str]) -> None:
    """One hop as a process (`relay-N-mp`): its own connection, until SIGTERM."""
    url, stream, durable, subject, nxt, index, concurrency, batch = argv[:8]
    nc = NATS()
    await nc.connect(url, name=f"relay-hop-{index}")
    hop = RelayHop(
        nc.jetstream(), nc, subject, None if nxt == "-" else nxt,
        concurrency=int(concurrency), batch=int(batch), index=int(index),
    )  # fmt: skip
    await hop.start(stream, durable)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await hop.stop()
    await nc.close()


if __name__ == "__main__":
    from actormesh_runtime.commands import eventloop

    eventloop.run(_serve_hop(sys.argv[1:]), sys.argv[9])  # type: ignore[arg-type]

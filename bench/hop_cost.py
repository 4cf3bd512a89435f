"""`python -m bench.hop_cost`: the CPU one hop costs, one actor process against one relay hop process.

Both get the same real envelope (captured at ACTOR's inbox from an unfused mesh in rules mode) and
publish it on to the next step's inbox, which nobody reads. Two ways of feeding them:
- `queued`: N messages are on the consumer before the process is measured, so every pull request
  comes back full (the cost of a hop with a backlog);
- `paced`: messages arrive one at a time at a fixed rate (the cost of a hop in a running chain, where
  each pull request brings one or two messages).
CPU is the process's own (/proc, user + system) from consumer bound to consumer drained, per message.
The process is started fresh for each measurement; the machine's load is printed with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from actormesh_runtime.bus.connection import consumer_config, open_bus, work_stream_config
from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.commands import eventloop
from actormesh_runtime.embedded_nats import EmbeddedNats
from actormesh_runtime.settings import RuntimeSettings

from .load import process_cpu_s, run_level
from .mesh import MeshTarget
from .processes import Children, actor_command, wait_bound


async def capture(url: str, actor: ActorName, loop_name: str) -> bytes:
    """One real envelope as `actor` receives it, from an unfused mesh."""
    target = MeshTarget(url, settings=RuntimeSettings(hop_fusion=False), event_loop=loop_name)
    seen: list[bytes] = []

    async def keep(msg: Msg) -> None:
        seen.append(msg.data)

    try:
        await target.start()
        sub = await target._client.subscribe(target.subjects.actor(actor), cb=keep)
        await run_level(target, target.pending, concurrency=1, total=3, max_seconds=60)
        await sub.unsubscribe()
    finally:
        await target.stop()
    return seen[0]


async def _drained(js: JetStreamContext, stream: str, durable: str) -> None:
    while True:
        info = await js.consumer_info(stream, durable)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        await asyncio.sleep(0.02)


async def measure(
    js: JetStreamContext,
    pid: int,
    where: tuple[str, str, str],
    payloads: list[tuple[bytes, str]],
    rate: float,
) -> float:
    """CPU ms per message of process `pid` while it works off `payloads` published to `subject`
    (`rate` per second; 0: all queued first, the process held stopped meanwhile)."""
    stream, durable, subject = where
    await wait_bound(js, stream, [durable])
    if not rate:
        os.kill(pid, signal.SIGSTOP)
    try:
        started = time.perf_counter()
        before = process_cpu_s(pid)
        for i, (data, msg_id) in enumerate(payloads):
            await js.publish(subject, data, headers={"Nats-Msg-Id": msg_id})
            if rate:
                await asyncio.sleep(max(0.0, (i + 1) / rate - (time.perf_counter() - started)))
    finally:
        if not rate:
            os.kill(pid, signal.SIGCONT)
    await _drained(js, stream, durable)
    return (process_cpu_s(pid) - before) / len(payloads) * 1000


def _copies(envelope: bytes, n: int, tag: str) -> list[tuple[bytes, str]]:
    """`n` copies of `envelope` with unique message ids (and so unique `Nats-Msg-Id`s)."""
    doc = json.loads(envelope)
    out = []
    for i in range(n):
        message_id = f"msg-hop-{tag}-{i}"
        out.append((json.dumps({**doc, "message_id": message_id}).encode(), f"{message_id}:{i}"))
    return out


async def mesh_hop(
    url: str, actor: ActorName, envelope: bytes, n: int, rate: float, loop: str, *, noop: bool = False
) -> float:
    """`noop`: the same host with an actor that does nothing (`bench.noop_actor`)."""
    settings = RuntimeSettings(mesh_name=f"hop{uuid.uuid4().hex[:8]}", nats_url=url)
    subjects = Subjects(settings.mesh_name)
    nc = await open_bus(settings, name="hop-cost")
    children = Children()
    try:
        env = {"MESH_NAME": settings.mesh_name, "NATS_URL": url, "ACTOR_HTTP_PORT": "0",
               "LOG_LEVEL": "WARNING", "EVENT_LOOP": loop}  # fmt: skip
        proc = await children.spawn(*actor_command(noop=noop), actor.value, env=env)
        where = (subjects.stream, subjects.consumer(actor), subjects.actor(actor))
        return await measure(
            nc.jetstream(), proc.pid, where, _copies(envelope, n, uuid.uuid4().hex[:6]), rate
        )
    finally:
        await children.stop()
        await nc.jetstream().delete_stream(subjects.stream)
        await nc.close()


async def relay_hop(url: str, envelope: bytes, n: int, rate: float, loop: str) -> float:
    nc = NATS()
    await nc.connect(url, name="hop-cost-relay")
    js = nc.jetstream()
    settings, subjects = RuntimeSettings(), Subjects(f"relay{uuid.uuid4().hex[:8]}")
    stream = work_stream_config(subjects, settings)
    await js.add_stream(stream)
    actor = ActorName.DECISION_ROUTER
    durable = subjects.consumer(actor)
    await js.add_consumer(subjects.stream, consumer_config(subjects, actor, settings))
    children = Children()
    try:
        nxt = subjects.actor(ActorName.RESPONSE_GENERATOR)
        argv = [url, subjects.stream, durable, subjects.actor(actor), nxt, "0",
                str(settings.actor_concurrency), str(settings.fetch_batch), loop]  # fmt: skip
        proc = await children.spawn(sys.executable, "-m", "bench.relay", *argv, env={})
        where = (subjects.stream, durable, subjects.actor(actor))
        return await measure(js, proc.pid, where, _copies(envelope, n, uuid.uuid4().hex[:6]), rate)
    finally:
        await children.stop()
        await js.delete_stream(subjects.stream)
        await nc.close()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    actor = ActorName(args.actor)
    results: dict[str, Any] = {
        "actor": actor.value,
        "messages": args.messages,
        "load_before": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="actormesh-hop-") as tmp:
        server = EmbeddedNats(tmp)
        url = await server.astart()
        try:
            envelope = await capture(url, actor, args.loop)
            results["envelope_bytes"] = len(envelope)
            for mode, rate in (("queued", 0.0), ("paced", args.rate)):
                for _ in range(args.repeat):
                    mesh = await mesh_hop(url, actor, envelope, args.messages, rate, args.loop)
                    noop = await mesh_hop(url, actor, envelope, args.messages, rate, args.loop, noop=True)
                    relay = await relay_hop(url, envelope, args.messages, rate, args.loop)
                    row = {"mode": mode, "mesh_ms": round(mesh, 3), "noop_ms": round(noop, 3),
                           "relay_ms": round(relay, 3), "ratio": round(mesh / relay, 2),
                           "load": os.getloadavg()[0]}  # fmt: skip
                    print(json.dumps(row), flush=True)
                    results.setdefault("rows", []).append(row)
        finally:
            await server.astop()
    results["load_after"] = os.getloadavg()
    return results


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m bench.hop_cost", description=__doc__)
    p.add_argument("--actor", default=ActorName.DECISION_ROUTER.value)
    p.add_argument("--messages", type=int, default=1000)
    p.add_argument("--rate", type=float, default=100.0, help="messages per second in paced mode")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    p.add_argument("--out", help="also write the results here as JSON")
    a = p.parse_args()
    out = eventloop.run(main(a), a.loop)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(out, f, indent=1)

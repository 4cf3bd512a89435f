"""`python -m bench.host_cost`: the pure-Python CPU of one hop, actor host against relay hop.

`bench.hop_cost` measures whole processes against a real server, where the machine's load, the
event loop's wake-ups and batching decide half of what one sees. This takes all of that away: the
host's `_process` (one message: decode, step, trace entry, progress, encode, acked publish, ack)
and the relay's `_relay` run back to back in one process on a stub connection whose publishes and
acks return at once, fed the same real envelope (captured at ACTOR's inbox from an unfused mesh,
deadline moved ahead). The actor is a no-op, so what is left is the host's own work per hop.

Then the same with one piece of the host's bookkeeping at a time replaced by a no-op (the span, the
progress event, the processing timeout, the metrics): the difference is what that piece costs in
place. CPU time (`time.process_time`), best of `--repeat` rounds of `--messages` each.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from actormesh_runtime.bus import host as host_module
from actormesh_runtime.bus.host import ActorHost
from actormesh_runtime.catalog import ActorName, Subjects
from actormesh_runtime.commands import eventloop
from actormesh_runtime.embedded_nats import EmbeddedNats
from actormesh_runtime.envelope import Envelope
from actormesh_runtime.settings import RuntimeSettings

from .hop_cost import capture
from .relay import RelayHop


class _Connection:
    max_payload = 1024 * 1024
    is_connected = True

    async def publish(self, subject: str, payload: bytes = b"", **_: Any) -> None:
        return None


class _JetStream:
    _nc = _Connection()

    async def publish(self, subject: str, payload: bytes, **_: Any) -> None:
        return None


class _Msg:
    """A delivered JetStream message: data, its ack subject, and an ack that returns at once."""

    __slots__ = ("data", "reply")

    def __init__(self, data: bytes, seq: int) -> None:
        self.data = data
        self.reply = f"$JS.ACK.S.C.1.{seq}.{seq}.1733412345000000000.0"

    async def ack(self) -> None:
        return None


class _NoopActor:
    def __init__(self, name: ActorName) -> None:
        self.name = name

    async def handle(self, envelope: Envelope) -> None:
        return None


class _NoopMetric:
    def inc(self, amount: float = 1) -> None:
        return None

    def observe(self, amount: float) -> None:
        return None


@contextlib.contextmanager
def _no_span(*_: Any) -> Iterator[None]:
    yield None


async def _no_progress(*_: Any) -> None:
    return None


class _NoTimeout:
    def __init__(self, *_: Any) -> None:
        return None

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: Any) -> None:
        return None


@contextlib.contextmanager
def _replaced(owner: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


def _without(piece: str, host: ActorHost) -> contextlib.AbstractContextManager[Any]:
    if piece == "span":
        return _replaced(host_module, "traced_hop", _no_span)
    if piece == "progress":
        return _replaced(host_module, "publish_progress", _no_progress)
    if piece == "timeout":
        return _replaced(host_module, "_StepTimeout", _NoTimeout)
    if piece == "metrics":
        stack = contextlib.ExitStack()
        for attribute in ("_processed", "_processing_seconds"):
            stack.enter_context(_replaced(host, attribute, _NoopMetric()))
        return stack
    return contextlib.nullcontext()


async def _us_per_hop(handle: Callable[[Any], Any], payload: bytes, messages: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        msgs = [_Msg(payload, seq) for seq in range(messages)]
        started = time.process_time()
        for msg in msgs:
            await handle(msg)
        best = min(best, (time.process_time() - started) / messages * 1e6)
    return round(best, 1)


async def measure(actor: ActorName, envelope: bytes, messages: int, repeat: int) -> dict[str, Any]:
    fresh = Envelope.from_bytes(envelope)
    fresh.headers.deadline = time.time() + 3600  # captured with the bench's budget: long gone
    payload = fresh.to_bytes()
    js = _JetStream()
    settings = RuntimeSettings()
    host = ActorHost(_NoopActor(actor), js._nc, js, Subjects("hostcost"), settings)  # type: ignore[arg-type]
    relay = RelayHop(js, js._nc, "a", "b", concurrency=8, batch=8, index=0)  # type: ignore[arg-type]
    rows: dict[str, Any] = {"envelope_bytes": len(payload)}
    rows["relay_us"] = await _us_per_hop(relay._relay, payload, messages, repeat)
    rows["host_us"] = await _us_per_hop(host._process, payload, messages, repeat)
    for piece in ("span", "progress", "timeout", "metrics"):
        with _without(piece, host):
            without = await _us_per_hop(host._process, payload, messages, repeat)
        rows[f"{piece}_us"] = round(rows["host_us"] - without, 1)
    return rows


async def main(args: argparse.Namespace) -> dict[str, Any]:
    actor = ActorName(args.actor)
    with tempfile.TemporaryDirectory(prefix="actormesh-host-") as tmp:
        server = EmbeddedNats(tmp)
        url = await server.astart()
        try:
            envelope = await capture(url, actor, args.loop)
        finally:
            await server.astop()
    result = {"actor": actor.value, "load": os.getloadavg()}
    result.update(await measure(actor, envelope, args.messages, args.repeat))
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m bench.host_cost", description=__doc__)
    p.add_argument("--actor", default=ActorName.DECISION_ROUTER.value)
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    a = p.parse_args()
    print(json.dumps(eventloop.run(main(a), a.loop)))

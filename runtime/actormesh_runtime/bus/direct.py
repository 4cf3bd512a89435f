"""Direct hops (`DIRECT_HOPS`): between actor processes, the envelope moves on over core NATS and the
chain is settled once, on the JetStream delivery it started from (its origin).

Per hop through the stream a process pays a pull, an acked publish (a round trip to the stream's
store) and an ack, and nats-server stores and delivers the envelope once more; a direct hop is one
core publish. What keeps "nothing is lost": the origin delivery stays unacked until the host that
ends the chain (end of the slip, error path) acks it, by publishing to the origin's ack subject,
which every hop carries in `ORIGIN_HEADER`. A hop lost on the way (its process crashed, or it was
dropped) leaves the origin unacked, so JetStream redelivers it after `ack_wait` and the chain runs
again from its first step, as a crashed fused chain does (`bus.fusion`): side effects keep their
idempotency keys, the result's history event its message id. A retry naks the origin: the chain
reruns from there. Between steps the origin's ack timer is reset (`+WPI`) when the next step could
otherwise outlive `ack_wait`; `RESET_HEADER` says when it was last reset (wall clock: the hops run
on different machines, hence `CLOCK_SLACK_S`).

A hop with no receiver at all (no process of that actor subscribed) would only be redelivered after
`ack_wait`, again and again until the deliveries run out. Each hop is therefore sent with a reply
subject in the sender's own inbox: nats-server answers a message nobody receives with a 503 status
there, and the sender then publishes the envelope through the stream instead (`DirectSender`), so a
stopped actor gets its work when it comes back, as without direct hops.

Trade-offs (docs/bus.md): a retry or a crash redoes every step from the origin; the actor consumers
after the first step no longer show a backlog (the queue gauges), and every actor process's NATS user
may ack the deliveries of every actor consumer (docs/security.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from actormesh_runtime.catalog import Subjects

log = logging.getLogger(__name__)

ORIGIN_HEADER = "Actormesh-Origin"
"""The ack subject (`$JS.ACK.…`) of the JetStream delivery the chain started from."""
RESET_HEADER = "Actormesh-Origin-Reset"
"""Unix time at which the origin's ack timer was last started or reset."""
CLOCK_SLACK_S = 2.0
"""Allowance for clocks of different machines disagreeing about RESET_HEADER: the origin is kept
alive this much earlier than one process would need to."""
RETURN_WINDOW_S = 2.0
"""How long a sent hop is remembered in case nats-server answers it with no-responders; the answer
takes one round trip to the server, so anything older was received."""
NO_RESPONDERS = "503"

Fallback = Callable[[], Coroutine[Any, Any, None]]


def origin_of(nc: NATS, msg: Msg, stream: str) -> tuple[Msg, float] | None:
    """The origin delivery a direct hop belongs to, as a message this host can ack, nak, term and
    keep alive (a `Msg` on our connection whose reply is the origin's ack subject), and when its
    ack timer was last reset. None when the hop names no origin of `stream`: there is nothing to
    settle, so it cannot be processed."""
    headers = msg.headers or {}
    origin = headers.get(ORIGIN_HEADER, "")
    if not origin.startswith(f"$JS.ACK.{stream}."):
        return None
    try:
        reset_at = float(headers.get(RESET_HEADER, ""))
    except ValueError:
        reset_at = 0.0  # unknown: treat the timer as due for a reset
    return Msg(_client=nc, subject=msg.subject, reply=origin, data=msg.data, headers=headers), reset_at


@dataclass(slots=True)
class _Sent:
    at: float
    fallback: Fallback


class DirectSender:
    """Sends direct hops from one host, and routes a hop nobody received to its fallback."""

    def __init__(self, nc: NATS, subjects: Subjects) -> None:
        self.nc = nc
        self.subjects = subjects
        self._sent: OrderedDict[str, _Sent] = OrderedDict()
        self._inbox = ""
        self._next = 0
        self._returns: Subscription | None = None
        self._fallbacks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._inbox = self.nc.new_inbox()  # within the user's inbox prefix: allowed to subscribe
        self._returns = await self.nc.subscribe(f"{self._inbox}.*", cb=self._on_return)

    async def stop(self) -> None:
        if self._returns is not None:
            await self._returns.unsubscribe()
            self._returns = None
        if self._fallbacks:
            await asyncio.gather(*self._fallbacks, return_exceptions=True)

    async def send(
        self, subject: str, payload: bytes, *, origin: str, reset_at: float, fallback: Fallback
    ) -> None:
        """Publish one hop; if nobody receives it, `fallback` runs (it must move the envelope on
        through the stream and settle the origin)."""
        now = time.monotonic()
        while self._sent and next(iter(self._sent.values())).at < now - RETURN_WINDOW_S:
            self._sent.popitem(last=False)
        self._next += 1
        token = str(self._next)
        self._sent[token] = _Sent(now, fallback)
        headers = {ORIGIN_HEADER: origin, RESET_HEADER: repr(reset_at)}
        await self.nc.publish(subject, payload, reply=f"{self._inbox}.{token}", headers=headers)

    async def _on_return(self, msg: Msg) -> None:
        if JetStreamContext.is_status_msg(msg) != NO_RESPONDERS:
            return
        sent = self._sent.pop(msg.subject.rsplit(".", 1)[-1], None)
        if sent is None:
            return
        log.info("no process receives a direct hop: it goes through the stream", extra={"hop": msg.subject})
        # Its own task: the publish waits for the stream, and this callback must not hold up others.
        task = asyncio.create_task(sent.fallback())
        self._fallbacks.add(task)
        task.add_done_callback(self._fallbacks.discard)

"""The soak's customers: N conversations at a fixed concurrency against the gateway replicas.

Each conversation is one message in its own session, sent the way a careful client would: `POST
/api/chat`; on 503 or a connection error (the mesh is restarting) it waits and sends again; on 504 it
keeps the message id and later fetches `GET /api/messages/{id}` until the result is there. Each
worker pauses `think_s` between conversations, so the run lasts long enough for the faults to land
among the conversations instead of after them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from .mix import Kind, kind_of

RESUBMIT_PAUSE_S = 0.5
RESUBMIT_FOR_S = 60.0
"""A conversation the gateways refuse for this long (503, connection refused) is given up: `refused`."""
CLIENT_TIMEOUT_S = 60.0


@dataclass
class Conversation:
    seq: int
    kind: Kind
    session_id: str
    phase: str
    started: float = 0.0
    finished: float | None = None
    submissions: int = 0
    refusals: list[str] = field(default_factory=list)
    message_id: str | None = None
    """Known once a gateway accepted the message (200 or 504)."""
    result: dict[str, Any] | None = None
    answered_via: str | None = None
    """`reply` (in the POST's response) or `fetch` (GET /api/messages after a 504)."""
    errors: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.message_id is not None

    @property
    def latency_ms(self) -> float | None:
        if self.finished is None:
            return None
        return (self.finished - self.started) * 1000


@dataclass
class Traffic:
    gateways: list[str]
    total: int
    concurrency: int
    think_s: float
    calm: int
    """The first `calm` conversations run before any fault (the latency baseline)."""
    conversations: list[Conversation] = field(default_factory=list)
    calm_done: asyncio.Event = field(default_factory=asyncio.Event)
    _next: int = 0
    _baseline_done: int = 0

    def _phase(self, seq: int) -> str:
        if seq < self.concurrency * 2:
            return "warmup"  # first requests pay for connections and caches: not in either baseline
        return "calm" if seq < self.calm else "chaos"

    async def run(self, max_s: float) -> None:
        stop_at = time.monotonic() + max_s
        limits = httpx.Limits(max_connections=self.concurrency * 2)
        async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT_S, limits=limits) as client:
            await asyncio.gather(*(self._worker(client, stop_at) for _ in range(self.concurrency)))
        self.calm_done.set()

    async def _worker(self, client: httpx.AsyncClient, stop_at: float) -> None:
        while self._next < self.total and time.monotonic() < stop_at:
            seq = self._next
            self._next += 1
            if seq >= self.calm:
                await self.calm_done.wait()  # faults begin once the whole baseline has finished
            conversation = Conversation(seq, kind_of(seq), f"soak-{seq:06d}", self._phase(seq))
            self.conversations.append(conversation)
            await self._converse(client, conversation, self.gateways[seq % len(self.gateways)])
            if conversation.phase != "chaos":
                self._baseline_done += 1
                if self._baseline_done >= min(self.calm, self.total):
                    self.calm_done.set()
            await asyncio.sleep(self.think_s)

    async def _converse(self, client: httpx.AsyncClient, c: Conversation, gateway: str) -> None:
        c.started = time.perf_counter()
        body = {"message": c.kind.text, "customer_email": c.kind.email, "session_id": c.session_id}
        give_up = time.monotonic() + RESUBMIT_FOR_S
        while True:
            c.submissions += 1
            try:
                reply = await client.post(f"{gateway}/api/chat", json=body)
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            else:
                if reply.status_code == 200:
                    c.result = reply.json()
                    c.message_id = str(c.result["message_id"])
                    c.answered_via = "reply"
                    c.finished = time.perf_counter()
                    return
                if reply.status_code == 504:
                    c.message_id = str(reply.json()["message_id"])
                    return  # fetched later by `collect_late`
                outcome = f"{reply.status_code}"
                if reply.status_code not in (502, 503):
                    c.errors.append(f"{reply.status_code}: {reply.text[:300]}")
                    c.finished = time.perf_counter()
                    return
            c.refusals.append(outcome)
            if time.monotonic() > give_up:
                c.finished = time.perf_counter()
                return
            await asyncio.sleep(RESUBMIT_PAUSE_S)
            gateway = self.gateways[(self.gateways.index(gateway) + 1) % len(self.gateways)]


async def collect_late(conversations: list[Conversation], gateways: list[str], max_s: float) -> None:
    """Fetch the result of every accepted conversation that timed out, until all are in or `max_s`."""
    waiting = [c for c in conversations if c.accepted and c.result is None]
    deadline = time.monotonic() + max_s
    async with httpx.AsyncClient(timeout=10.0) as client:
        turn = 0
        while waiting and time.monotonic() < deadline:
            still = []
            for c in waiting:
                gateway = gateways[turn % len(gateways)]
                turn += 1
                try:
                    reply = await client.get(f"{gateway}/api/messages/{c.message_id}")
                except httpx.HTTPError:
                    still.append(c)
                    continue
                if reply.status_code == 200:
                    c.result = reply.json()
                    c.answered_via = "fetch"
                    c.finished = time.perf_counter()
                else:
                    still.append(c)
            waiting = still
            if waiting:
                await asyncio.sleep(1.0)

"""The soak's customers: N conversations at a fixed concurrency against the gateway replicas.

Each conversation is one message in its own session, sent the way a careful client would: `POST
/api/chat`; on 503 or a connection error (the mesh is restarting) it waits and sends again; on 504 it
keeps the message id and later fetches `GET /api/messages/{id}` until the result is there. Every
`WS_EVERY`th conversation goes over `WS /ws` instead (chat frame, then `accepted`, progress and one
`response`), counting every `response` frame it receives: two would be an answer delivered twice. Each
worker pauses `think_s` between conversations, so the run lasts long enough for the faults to land
among the conversations instead of after them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from .mix import Kind, kind_of

RESUBMIT_PAUSE_S = 0.5
RESUBMIT_FOR_S = 60.0
"""A conversation the gateways refuse for this long (503, connection refused) is given up: `refused`."""
CLIENT_TIMEOUT_S = 60.0
WS_EVERY = 4


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
    """`reply` (in the POST's response), `ws` (a `response` frame) or `fetch` (GET after a 504)."""
    channel: str = "http"
    responses: int = 0
    """`response` frames received (WebSocket conversations): more than one is a duplicate answer."""
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
            gateway = self.gateways[seq % len(self.gateways)]
            if seq % WS_EVERY == WS_EVERY - 1:
                conversation.channel = "ws"
                await self._converse_ws(conversation, gateway)
            else:
                await self._converse(client, conversation, gateway)
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

    async def _converse_ws(self, c: Conversation, gateway: str) -> None:
        c.started = time.perf_counter()
        chat = {"type": "chat", "data": {"message": c.kind.text, "customer_email": c.kind.email}}
        url = gateway.replace("http://", "ws://") + f"/ws?session_id={c.session_id}"
        give_up = time.monotonic() + RESUBMIT_FOR_S
        while c.message_id is None or c.result is None:
            c.submissions += 1
            try:
                outcome = await asyncio.wait_for(self._ws_once(c, url, chat), CLIENT_TIMEOUT_S)
            except (OSError, TimeoutError, WebSocketException) as exc:
                outcome = type(exc).__name__
            if outcome in ("answered", "accepted-then-timeout", "error"):
                break
            if c.message_id is not None:
                break  # accepted, then the socket broke: the answer is fetched later, never re-sent
            c.refusals.append(outcome)
            if time.monotonic() > give_up:
                break
            await asyncio.sleep(RESUBMIT_PAUSE_S)
            url = self._other(url)
        c.finished = time.perf_counter() if c.result is not None or c.errors else c.finished

    def _other(self, url: str) -> str:
        for gateway in self.gateways:
            candidate = gateway.replace("http://", "ws://")
            if not url.startswith(candidate):
                return candidate + url[url.index("/ws?") :]
        return url

    async def _ws_once(self, c: Conversation, url: str, chat: dict[str, Any]) -> str:
        """One socket: send the chat, read until its `response` (or an `error`); returns the outcome."""
        async with connect(url, open_timeout=10) as ws:
            if json.loads(await ws.recv()).get("type") != "connected":
                return "no-connected-frame"
            await ws.send(json.dumps(chat))
            while True:
                frame = json.loads(await ws.recv())
                kind, data = frame.get("type"), frame.get("data") or {}
                if kind == "accepted":
                    c.message_id = str(data["message_id"])
                elif kind == "response":
                    c.responses += 1
                    c.result, c.answered_via = data, "ws"
                    # Linger briefly: a second `response` for the same message would be a duplicate.
                    with contextlib.suppress(TimeoutError):
                        extra = json.loads(await asyncio.wait_for(ws.recv(), 0.3))
                        if extra.get("type") == "response":
                            c.responses += 1
                    return "answered"
                elif kind == "error":
                    status = data.get("status")
                    if status == 504 and data.get("message_id"):
                        c.message_id = str(data["message_id"])
                        return "accepted-then-timeout"
                    if status == 503:
                        return "503"
                    c.errors.append(f"ws error frame: {data}")
                    return "error"


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

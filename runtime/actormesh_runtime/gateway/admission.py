"""Admission control for the gateway: who may start a request now, and how long a body may take.

`Admission` (pure ASGI, outside everything that reads a body) guards the API — the customer routes
(`/api/chat`, `/api/messages/…`, `/api/conversations/…`, the `/ws` handshake) and the agent API
(`/api/escalations…`, `/api/approvals…`, the `/ws/agent` handshake); `is_limited` is the one
definition. It refuses, before any work is done (so before a token is checked or the history service
is asked):
- a principal over `RATE_LIMIT_REQUESTS` per minute → 429 with `Retry-After`; a WebSocket handshake
  over it is denied the same way (HTTP 429 where the server supports denial responses);
- an HTTP request while `MAX_CONCURRENT_REQUESTS` are already being served by this replica → 503
  with `Retry-After: 1` (a load balancer or client tries another replica or later). WebSockets are
  long-lived and not counted; their frames have their own limits (`ws_limits.py`).
Both bodies name the limit (`"limit": "RATE_LIMIT_REQUESTS"`), and each refusal is counted in
`actormesh_gateway_rejected_total{limit}`. Probes, `/metrics`, the docs, the widget and the console
page are never limited: a throttled client must not make a replica look dead, nor lock an agent out
of the page that shows why.

`BodyReadTimeout` gives a request body `BODY_READ_TIMEOUT_S` in total to arrive (a client that
trickles its body a byte at a time holds a connection and a task): 408 after that.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actormesh_runtime.gateway.auth import (
    AGENT_ROLE,
    AuthError,
    Principal,
    TokenVerifier,
    bearer_from_header,
    bearer_from_subprotocols,
)
from actormesh_runtime.gateway.metrics import REQUEST_ID
from actormesh_runtime.gateway.ratelimit import RateLimiter

REJECTED = Counter(
    "actormesh_gateway_rejected",
    "Requests, handshakes and WebSocket frames refused by a gateway limit.",
    ["limit"],
)

LIMITED_ROOTS = (
    "/api/chat",
    "/api/messages",
    "/api/conversations",
    "/ws",
    "/api/escalations",
    "/api/approvals",
)
"""The API, customers' and agents': each root and everything below it (`/ws/agent`,
`/api/approvals/{id}/deny`) is limited. Everything else (probes, metrics, docs, widget, console page)
never is; tests/unit/test_gateway_limits.py fails on a route the app serves that is in neither list."""
_BELOW_LIMITED_ROOTS = tuple(f"{root}/" for root in LIMITED_ROOTS)


def is_limited(path: str) -> bool:
    """A limited root itself or a path below one: whole segments, so `/ws-debug` or `/api/chatty`
    (or a future `/api/healthz`) never match by sharing the first letters."""
    return path in LIMITED_ROOTS or path.startswith(_BELOW_LIMITED_ROOTS)


SubjectOf = Callable[[str], Principal | None]
"""A bearer token → its verified principal (subject and role), or None (bad token, or auth off)."""


def subject_with_verifier(verifier: TokenVerifier | None) -> SubjectOf | None:
    """The gateway's own token check (keys, issuer, audience) as a subject lookup; None: auth is off."""
    if verifier is None:
        return None

    def subject(token: str) -> Principal | None:
        try:
            return verifier.verify(token)
        except AuthError:
            return None

    return subject


def principal_key(scope: Scope, subject_of: SubjectOf | None) -> str:
    """Whose bucket a request spends: `agent:<sub>` for a verified agent token, `sub:<sub>` for any
    other verified token, else `addr:<client address>`.

    An unverifiable token counts as none: a forged `sub` can neither spend someone else's budget nor
    dodge its own, and a flood of bad or missing tokens (401s) spends only its address's. An agent's
    token and a customer's with the same `sub` are two principals: a support agent who also shops
    with her work address must not find her console throttled by her own chats (nor the reverse),
    and a leaked token of either kind exhausts only its own bucket. Both are signed with the
    gateway's key, so nobody without it gains a second bucket; any role but `agent` counts as a
    customer, so a subject has at most two. Without auth (anonymous mode) everything is by address:
    on loopback, `actormesh dev`'s widget and console share one (generous) bucket.
    """
    headers = dict(scope.get("headers") or [])
    token = bearer_from_header(headers.get(b"authorization", b"").decode("latin-1"))
    if token is None and scope["type"] == "websocket":
        token = bearer_from_subprotocols(list(scope.get("subprotocols") or []))
    if token is None and scope["type"] == "websocket":
        query = scope.get("query_string", b"").decode("latin-1")
        token = next((v for k, _, v in (p.partition("=") for p in query.split("&")) if k == "token"), None)
    principal = subject_of(token) if subject_of is not None and token else None
    if principal is not None and principal.email:
        kind = "agent" if principal.role == AGENT_ROLE else "sub"
        return f"{kind}:{principal.email}"
    client = scope.get("client")
    return f"addr:{client[0] if client else 'unknown'}"


def error_response(status: int, error: str, detail: str, headers: dict[str, str], **extra: Any) -> Message:
    body = {"error": error, "detail": detail, "request_id": REQUEST_ID.get(), **extra}
    return {"status": status, "body": json.dumps(body).encode(), "headers": headers}


async def send_response(send: Send, response: Message, *, websocket: bool = False) -> None:
    prefix = "websocket.http.response" if websocket else "http.response"
    content: bytes = response["body"]
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in response["headers"].items()]
    await send({"type": f"{prefix}.start", "status": response["status"], "headers": headers})
    await send({"type": f"{prefix}.body", "body": content})


class Admission:
    """Rate limit per principal and a concurrency limit per replica, in front of the whole app."""

    def __init__(
        self, app: ASGIApp, *, limiter: RateLimiter, max_concurrent: int, subject_of: SubjectOf | None
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.max_concurrent = max_concurrent
        self.subject_of = subject_of
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not is_limited(str(scope.get("path", ""))):
            await self.app(scope, receive, send)
            return
        verdict = await self.limiter.check(principal_key(scope, self.subject_of))
        if not verdict.allowed:
            REJECTED.labels("RATE_LIMIT_REQUESTS").inc()
            per_minute = self.limiter.per_minute
            detail = (
                f"more than {per_minute} requests per minute from this client; "
                f"retry after {verdict.retry_after_header}s"
            )
            refusal = error_response(429, "rate_limited", detail, {"Retry-After": verdict.retry_after_header},
                                     limit="RATE_LIMIT_REQUESTS")  # fmt: skip
            await self._refuse(scope, send, refusal)
            return
        if scope["type"] == "http" and self.max_concurrent and self.in_flight >= self.max_concurrent:
            REJECTED.labels("MAX_CONCURRENT_REQUESTS").inc()
            detail = f"this gateway replica is serving its limit of {self.max_concurrent} requests; retry"
            refusal = error_response(503, "overloaded", detail, {"Retry-After": "1"},
                                     limit="MAX_CONCURRENT_REQUESTS")  # fmt: skip
            await self._refuse(scope, send, refusal)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    @staticmethod
    async def _refuse(scope: Scope, send: Send, refusal: Message) -> None:
        if scope["type"] == "http":
            await send_response(send, refusal)
        elif "websocket.http.response" in scope.get("extensions", {}):
            await send_response(send, refusal, websocket=True)
        else:
            await send({"type": "websocket.close", "code": 1013, "reason": "rate limited"})


class BodyReadTimeout:
    """408 when a request body has not fully arrived within `timeout_s` of the headers.

    The body is read here, under one deadline, and handed on as one message: at most `max_bytes`
    (the body size limit) is held — a longer body is handed on as it is, for `BodySizeLimit` to refuse.
    """

    def __init__(self, app: ASGIApp, *, timeout_s: float, max_bytes: int) -> None:
        self.app = app
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.timeout_s or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        try:
            async with asyncio.timeout(self.timeout_s):
                while more and sum(map(len, chunks)) <= self.max_bytes:
                    message = await receive()
                    if message["type"] != "http.request":
                        return  # the client went away: nobody to answer
                    chunks.append(message.get("body", b""))
                    more = bool(message.get("more_body", False))
        except TimeoutError:
            REJECTED.labels("BODY_READ_TIMEOUT_S").inc()
            detail = f"the request body did not arrive within {self.timeout_s:g}s"
            refusal = error_response(
                408, "timeout", detail, {"Connection": "close"}, limit="BODY_READ_TIMEOUT_S"
            )
            await send_response(send, refusal)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": more}

        await self.app(scope, replay, send)

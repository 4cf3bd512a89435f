"""`WS /ws?session_id=…`: chat with live per-actor progress. Frames are JSON `{type, data}`.

Client → server: `chat {message, customer_email}`, `ping`. A `chat` frame may carry `"idempotency_key":
"..."` next to `type` and `data` (as `Idempotency-Key` on `POST /api/chat`: `gateway/idempotency.py`): the
same frame again, on this socket or another, gets the first one's answer and never starts a second turn.
Server → client: `connected {session_id, …}`, `accepted {message_id}` (a keyed chat's derived id), one
`progress {message_id, actor, status, ms, attempt}` per actor hop, then `response` (the final result; a
finished keyed chat's at once), or `error {message}` (malformed JSON, unknown type, failed validation, a
key reused for another message, timeout — with the message id when there is one). A keyed chat's
`accepted` and every `error` of it (also one refusing the frame before any message id exists) carry its
`idempotency_key`, so a client that resends its unanswered chats after a reconnect knows which one ended;
`response` does not (it is exactly the final result, which names the message id `accepted` paired with the
key). `agent_reply {session_id, ref, agent, text, at}` when a support agent answers an escalation of this
session (from any replica: `gateway/escalation_feed.py`), and `pong`. Every chat ends with a `response` or
an `error`, never silence. Several chats may be in flight on one socket (WS_CHATS_PER_SOCKET), and per
customer over all its sockets on this replica (WS_CHATS_PER_CUSTOMER); each runs in its own task, and one
over a limit gets `error` 429. The server refuses frames over WS_MAX_FRAME_BYTES before reading them
(`GatewayServer`), and the socket is closed (4401) when its token expires. The token comes in
`Sec-WebSocket-Protocol` as `actormesh.bearer.<jwt>` next to `actormesh.v1` (selected by the server), or,
for old clients, as `?token=` (never logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from actormesh_runtime.envelope import FinalResult, ProgressEvent
from actormesh_runtime.gateway.auth import (
    WS_PROTOCOL,
    AuthError,
    Principal,
    authenticate,
    bearer_from_header,
    bearer_from_subprotocols,
)
from actormesh_runtime.gateway.deps import get_verifier
from actormesh_runtime.gateway.escalation_feed import PersonReply
from actormesh_runtime.gateway.frames import MalformedFrame, parse_frame
from actormesh_runtime.gateway.idempotency import (
    FRAME_FIELD,
    KEY_CHARS,
    KEY_MAX_CHARS,
    KEY_RULE,
    IdempotencyConflict,
    valid_key,
)
from actormesh_runtime.gateway.inflight import InFlight, LimitReached
from actormesh_runtime.gateway.metrics import CHATS, WS_CONNECTIONS
from actormesh_runtime.gateway.models import (
    SESSION_RE,
    ChatRequest,
    MessageTooLong,
    check_length,
    describe,
    field_errors,
    new_session_id,
)
from actormesh_runtime.gateway.service import Gateway, Submitted, Unavailable
from actormesh_runtime.gateway.ws_limits import IDLE_CLOSE_CODE, SocketLimits
from actormesh_runtime.history.protocol import HistoryUnavailable
from actormesh_runtime.observability import tracing

router = APIRouter()
log = logging.getLogger(__name__)

MAX_FRAME_CHARS = 64_000
CLOSE_TOKEN_EXPIRED = 4401
"""Application close code (4000 + the HTTP status, as for a refused handshake)."""


@router.websocket("/ws")
async def websocket_chat(
    websocket: WebSocket,
    # No max_length here: FastAPI would refuse a long one before the route runs, with a bare 403;
    # the check below answers 422 naming the field.
    session_id: Annotated[str | None, Query()] = None,
    token: Annotated[str | None, Query()] = None,
) -> None:
    gateway: Gateway = websocket.app.state.gateway
    verifier = get_verifier(websocket.app)
    offered = list(websocket.scope.get("subprotocols") or [])
    try:
        bearer = (
            bearer_from_subprotocols(offered)
            or token
            or bearer_from_header(websocket.headers.get("authorization"))
        )
        principal = authenticate(verifier, bearer)
    except AuthError as exc:
        await deny_handshake(websocket, exc.status, exc.detail)
        return
    if session_id is not None and not SESSION_RE.fullmatch(session_id):
        await deny_handshake(
            websocket, 422, "session_id: 1-128 characters of letters, digits, '_', '.', ':' or '-'"
        )
        return
    # Never echo the bearer entry: the selected subprotocol travels back in the clear response.
    await websocket.accept(subprotocol=WS_PROTOCOL if WS_PROTOCOL in offered else None)
    WS_CONNECTIONS.inc()
    chat_socket = ChatSocket(
        websocket,
        gateway,
        principal,
        session_id or new_session_id(),
        session_as_sent=session_id,
        auth=verifier is not None,
        customers=websocket.app.state.ws_chats_in_flight,
    )
    try:
        await chat_socket.run()
    finally:
        WS_CONNECTIONS.dec()


def echoed(key: object) -> dict[str, str]:
    """What a keyed chat's `accepted` and `error` frames add: its key, when it is a well-formed one."""
    return {FRAME_FIELD: key} if isinstance(key, str) and valid_key(key) else {}


_FRAME_KEY = re.compile(rf'"{FRAME_FIELD}"\s*:\s*"({KEY_CHARS}{{1,{KEY_MAX_CHARS}}})"')
"""A chat frame's key in its raw text. Inside a JSON string a quote is escaped, so `"idempotency_key"`
with bare quotes is a member name (at worst a nested one, in a frame that is refused anyway)."""


def _key_of(text: str | None) -> dict[str, str]:
    """`echoed` for a frame refused before it is handled (over the socket's rate), so a client that
    resends unanswered chats does not send this refused one again later. A search, not a parse: a
    client over its rate is flooding, and parsing what it floods cost up to 1 ms a frame (a 60 KB
    array of numbers) where the refusal itself costs 5 µs."""
    found = _FRAME_KEY.search(text) if text is not None and len(text) <= MAX_FRAME_CHARS else None
    return echoed(found.group(1)) if found is not None else {}


async def deny_handshake(websocket: WebSocket, status: int, detail: str) -> None:
    """Refuse the handshake with an HTTP status when the server supports it, else close with 4000+status."""
    body = JSONResponse({"error": "unauthorized" if status == 401 else "refused", "detail": detail}, status)
    try:
        await websocket.send_denial_response(body)
    except RuntimeError:
        await websocket.close(code=4000 + status, reason=detail[:120])


class ChatSocket:
    """One accepted WebSocket: a receive loop plus one task per chat in flight."""

    def __init__(
        self,
        websocket: WebSocket,
        gateway: Gateway,
        principal: Principal,
        session_id: str,
        *,
        session_as_sent: str | None = None,
        auth: bool,
        customers: InFlight,
    ) -> None:
        self.ws = websocket
        self.gateway = gateway
        self.principal = principal
        self.session_id = session_id
        self.session_as_sent = session_as_sent
        """The `?session_id=` the client named (None: generated here), which a key's fingerprint covers."""
        self.auth = auth
        self.customers = customers
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._open = True
        settings = gateway.settings
        self.limits = SocketLimits(settings.ws_messages_per_minute, settings.ws_idle_timeout_s)

    async def send(self, kind: str, data: dict[str, Any]) -> None:
        if not self._open:
            return
        async with self._send_lock:
            try:
                await self.ws.send_text(json.dumps({"type": kind, "data": data}, default=str))
            except (WebSocketDisconnect, RuntimeError):
                self._open = False

    async def error(self, message: str, **extra: Any) -> None:
        await self.send("error", {"message": message, **extra})

    async def run(self) -> None:
        settings = self.gateway.settings
        await self.send(
            "connected",
            {
                "session_id": self.session_id,
                "instance_id": self.gateway.instance_id,
                "auth": self.auth,
                "customer_email": self.principal.email,
                "max_message_chars": settings.max_message_chars,
            },
        )
        expiry = self._expire_later()
        feed = self.gateway.escalation_feed
        feed.add_session(self.session_id, self._on_escalation)
        try:
            while self._open:
                frame = await self.limits.next_frame(self.ws.receive, busy=lambda: bool(self._tasks))
                if frame is None:
                    await self.ws.close(code=IDLE_CLOSE_CODE, reason="idle timeout")
                    break
                if frame["type"] == "websocket.disconnect":
                    break
                await self._on_frame(frame.get("text"), frame.get("bytes"))
        except (WebSocketDisconnect, RuntimeError):
            pass  # RuntimeError: receive after the expiry closed the socket
        finally:
            self._open = False
            feed.remove_session(self.session_id, self._on_escalation)
            if expiry is not None:
                expiry.cancel()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _on_escalation(self, reply: PersonReply) -> None:
        """What a person told this session's customer, from any replica (only to that customer)."""
        if self.principal.email is not None and reply.customer_email != self.principal.email:
            return
        await self.send(
            "agent_reply",
            {
                "session_id": self.session_id,
                "ref": reply.ref,
                "agent": reply.agent,
                "text": reply.text,
                "at": reply.at.isoformat(),
            },
        )

    def _expire_later(self) -> asyncio.Task[None] | None:
        """Close the socket when the token expires: a token is checked at connect, so without this a
        1-second token would keep a socket chatting for as long as the client liked."""
        if self.principal.expires_at is None:
            return None
        delay = max(0.0, self.principal.expires_at - time.time())
        return asyncio.create_task(self._expire(delay), name="ws-token-expiry")

    async def _expire(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        await self.error("the bearer token expired; reconnect with a new token", status=401)
        self._open = False
        async with self._send_lock:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await self.ws.close(code=CLOSE_TOKEN_EXPIRED, reason="token expired")

    async def _on_frame(self, text: str | None, raw: bytes | None) -> None:
        refusal = self.limits.refusal()
        if refusal is not None:
            await self.error(**refusal, **_key_of(text))
            return
        if text is None:
            await self.error("binary frames are not supported; send JSON text frames")
            return
        if len(text) > MAX_FRAME_CHARS:
            await self.error(f"frame too large ({len(text)} characters)", status=413)
            return
        try:
            frame = parse_frame(text)
        except MalformedFrame as exc:
            await self.error(str(exc))
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self.error('a frame is a JSON object {"type": ..., "data": {...}}')
            return
        kind = frame["type"]
        if kind == "ping":
            await self.send("pong", {"ts": time.time()})
        elif kind == "chat":
            await self._start_chat(frame.get("data"), frame.get(FRAME_FIELD))
        else:
            await self.error(f"unknown frame type {kind!r}; expected 'chat' or 'ping'")

    async def _start_chat(self, data: object, key: object) -> None:
        echo = echoed(key)
        if not isinstance(data, dict):
            await self.error(
                "chat data must be an object {message, customer_email}", fields=[{"field": "data"}], **echo
            )
            return
        if key is not None and not valid_key(key):  # not echoed: the error names the field instead
            problem = f"{FRAME_FIELD} must be {KEY_RULE}"
            await self.error(problem, status=422, fields=[{"field": FRAME_FIELD, "message": problem}])
            return
        try:
            request = ChatRequest.model_validate({**data, "session_id": self.session_id})
            check_length(request, self.gateway.settings.max_message_chars)
            self.principal.check_email(request.customer_email)
        except ValidationError as exc:
            fields = field_errors(exc)
            await self.error(describe(fields), status=422, fields=[f.model_dump() for f in fields], **echo)
            return
        except MessageTooLong as exc:
            await self.error(str(exc), status=413, fields=[{"field": exc.field, "message": str(exc)}], **echo)
            return
        except AuthError as exc:
            await self.error(exc.detail, status=exc.status, **echo)
            return
        limits = self.gateway.settings
        if len(self._tasks) >= limits.ws_chats_per_socket:
            await self.error(
                f"too many chats in flight on this socket (limit {limits.ws_chats_per_socket}); "
                "wait for a reply before sending more",
                status=429,
                **echo,
            )
            return
        try:
            slot = self.customers.acquire(request.customer_email)
        except LimitReached as exc:
            await self.error(
                f"too many chats in flight for this customer (limit {exc.limit}); "
                "wait for a reply before sending more",
                status=429,
                **echo,
            )
            return
        task = asyncio.create_task(self._traced_chat(request, key if isinstance(key, str) else None))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: slot.release())

    async def _traced_chat(self, request: ChatRequest, key: str | None) -> None:
        """One chat as a server span: a child of the handshake's `traceparent`, else a trace of its own
        (a socket may live for hours; one trace per socket would be unreadable)."""
        parent = self.ws.scope.get("state", {}).get("trace_parent")
        with tracing.span("WS /ws chat", parent, kind="server", attributes={"http.route": "/ws"}):
            await self._chat(request, key)

    async def _chat(self, request: ChatRequest, key: str | None) -> None:
        """One chat, start to end: whatever goes wrong, the client gets an `error` frame, never silence."""
        echo = echoed(key)
        queue: asyncio.Queue[ProgressEvent] = asyncio.Queue()
        listener = queue.put_nowait
        try:
            outcome = await self.gateway.start_chat(
                self.principal,
                request,
                key,
                session_as_sent=self.session_as_sent,
                key_field=FRAME_FIELD,
                on_progress=listener,
            )
        except IdempotencyConflict as exc:
            problem = f"{exc.field}: {exc}"
            await self.error(problem, status=422, fields=[{"field": exc.field, "message": str(exc)}], **echo)
            return
        except AuthError as exc:  # the session belongs to another customer
            await self.error(exc.detail, status=exc.status, **echo)
            return
        except HistoryUnavailable as exc:  # ownership could not be checked: refuse
            await self.error(f"the session's owner cannot be checked right now: {exc}", status=503, **echo)
            return
        except Unavailable as exc:
            CHATS.labels("ws", "unavailable").inc()
            await self.error(f"the mesh is not reachable: {exc}", status=503, **echo)
            return
        except Exception:
            log.exception("websocket chat failed before it was submitted")
            CHATS.labels("ws", "error").inc()
            await self.error("internal error: the message was not sent; please try again", status=500, **echo)
            return
        if isinstance(outcome, FinalResult):  # a keyed chat that finished already: its answer again
            await self.send(
                "accepted", {"message_id": outcome.message_id, "session_id": outcome.session_id, **echo}
            )
            await self._finish(outcome, queue, set(), outcome="replayed")
            return
        submitted = outcome
        try:
            await self.send(
                "accepted", {"message_id": submitted.message_id, "session_id": submitted.session_id, **echo}
            )
            await self._relay(submitted, queue, echo)
        except Exception:
            log.exception("websocket chat failed", extra={"message_id": submitted.message_id})
            CHATS.labels("ws", "error").inc()
            await self.error(
                "internal error while waiting for the reply; the conversation continues",
                status=500,
                message_id=submitted.message_id,
                result_url=f"/api/messages/{submitted.message_id}",
                **echo,
            )
        finally:
            self.gateway.replies.unlisten(submitted.message_id, listener)
            # Cancelled before `_relay`'s wait began (the socket closed while `accepted` was sent): the
            # wait never ran to release it. After a wait this is a no-op (it released its own).
            self.gateway.replies.abandon(submitted.pending)

    async def _relay(
        self, submitted: Submitted, queue: asyncio.Queue[ProgressEvent], echo: dict[str, str]
    ) -> None:
        waiter = asyncio.ensure_future(self.gateway.wait(submitted))
        getter: asyncio.Future[ProgressEvent] | None = None
        sent: set[tuple[str, int]] = set()
        try:
            while not waiter.done():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({waiter, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    await self._progress(getter.result(), sent)
                else:
                    getter.cancel()
            result = waiter.result()
        except TimeoutError:
            CHATS.labels("ws", "timeout").inc()
            await self.error(
                f"no reply within {self.gateway.settings.request_timeout_s:g}s; the conversation continues",
                status=504,
                message_id=submitted.message_id,
                result_url=f"/api/messages/{submitted.message_id}",
                **echo,
            )
            return
        finally:
            waiter.cancel()
            if getter is not None:
                getter.cancel()  # cancelled mid-wait (the socket closed): no pending queue read left
        await self._finish(result, queue, sent)

    async def _progress(self, event: ProgressEvent, sent: set[tuple[str, int]]) -> None:
        sent.add((event.actor.value, event.attempt))
        await self.send("progress", event.model_dump(mode="json"))

    async def _finish(
        self,
        result: FinalResult,
        queue: asyncio.Queue[ProgressEvent],
        sent: set[tuple[str, int]],
        *,
        outcome: str = "ok",
    ) -> None:
        """Progress still owed, then the response.

        The result's trace is the authoritative route: hops whose event has not arrived yet (the
        last actor publishes its own event only after the result) are sent from it, in order, and
        their late events are then ignored.
        """
        while not queue.empty():
            await self._progress(queue.get_nowait(), sent)
        for entry in result.trace:
            if (entry.actor.value, entry.attempt) not in sent:
                synthetic = ProgressEvent(
                    message_id=result.message_id,
                    actor=entry.actor,
                    status="done",
                    ms=entry.ms,
                    attempt=entry.attempt,
                )
                await self._progress(synthetic, sent)
        CHATS.labels("ws", outcome).inc()
        await self.send("response", result.model_dump(mode="json"))

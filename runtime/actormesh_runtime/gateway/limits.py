"""`BodySizeLimit`: refuse an oversized request body with 413 before anything parses or buffers it all.

A message longer than MAX_MESSAGE_CHARS is refused by the chat route (413 naming `message`), but only
after FastAPI has read and parsed the whole body; without this bound a caller could make a gateway
hold any amount of JSON in memory. The bound is generous — the longest allowed message, every
character at its worst JSON escape, plus room for the other fields — so a valid request never meets
it. A body whose declared length fits passes straight through; any other is counted as it arrives.
`create_app` installs it inside the observability middleware, so the 413 carries the request id.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actormesh_runtime.gateway.metrics import REQUEST_ID

WORST_JSON_BYTES_PER_CHAR = 12
"""A character outside the BMP, escaped as a surrogate pair: `\\ud83d\\ude00`."""
OTHER_FIELDS_BYTES = 16 * 1024
DRAIN_MAX_BYTES = 16 * 1024 * 1024
"""Most of an oversized body read (and dropped) so the client sees the 413; beyond it, just close."""


def body_limit(max_message_chars: int) -> int:
    return max_message_chars * WORST_JSON_BYTES_PER_CHAR + OTHER_FIELDS_BYTES


class BodySizeLimit:
    """Pure ASGI middleware: HTTP bodies over `max_bytes` get a 413 in the gateway's error shape.

    An oversized body is read to its end (discarded, never kept) before the 413 goes out, up to
    `DRAIN_MAX_BYTES`: a client that writes its whole body before reading (most do) then gets the
    answer instead of a reset connection. Beyond that the connection is closed after the 413.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"")
        if (declared.isdigit() and int(declared) <= self.max_bytes) or (not declared and not chunked):
            await self.app(scope, receive, send)  # the server holds it to the declared length
            return
        await self._bounded(scope, receive, send)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Keep the body while it fits and hand the app an exact copy; otherwise discard it and refuse."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # disconnected: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= self.max_bytes:
                chunks.append(chunk)
            else:
                chunks.clear()
            if not message.get("more_body", False) or size > DRAIN_MAX_BYTES:
                break
        if size > self.max_bytes:
            await self._refuse(send, size)
            return
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: wait for the disconnect, as a server would
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, size: int) -> None:
        detail = f"request body is at least {size} bytes; the limit is {self.max_bytes}"
        payload = {
            "error": "too_large",
            "detail": f"body: {detail}",
            "fields": [{"field": "body", "message": detail}],
            "request_id": REQUEST_ID.get(),
        }
        content = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})

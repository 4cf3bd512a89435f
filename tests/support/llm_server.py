"""A local OpenAI-compatible chat-completions server whose replies a test scripts (real HTTP, random port).

Stands in for a paid LLM in integration tests: the real litellm client talks to it over HTTP.
Each request takes the next scripted reply (or the default); every request body is recorded so a
test can assert on the prompt that was really sent.

    server.script(Reply('{"intent": "order_status", "confidence": 0.9}'), Reply("garbage"))
    server.script(Reply("too late", delay_s=2.0))      # the client times out first
    server.script(Reply("", status=500))              # an HTTP error
    server.requests[0]["messages"]                     # what the client sent
    server.hold(); ...; server.held == 1; server.release()  # keep calls open until the test says
    server.script(Reply("busy", status=429, headers={"Retry-After": "1"}))  # response headers
    server.script(Reply(None))                         # `"content": null` (a tool call, a filter)
    server.headers[0]["authorization"]                 # the headers of each recorded request

An error reply's text may name `{authorization}`: the request's own Authorization header is put in
its place, as some proxies and providers quote what they were sent.

`host` serves another address than loopback (the e2e suite serves pods from the sealed node's
address); `reply_for(body)` answers from the request itself when a fixed script cannot (many
callers, any order).

The server runs uvicorn in its own thread and event loop, so a slow scripted reply never blocks
the test's loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.support.eventually import eventually
from tests.support.ports import free_port


@dataclass(frozen=True)
class Reply:
    """One scripted answer: the assistant text, an optional delay, the usage it reports, its HTTP status."""

    content: str | None
    """None: `"content": null`."""
    delay_s: float = 0.0
    prompt_tokens: int = 42
    completion_tokens: int = 17
    status: int = 200
    finish_reason: str = "stop"
    """"length": the model stopped at `max_tokens`, mid-text; "content_filter": the provider's filter."""
    headers: dict[str, str] | None = None
    """Response headers (e.g. `Retry-After` on a 429)."""


class LLMTestServer:
    def __init__(
        self,
        default: Reply | None = None,
        *,
        host: str = "127.0.0.1",
        reply_for: Callable[[dict[str, Any]], Reply] | None = None,
    ) -> None:
        self.host = host
        self.port = free_port(host)
        self.default = default or Reply('{"intent": "general_question", "confidence": 0.9}')
        self.reply_for = reply_for
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        """The headers of each request in `requests` (lower-case names)."""
        self.held = 0
        """Calls waiting right now for `release()`."""
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._open.set()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The `LLM_API_BASE` to configure: litellm appends /chat/completions."""
        return f"http://{self.host}:{self.port}/v1"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            if self._script:
                return self._script.popleft()
        return self.reply_for(body) if self.reply_for is not None else self.default

    def hold(self) -> None:
        """From now on every call waits (counted in `held`) until `release()`."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def prompt_text(self, index: int = -1) -> str:
        """All message contents of one recorded request, joined (for "the prompt contains X" asserts)."""
        return "\n".join(str(m.get("content", "")) for m in self.requests[index]["messages"])

    async def _delay(self, seconds: float) -> None:
        """Sleep, but stop early when the server shuts down (no cancelled-request noise at teardown)."""
        end = time.monotonic() + seconds
        # `should_exit` is set from the test's thread, so an asyncio.Event of this loop cannot carry it.
        while time.monotonic() < end and not (self._server is not None and self._server.should_exit):  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    async def _wait_open(self) -> None:
        if self._open.is_set():
            return
        with self._lock:
            self.held += 1
        try:
            # A threading.Event, set from the test's thread: polled, like `_delay`.
            while not self._open.is_set() and not (self._server is not None and self._server.should_exit):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        finally:
            with self._lock:
                self.held -= 1

    def _app(self) -> FastAPI:
        app = FastAPI()

        async def completions(request: Request) -> JSONResponse:
            body = await request.json()
            headers = {k.lower(): v for k, v in request.headers.items()}
            reply = self._next(body, headers)
            await self._wait_open()
            await self._delay(reply.delay_s)
            if reply.status != 200:
                message = (reply.content or "scripted failure").replace(
                    "{authorization}", headers.get("authorization", "")
                )
                error = {"error": {"message": message, "type": "server_error"}}
                return JSONResponse(error, status_code=reply.status, headers=reply.headers)
            return JSONResponse(_completion(body.get("model", "test-model"), reply), headers=reply.headers)

        app.add_api_route("/v1/chat/completions", completions, methods=["POST"])
        app.add_api_route("/chat/completions", completions, methods=["POST"])
        return app

    def start(self) -> None:
        config = uvicorn.Config(
            self._app(), host=self.host, port=self.port, log_level="warning", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="llm-test-server", daemon=True)
        self._thread.start()
        server, thread = self._server, self._thread
        eventually(
            lambda: server.started or not thread.is_alive(), what="the LLM test server", interval_s=0.02
        )
        if not server.started:
            raise RuntimeError("LLM test server did not start")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def _completion(model: str, reply: Reply) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content},
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        },
    }


@pytest.fixture
def llm_server() -> Iterator[LLMTestServer]:
    server = LLMTestServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()

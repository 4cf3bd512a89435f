"""The chat widget in a real browser: Debian's headless Chromium driven by Playwright against the real
stack. A customer types a message and the reply names the right tracking number; live progress is
shown; the page reconnects after the socket drops, and a chat still unanswered when its gateway
restarted is answered once (sent again with its idempotency key, also after a 503 from a replica not
yet connected to NATS); a message over the socket's frame rate is refused with when to try again, and
one over its frame size is dropped with an error."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from actormesh_runtime.gateway import service
from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.gateway.auth import mint_token
from actormesh_runtime.gateway.server import GatewayServer
from tests.support.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    LIVE_MS,
    launch_chromium,
    require_browser,
    send_in_widget,
)
from tests.support.eventually import eventually_async
from tests.support.gateway import (
    JOHN,
    NatsLink,
    counting,
    gateway_stack,
    poll_json,
    stack_settings,
    wait_ready,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser]


async def test_widget_chat_shows_progress_and_the_tracking_number(nats_server: str, tmp_path: Path) -> None:
    require_browser()
    from playwright.async_api import async_playwright, expect

    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings) as stack, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page()
            await page.goto(f"{stack.url}/widget")
            await expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=15_000)

            await page.fill("#email", "john.doe@example.com")
            await page.fill("#message", "Where is my order ORD-10002?")
            await page.click("#send")
            reply = page.locator(".msg.agent").last
            await expect(reply).to_contain_text("TRK100000002", timeout=30_000)
            await expect(page.locator(".msg.customer").last).to_have_text("Where is my order ORD-10002?")
            progress = page.locator("#progress li[data-actor]")
            await expect(progress.first).to_have_attribute("data-actor", "sentiment_analyzer")
            await expect(progress.last).to_have_attribute("data-actor", "response_aggregator")

            # Escalation shows its reference id; actions show their outcome.
            await page.fill("#message", "I want to speak to a manager")
            await page.click("#send")
            await expect(page.locator(".msg.agent .tag.ref").last).to_contain_text("ESC-", timeout=30_000)
            await page.fill("#email", "jane.smith@example.com")
            await page.fill("#message", "Please cancel my order ORD-20001")
            await page.press("#message", "Enter")
            await expect(page.locator(".msg.agent .outcome.done").last).to_be_visible(timeout=30_000)

            # The gateway restarts (the socket drops): the page reconnects by itself and keeps working.
            port = stack.servers[0].port
            await stack.servers[0].stop()
            await expect(page.locator("#status")).to_have_attribute("data-state", "offline", timeout=15_000)
            app = create_app(stack.mesh.settings)
            await stack.mesh.enter_context(GatewayServer(app, port=port))
            await expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=30_000)
            await page.fill("#email", "john.doe@example.com")
            await page.fill("#message", "Where is my order ORD-10001?")
            await page.click("#send")
            await expect(page.locator(".msg.agent").last).to_contain_text("TRK100000001", timeout=30_000)
        finally:
            await browser.close()


async def test_widget_asks_for_a_token_when_auth_is_on(nats_server: str, tmp_path: Path) -> None:
    require_browser()
    from playwright.async_api import async_playwright, expect

    secret = "widget-secret-with-enough-length-0123456789"
    settings = stack_settings(nats_server, tmp_path, jwt_secret=secret)
    async with gateway_stack(settings) as stack, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page()
            socket_urls: list[str] = []
            page.on("websocket", lambda ws: socket_urls.append(ws.url))
            await page.goto(f"{stack.url}/widget")
            token_field = page.locator("#token")
            await expect(token_field).to_be_visible(timeout=15_000)  # the handshake was refused
            await expect(page.locator("#status")).not_to_have_attribute("data-state", "online")

            await token_field.fill(mint_token(secret, "jane.smith@example.com"))
            await token_field.dispatch_event("change")
            await expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=30_000)
            await expect(page.locator("#email")).to_have_value("jane.smith@example.com")
            await page.fill("#message", "Where is my order ORD-20002?")
            await page.click("#send")
            await expect(page.locator(".msg.agent").last).to_contain_text("TRK200000001", timeout=30_000)
            # The token went in the Sec-WebSocket-Protocol header: no URL (proxy logs) carries it.
            assert socket_urls
            assert not [url for url in socket_urls if "token" in url], socket_urls
        finally:
            await browser.close()


async def test_a_message_over_the_sockets_frame_limit_says_when_to_try_again(
    nats_server: str, tmp_path: Path
) -> None:
    require_browser()
    from playwright.async_api import async_playwright, expect

    # One frame a minute on a socket: the first message is taken (nobody answers it: a gateway alone),
    # the second gets the gateway's 429 error frame with the seconds until the next frame is taken.
    settings = stack_settings(nats_server, tmp_path, ws_messages_per_minute=1)
    async with GatewayServer(create_app(settings), port=0) as server, async_playwright() as pw:
        await wait_ready(server.url)
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page()
            await page.goto(f"{server.url}/widget")
            await expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=15_000)
            for text in ["Where is my order ORD-10002?", "Hello?"]:
                await page.fill("#email", "john.doe@example.com")
                await page.fill("#message", text)
                await page.click("#send")

            await expect(page.locator(".msg.error").last).to_have_text(
                re.compile(
                    r"more than 1 frames per minute on this socket; frame ignored \(try again in \d+ s\)"
                ),
                timeout=15_000,
            )
        finally:
            await browser.close()


class SocketFrames:
    """Every frame the page's sockets send and receive, parsed (the widget's side of the wire)."""

    def __init__(self, page: Any) -> None:
        self.sockets = 0
        self.sent: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        page.on("websocket", self._watch)

    def _watch(self, ws: Any) -> None:
        self.sockets += 1
        ws.on("framesent", lambda payload: self.sent.append(json.loads(payload)))
        ws.on("framereceived", lambda payload: self.received.append(json.loads(payload)))

    def chats_sent(self, key: str | None = None) -> list[dict[str, Any]]:
        return [f for f in self.sent if f["type"] == "chat" and key in (None, f["idempotency_key"])]

    def refused(self, status: int) -> list[dict[str, Any]]:
        return [f for f in self.received if f["type"] == "error" and f["data"].get("status") == status]


async def test_a_chat_unanswered_when_its_gateway_restarts_is_answered_once(
    nats_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway pod restarts while the chain works on a chat (its socket drops after `accepted`).
    The new replica takes sockets before it reaches NATS, so the widget's resend (with its key) is
    refused 503 at first: the widget keeps the chat and its placeholder and sends it again, and once
    the replica is connected it joins the first attempt (JetStream drops the second publish of the
    derived message id). The page shows that answer once, with no "working on it" left behind."""
    require_browser()
    from playwright.async_api import async_playwright, expect

    monkeypatch.setattr(service, "HISTORY_CHECK_S", 1.0)  # how the new replica learns the answer
    runs: Counter[str] = Counter()
    first_attempt = asyncio.Event()  # the chain holds the chat until the resend has been refused
    settings = stack_settings(nats_server, tmp_path)

    async with (
        NatsLink(nats_server) as link,
        gateway_stack(settings, factory=counting(runs, gate=first_attempt)) as stack,
        async_playwright() as pw,
        httpx.AsyncClient(base_url=stack.url, timeout=30) as api,
    ):
        browser = await launch_chromium(pw)
        try:
            page = await browser.new_page()
            frames = SocketFrames(page)
            await page.goto(f"{stack.url}/widget")
            await send_in_widget(page, JOHN, "Where is my order ORD-10002?")
            await expect(page.locator(".msg.pending")).to_have_count(1, timeout=LIVE_MS)  # accepted
            await eventually_async(lambda: sum(runs.values()) > 0, what="the chain at work", timeout_s=30)
            (key,) = {f["idempotency_key"] for f in frames.chats_sent()}

            port = stack.servers[0].port
            await stack.servers[0].stop()  # the pod goes: its socket closes mid-chat
            await expect(page.locator("#status")).not_to_have_attribute(
                "data-state", "online", timeout=15_000
            )
            # The new pod serves sockets at once but reaches NATS only through `link`, shut for now.
            warming = stack.mesh.settings.model_copy(update={"nats_url": link.url})
            await stack.mesh.enter_context(GatewayServer(create_app(warming), port=port))
            refused = await eventually_async(
                lambda: frames.refused(503), what="the resend refused 503", timeout_s=LIVE_MS / 1000
            )
            assert refused[0]["data"]["idempotency_key"] == key, refused
            assert "not connected to NATS" in refused[0]["data"]["message"], refused
            await expect(page.locator(".msg.pending")).to_have_count(1)  # still waiting, not dropped
            await expect(page.locator(".msg.error")).to_have_count(0)
            link.open()
            first_attempt.set()

            answer = page.locator(".msg.agent")
            await expect(answer).to_contain_text("TRK100000002", timeout=LIVE_MS)
            await expect(page.locator("#status")).to_have_attribute("data-state", "online")
            await expect(answer).to_have_count(1)
            await expect(page.locator(".msg.pending")).to_have_count(0)
            await expect(page.locator(".msg.error")).to_have_count(0)
            await expect(page.locator(".msg.customer")).to_have_count(1)
            session_id = await page.locator("#session").text_content()
            transcript = await poll_json(api, f"/api/conversations/{session_id}")
        finally:
            first_attempt.set()
            await browser.close()

    # Sent on the first socket, again on the new one (refused), and again after the refusal.
    assert len(frames.chats_sent(key)) >= 3, frames.chats_sent()
    asked = [t for t in transcript["turns"] if t["role"] == "customer"]
    assert len(asked) == 1, transcript["turns"]
    assert sum(runs.values()) == 1, runs


async def test_a_chat_too_big_for_the_server_is_dropped_and_the_next_one_answered(
    nats_server: str, tmp_path: Path
) -> None:
    """WS_MAX_FRAME_BYTES at its lowest: the server closes the socket (1009) on a longer chat without
    reading it. The widget drops that chat with an error saying so (sending it again would only close
    the next socket too, and block every chat typed after it) and the next chat is answered."""
    require_browser()
    from playwright.async_api import async_playwright, expect

    settings = stack_settings(nats_server, tmp_path, ws_max_frame_bytes=1024)
    long_text = "Where is my order ORD-10001? " + "Please hurry. " * 100
    async with gateway_stack(settings) as stack, async_playwright() as pw:
        browser = await launch_chromium(pw)
        try:
            page = await browser.new_page()
            frames = SocketFrames(page)
            await page.goto(f"{stack.url}/widget")
            await send_in_widget(page, JOHN, long_text)
            await expect(page.locator(".msg.error")).to_contain_text(
                "too long for the server", timeout=LIVE_MS
            )
            await send_in_widget(page, JOHN, "Where is my order ORD-10002?")
            await expect(page.locator(".msg.agent")).to_contain_text("TRK100000002", timeout=LIVE_MS)
            await expect(page.locator(".msg.error")).to_have_count(1)
            await expect(page.locator(".msg.pending")).to_have_count(0)
        finally:
            await browser.close()

    (long_key,) = {f["idempotency_key"] for f in frames.chats_sent() if f["data"]["message"] == long_text}
    assert len(frames.chats_sent(long_key)) == 1, "the chat too big was not sent again"
    assert frames.sockets == 2, "one socket closed by the long chat, one that stayed open"

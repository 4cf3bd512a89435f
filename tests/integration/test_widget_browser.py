"""The chat widget in a real browser: Debian's headless Chromium driven by Playwright against the real
stack. A customer types a message and the reply names the right tracking number; live progress is
shown; the page reconnects after the socket drops, and a chat still unanswered when its gateway
restarted is answered once (sent again with its idempotency key); a message over the socket's frame
limit is refused with when to try again."""

from __future__ import annotations

import asyncio
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
from tests.support.gateway import JOHN, counting, gateway_stack, poll_json, stack_settings, wait_ready

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


async def test_a_chat_unanswered_when_its_gateway_restarts_is_answered_once(
    nats_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway pod restarts while the chain works on a chat (its socket drops after `accepted`).
    The widget sends the unanswered chat again, with its key, on the new socket: the new gateway joins
    the first attempt (JetStream drops the second publish of the derived message id) or replays its
    stored answer, and the page shows that answer once, with no "working on it" left behind."""
    require_browser()
    from playwright.async_api import async_playwright, expect

    monkeypatch.setattr(service, "HISTORY_CHECK_S", 1.0)  # how the new replica learns the answer
    runs: Counter[str] = Counter()
    settings = stack_settings(nats_server, tmp_path)
    # As a Kubernetes Service does, sockets reach a gateway only once it is ready: a replica still
    # connecting to NATS would answer the resent chat 503 (an error, which ends it in the widget).
    routable = asyncio.Event()
    routable.set()

    async def service_route(ws: Any) -> None:
        if routable.is_set():
            ws.connect_to_server()
        else:
            await ws.close(code=1013, reason="no ready gateway")

    async with (
        gateway_stack(settings, factory=counting(runs, delay_s=3.0)) as stack,
        async_playwright() as pw,
        httpx.AsyncClient(base_url=stack.url, timeout=30) as api,
    ):
        browser = await launch_chromium(pw)
        try:
            page = await browser.new_page()
            await page.route_web_socket(re.compile(r"/ws\?"), service_route)
            await page.goto(f"{stack.url}/widget")
            await send_in_widget(page, JOHN, "Where is my order ORD-10002?")
            await expect(page.locator(".msg.pending")).to_have_count(1, timeout=LIVE_MS)  # accepted
            await eventually_async(lambda: sum(runs.values()) > 0, what="the chain at work", timeout_s=30)

            routable.clear()
            port = stack.servers[0].port
            await stack.servers[0].stop()  # the pod goes: its socket closes mid-chat
            await expect(page.locator("#status")).to_have_attribute("data-state", "offline", timeout=15_000)
            restarted = await stack.mesh.enter_context(
                GatewayServer(create_app(stack.mesh.settings), port=port)
            )
            await wait_ready(restarted.url)
            routable.set()

            answer = page.locator(".msg.agent")
            await expect(answer).to_contain_text("TRK100000002", timeout=LIVE_MS)
            await expect(page.locator("#status")).to_have_attribute("data-state", "online")
            await expect(answer).to_have_count(1)
            await expect(page.locator(".msg.pending")).to_have_count(0)
            await expect(page.locator(".msg.customer")).to_have_count(1)
            session_id = await page.locator("#session").text_content()
            transcript = await poll_json(api, f"/api/conversations/{session_id}")
        finally:
            await browser.close()

    asked = [t for t in transcript["turns"] if t["role"] == "customer"]
    assert len(asked) == 1, transcript["turns"]
    assert sum(runs.values()) == 1, runs

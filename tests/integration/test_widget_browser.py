"""The chat widget in a real browser: Debian's headless Chromium driven by Playwright against the real
stack. A customer types a message and the reply names the right tracking number; live progress is
shown; the page reconnects after the socket drops; a message over the socket's frame limit is
refused with when to try again."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.gateway.auth import mint_token
from actormesh_runtime.gateway.server import GatewayServer
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, require_browser
from tests.support.gateway import gateway_stack, stack_settings, wait_ready

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

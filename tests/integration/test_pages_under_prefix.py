"""The widget and the console published under a path prefix (`spec.gateway.httpRoute.pathPrefix`: the
route strips the prefix before the gateway) still reach the gateway's API and sockets, in real Chromium.

The same gateway app is mounted under /support on a second server; Starlette's Mount strips the prefix
the way the HTTPRoute's URLRewrite does, and nothing answers at the host's root `/api` or `/ws` there,
so a page that still called the root would fail."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI

from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.gateway.server import GatewayServer
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, require_browser
from tests.support.gateway import gateway_stack, stack_settings

pytestmark = [pytest.mark.integration, pytest.mark.browser]


async def test_widget_and_console_work_under_a_path_prefix(nats_server: str, tmp_path: Path) -> None:
    require_browser()
    from playwright.async_api import async_playwright, expect

    settings = stack_settings(nats_server, tmp_path)
    async with gateway_stack(settings) as stack, async_playwright() as pw:
        # Mount does not run a mounted app's lifespan: run it here (it connects the gateway to NATS).
        gateway_app = create_app(stack.mesh.settings)
        await stack.mesh.enter_context(gateway_app.router.lifespan_context(gateway_app))
        routed = FastAPI()
        routed.mount("/support", gateway_app)
        proxy = await stack.mesh.enter_context(GatewayServer(routed, port=0))
        base = f"{proxy.url}/support"
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            customer = await browser.new_page()
            requested: list[str] = []
            customer.on("request", lambda r: requested.append(r.url))
            customer.on("websocket", lambda ws: requested.append(ws.url))
            await customer.goto(f"{base}/widget")
            status = customer.locator("#status")
            await expect(status).to_have_attribute("data-state", "online", timeout=15_000)
            await customer.fill("#email", "john.doe@example.com")
            await customer.fill("#message", "Where is my order ORD-10002?")
            await customer.click("#send")
            await expect(customer.locator(".msg.agent").last).to_contain_text("TRK100000002", timeout=30_000)
            await customer.fill("#message", "I want to talk to a human")
            await customer.click("#send")
            ref_tag = customer.locator(".msg.agent .tag.ref").last
            await expect(ref_tag).to_contain_text("ESC-", timeout=30_000)
            ref = str(await ref_tag.text_content()).removeprefix("reference ").strip()

            agent = await browser.new_page()
            agent.on("request", lambda r: requested.append(r.url))
            agent.on("websocket", lambda ws: requested.append(ws.url))
            await agent.goto(f"{base}/console")
            await expect(agent.locator("#queue").get_by_text(ref)).to_be_visible(timeout=30_000)

            local = [u for u in requested if "127.0.0.1" in u]
            assert local
            assert all(f":{proxy.port}/support/" in u for u in local), local
        finally:
            await browser.close()

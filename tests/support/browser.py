"""Debian's headless Chromium driven by Playwright, shared by the browser tests (widget, console).

`require_browser()` skips locally with instructions and fails in CI when either is missing; the
helpers below are the steps the console tests share (launch, watch a page for errors, escalate from
the widget, run the console's pure helpers in a page).
"""

from __future__ import annotations

import os
from typing import Any

from actormesh_runtime.settings import RuntimeSettings
from tests.conftest import missing_component


class RefuseFirst:
    """A Playwright route handler that answers the first matching request with a 503 (a replica warming
    up, a busy history service) and lets every later one through; `refused` lists what it refused."""

    def __init__(self) -> None:
        self.refused: list[str] = []

    async def __call__(self, route: Any) -> None:
        if self.refused:
            await route.continue_()
        else:
            self.refused.append(route.request.url)
            await route.fulfill(status=503, json={"error": "overloaded"})


LIVE_MS = 30_000
"""How long a page may wait for a chat through the nine actors on a loaded machine."""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_browser() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        missing_component("Debian's chromium", "apt-get install -y chromium")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        missing_component("playwright", "pip install playwright (part of the dev extra)")


async def launch_chromium(pw: Any) -> Any:
    """Debian's headless Chromium, from a running `async_playwright()`; the caller closes it."""
    return await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def page_problems(page: Any) -> list[str]:
    """A list that fills with the page's uncaught errors and Content Security Policy violations."""
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    return problems


async def send_in_widget(page: Any, email: str, text: str) -> None:
    """Send `text` as `email` from the widget, once its socket is online."""
    from playwright.async_api import expect

    await expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=15_000)
    await page.fill("#email", email)
    await page.fill("#message", text)
    await page.press("#message", "Enter")


async def escalate_in_widget(page: Any, email: str, text: str) -> str:
    """Send `text` from the widget; the escalation reference its reply carries."""
    from playwright.async_api import expect

    await send_in_widget(page, email, text)
    ref_tag = page.locator(".msg.agent .tag.ref").last
    await expect(ref_tag).to_contain_text("ESC-", timeout=LIVE_MS)
    return str(await ref_tag.text_content()).removeprefix("reference ").strip()


async def evaluate_in_console(settings: RuntimeSettings, script: str) -> Any:
    """What `script` returns in the console page of a gateway alone (no mesh): its pure helpers."""
    from playwright.async_api import async_playwright

    from actormesh_runtime.gateway.app import create_app
    from actormesh_runtime.gateway.server import GatewayServer

    async with GatewayServer(create_app(settings), port=0) as server, async_playwright() as pw:
        browser = await launch_chromium(pw)
        try:
            page = await browser.new_page()
            await page.goto(f"{server.url}/console")
            return await page.evaluate(script)
        finally:
            await browser.close()

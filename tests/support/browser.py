"""Debian's headless Chromium driven by Playwright, shared by the browser tests (widget, console).

`require_browser()` skips locally with instructions and fails in CI when either is missing.
"""

from __future__ import annotations

import os

from tests.conftest import missing_component

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

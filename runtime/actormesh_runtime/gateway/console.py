"""The agent console, `GET /console`: the page people answering escalations use.

Small files from `static/` (console.html, .css, .js, and console-approvals.js for the approval
requests), read once when the app is built (a file read per request would block the event loop) and
served by the gateway itself, so the page works offline. The page talks only to this gateway: the
agent API under `/api/escalations` and `/api/approvals`, and the live queue on `/ws/agent`, which
decide who is an agent. The page only needs to know which way to ask: with JWT_SECRET set it asks
for an agent token ("bearer"); without, it says that callers on this machine are agents
("loopback"). That mode is written into the page here.

The page is served with a Content-Security-Policy that allows nothing but this origin and no inline
script, so a customer's text that slipped into the page as markup still could not run, and no frame
on another site can embed the console (clickjacking an agent's buttons). Called by `create_app`.
"""

from __future__ import annotations

from importlib import resources
from typing import Literal

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, Response

CONSOLE_PATH = "/console"
AUTH_PLACEHOLDER = "{{ACTORMESH_AUTH}}"
AuthMode = Literal["bearer", "loopback"]

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",  # fetch and the same-origin WebSocket
        "img-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",  # every form is handled by the script
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
ASSETS: dict[str, str] = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console-approvals.js": "text/javascript; charset=utf-8",
}


def static_text(name: str) -> str:
    return resources.files("actormesh_runtime.gateway").joinpath(f"static/{name}").read_text("utf-8")


def render_console(template: str, mode: AuthMode) -> str:
    """The page for one auth mode; the template must carry the placeholder exactly once."""
    if template.count(AUTH_PLACEHOLDER) != 1:
        raise ValueError(f"console.html must contain {AUTH_PLACEHOLDER} exactly once")
    return template.replace(AUTH_PLACEHOLDER, mode)


def add_console(app: FastAPI, *, mode: AuthMode) -> None:
    """`/console` and its assets, each read once, now."""
    page = render_console(static_text("console.html"), mode)
    assets = {name: (static_text(name), media_type) for name, media_type in ASSETS.items()}

    @app.get(CONSOLE_PATH, response_class=HTMLResponse, include_in_schema=False)
    async def console() -> HTMLResponse:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    @app.get(CONSOLE_PATH + "/{name}", include_in_schema=False)
    async def console_asset(name: str) -> Response:
        found = assets.get(name)
        if found is None:
            raise HTTPException(404, f"no console file {name!r}")
        text, media_type = found
        return Response(text, media_type=media_type, headers=PAGE_HEADERS)

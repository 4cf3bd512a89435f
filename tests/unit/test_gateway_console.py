"""The agent console page (`/console`) in-process (ASGI, no sockets): served by the gateway with its
two assets, offline (nothing names another host), told which way agents sign in, locked down by its
Content-Security-Policy, and written so that no server-supplied text can become markup.

The console's behaviour (live queue, claim/reply/resolve, errors) is proven in real Chromium against
a real mesh: tests/integration/test_console_browser.py.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from actormesh_runtime.gateway import console as console_module
from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.gateway.console import AUTH_PLACEHOLDER, render_console, static_text
from actormesh_runtime.settings import RuntimeSettings

SECRET = "console-unit-secret-with-enough-length-0123"
ANY_HOST = re.compile(r"(?:https?:)?//[\w.-]+")
LOADS = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
SCRIPTS = ("console.js", "console-approvals.js")
PAGES = ("console.html", "console.css", *SCRIPTS, "widget.html")
ASSET_PATHS = ("/console/console.js", "/console/console-approvals.js", "/console/console.css")


def _settings(*, auth: bool) -> RuntimeSettings:
    if auth:
        return RuntimeSettings(nats_url="nats://127.0.0.1:1", jwt_secret=SECRET)
    return RuntimeSettings(nats_url="nats://127.0.0.1:1", gateway_anonymous=True)


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(_settings(auth=False)))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http


@pytest.mark.parametrize(
    ("auth", "mode"),
    [pytest.param(False, "loopback", id="no-jwt-secret"), pytest.param(True, "bearer", id="jwt-secret")],
)
async def test_the_page_says_how_agents_sign_in(auth: bool, mode: str) -> None:
    transport = httpx.ASGITransport(app=create_app(_settings(auth=auth)))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        page = await http.get("/console")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f'<meta name="actormesh-auth" content="{mode}">' in page.text
    assert AUTH_PLACEHOLDER not in page.text


async def test_every_file_the_page_loads_is_served_by_the_gateway(client: httpx.AsyncClient) -> None:
    page = (await client.get("/console")).text
    loaded = [url for url in LOADS.findall(page) if not url.startswith("#")]  # in-page links
    assert sorted(loaded) == ["console/console-approvals.js", "console/console.css", "console/console.js"]
    expected_types = {"console.css": "text/css", "console.js": "text/javascript"}
    expected_types["console-approvals.js"] = "text/javascript"
    for url in loaded:
        # Relative to /console, so the page also works behind a proxy that strips a path prefix.
        asset = await client.get(f"/{url}")
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].startswith(expected_types[url.rsplit("/", 1)[-1]])
        assert asset.text == static_text(url.rsplit("/", 1)[-1])


async def test_an_unknown_console_file_is_a_404_in_the_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/console/nope.js")
    assert response.status_code == 404
    assert response.json()["detail"] == "no console file 'nope.js'"


@pytest.mark.parametrize("name", PAGES)
def test_the_pages_name_no_other_host(name: str) -> None:
    assert ANY_HOST.findall(static_text(name)) == [], f"{name} names another host: it must work offline"
    assert "@import" not in static_text(name)


async def test_the_page_allows_only_its_own_origin(client: httpx.AsyncClient) -> None:
    for path in ("/console", *ASSET_PATHS):
        headers = (await client.get(path)).headers
        policy = dict(d.strip().split(" ", 1) for d in headers["content-security-policy"].split(";"))
        assert policy["default-src"] == "'none'"
        assert policy["script-src"] == "'self'", "no inline script, no other host"
        assert policy["connect-src"] == "'self'"
        assert policy["frame-ancestors"] == "'none'", "no other site may frame the agent's buttons"
        assert headers["x-content-type-options"] == "nosniff"


def test_the_html_has_nothing_the_policy_would_block() -> None:
    html = static_text("console.html")
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [], "inline script (CSP blocks it)"
    assert "<style" not in html, "inline style (CSP blocks it)"
    assert " style=" not in html, "inline style attribute (CSP blocks it)"
    assert re.findall(r"\son[a-z]+\s*=", html) == [], "inline event handler (CSP blocks it)"


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_script_never_turns_text_into_markup(name: str) -> None:
    # Customers' words, summaries, facts and audit entries are rendered with textContent: an
    # escalation or approval whose text is `<img src=x onerror=…>` stays text in the agent's browser.
    script = static_text(name)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink


def test_the_placeholder_must_be_there_exactly_once() -> None:
    assert render_console(f"<meta content='{AUTH_PLACEHOLDER}'>", "bearer") == "<meta content='bearer'>"
    with pytest.raises(ValueError, match="exactly once"):
        render_console("<html></html>", "bearer")


async def test_the_console_is_read_once_not_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(_settings(auth=False))

    def no_file_io_on_the_loop(name: str) -> str:
        raise AssertionError(f"{name} read while serving a request")

    monkeypatch.setattr(console_module, "static_text", no_file_io_on_the_loop)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        for path in ("/console", *ASSET_PATHS):
            assert (await http.get(path)).status_code == 200, path


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_element_the_script_looks_up_is_on_the_page(name: str) -> None:
    # A renamed or mistyped id would only show as a TypeError in an agent's browser, on the one path
    # that touches it (a deny, a 409): caught here instead.
    ids = set(re.findall(r'\bid="([\w-]+)"', static_text("console.html")))
    wanted = set(re.findall(r'\$\("([\w-]+)"\)', static_text(name)))
    assert wanted, "the pattern no longer matches the script's lookups"
    assert wanted - ids == set()

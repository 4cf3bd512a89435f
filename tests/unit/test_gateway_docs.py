"""`/docs` and `/redoc` work offline: every asset they load comes from the gateway itself.

In-process (ASGI, no sockets): FastAPI's default pages name cdn.jsdelivr.net, fastapi.tiangolo.com
and fonts.googleapis.com, so this fails if the gateway falls back to them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from actormesh_runtime.gateway.app import create_app
from actormesh_runtime.settings import RuntimeSettings

LOADS = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|(?:url|specUrl)\s*:\s*["']([^"']+)["']""")
ANY_URL = re.compile(r"(?:https?:)?//[\w.-]+")


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(RuntimeSettings(nats_url="nats://127.0.0.1:1", gateway_anonymous=True))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http


def _loaded(page: str) -> list[str]:
    return [a or b for a, b in LOADS.findall(page)]


@pytest.mark.parametrize(
    ("path", "expected_assets"),
    [
        pytest.param("/docs", {"swagger-ui-bundle.js", "swagger-ui.css"}, id="swagger-ui"),
        pytest.param("/redoc", {"redoc.standalone.js"}, id="redoc"),
    ],
)
async def test_docs_pages_reference_no_external_host(
    client: httpx.AsyncClient, path: str, expected_assets: set[str]
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    page = response.text
    assert ANY_URL.findall(page) == [], "the page names another host"
    loaded = _loaded(page)
    assert {u.rsplit("/", 1)[-1] for u in loaded} >= expected_assets
    for url in loaded:
        assert url.startswith("/"), f"{url} is not served by the gateway"
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url


async def test_swagger_ui_is_told_not_to_call_the_public_validator(client: httpx.AsyncClient) -> None:
    page = (await client.get("/docs")).text
    assert '"validatorUrl": null' in page


async def test_the_served_bundle_is_the_real_swagger_ui(client: httpx.AsyncClient) -> None:
    bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert "javascript" in bundle.headers["content-type"]
    assert "SwaggerUIBundle" in bundle.text
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "ActorMesh gateway"
